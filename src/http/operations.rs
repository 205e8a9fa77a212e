//! What operators and load balancers read: `/healthz` (the process
//! answers), `/readyz` (the broker is reachable and its store can be
//! written: send traffic here) and `/metrics` (the Prometheus text of
//! [`crate::stats`], where every metric is defined and recorded).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::error::{Error, Problem};

/// The health and metrics routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(alive))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

/// A health answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive", body = Health)),
)]
async fn alive() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the broker can take and deliver events.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic", body = Health),
        (status = 503, description = "The broker is unreachable, or its data directory cannot be written (`broker-unavailable`)",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
)]
async fn ready(State(state): State<AppState>) -> Result<(StatusCode, Json<Health>), Error> {
    state.broker.readiness()?;
    Ok((StatusCode::OK, Json(Health { status: "ready" })))
}

/// Metrics for Prometheus.
///
/// Connections by transport, events published (by `via`) and delivered (by
/// `transport`), publish latency, subscribers that lagged or were dropped,
/// requests refused by problem `code`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain; version=0.0.4")),
)]
async fn metrics() -> Response {
    let mut response = crate::stats::handle().render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
