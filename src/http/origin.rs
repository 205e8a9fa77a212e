//! Which browser pages may use the API: the Origin allowlist (against
//! cross-site WebSocket hijacking and cross-site publishing) and CORS.
//!
//! With no allowlist every origin is accepted, as the tutorial's page opened
//! from disk (Origin `null`) needs; nothing is refused, so there is nothing
//! for a foreign page to get around either. With one, a request that carries
//! an `Origin` header is refused (403) unless its origin, scheme included, is
//!
//! - listed in `--allowed-origins` (compared whole, ignoring ASCII case), or
//! - the server's own pages reached by address: `http://` and the request's
//!   `Host`, when that host is `localhost` or an IP address.
//!
//! The Host header alone proves nothing: under DNS rebinding an attacker's
//! name (`evil.example`) resolves to this server, and the attacker's page
//! then sends `Origin: http://evil.example` with `Host: evil.example`. A
//! page's origin can only equal `http://127.0.0.1:8844` or
//! `http://localhost:8844` when the page came from that very address, so
//! only those forms are trusted; the server's pages reached under a host
//! name (or over https through a proxy) need that origin listed. Requests
//! without `Origin` (curl, devices, servers) are not browsers and pass.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
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
        let listed = allowed
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin));
        if !listed && !is_own_by_address(origin, host) {
            return Err(Error::OriginNotAllowed(origin.chars().take(200).collect()));
        }
    }
    Ok(next.run(request).await)
}

/// Whether `origin` is `http://` and `host`, with `host` naming this
/// machine in a way DNS cannot rebind: `localhost` or an IP address.
fn is_own_by_address(origin: &str, host: Option<&str>) -> bool {
    let (Some(host), Some(authority)) = (host, origin.strip_prefix("http://")) else {
        return false;
    };
    if !authority.eq_ignore_ascii_case(host) {
        return false;
    }
    let Ok(authority) = host.parse::<Authority>() else {
        return false;
    };
    let name = authority.host();
    let address = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || address.parse::<IpAddr>().is_ok()
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

#[cfg(test)]
mod tests {
    use super::is_own_by_address;

    #[test]
    fn only_addresses_dns_cannot_rebind_count_as_the_servers_own() {
        let own = |origin, host| is_own_by_address(origin, Some(host));
        assert!(own("http://127.0.0.1:8844", "127.0.0.1:8844"));
        assert!(own("http://[::1]:8844", "[::1]:8844"));
        assert!(own("http://localhost:8844", "localhost:8844"));
        assert!(own("http://10.0.0.5", "10.0.0.5"));
        assert!(!own("http://evil.example", "evil.example"));
        assert!(!own("https://127.0.0.1:8844", "127.0.0.1:8844"));
        assert!(!own("gopher://127.0.0.1:8844", "127.0.0.1:8844"));
        assert!(!own("http://127.0.0.1:8845", "127.0.0.1:8844"));
        assert!(!own(
            "http://127.0.0.1.evil.example",
            "127.0.0.1.evil.example"
        ));
        assert!(!is_own_by_address("http://127.0.0.1:8844", None));
    }
}
