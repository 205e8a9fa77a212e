//! Which browser pages may use the API: the Origin allowlist (against
//! cross-site WebSocket hijacking and cross-site publishing) and CORS.
//!
//! With no allowlist every origin is accepted, as the tutorial's page opened
//! from disk (Origin `null`) needs. With one, a request that carries an
//! `Origin` header is refused (403) unless the origin is listed or is the
//! server's own (the same host as the request's `Host`). Requests without
//! `Origin` (curl, devices, servers) are not browsers and pass.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::AppState;
use crate::error::Error;

/// Refuses browser requests from origins outside `--allowed-origins`.
pub async fn check(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    let allowed = &state.config.allowed_origins;
    if allowed.is_empty() {
        return Ok(next.run(request).await);
    }
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let same_origin = host.is_some_and(|host| {
            origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
        });
        if !same_origin && !allowed.iter().any(|a| a == origin) {
            return Err(Error::OriginNotAllowed(origin.chars().take(200).collect()));
        }
    }
    Ok(next.run(request).await)
}

/// The CORS layer for `--cors-origins`, when any are set (`*` for any origin).
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::LOCATION, HeaderName::from_static("x-request-id")]),
    )
}
