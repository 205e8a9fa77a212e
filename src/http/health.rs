//! Health for operators and load balancers: `/healthz` (the process
//! answers) and `/readyz` (the broker is reachable and its store can be
//! written: send traffic here).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::error::{Error, Problem};

/// The health routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(alive))
        .routes(routes!(ready))
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
