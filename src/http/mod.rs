//! The HTTP surface: shared state, and one router assembled from each
//! transport's own `router()`.

mod docs;
mod graphql;
mod graphql_shared;
mod graphql_ws;
mod health;
mod history;
mod pages;
mod params;
mod rest;
mod sse;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::broker::Broker;
use crate::config::Config;
use crate::error::Error;
use crate::graphql::LonglatSchema;
use crate::shutdown::Shutdown;

pub use graphql_shared::SharedExecutions;
pub use params::StreamParams;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Where events are published and subscribed.
    pub broker: Arc<dyn Broker>,
    /// Settings read at start-up.
    pub config: Arc<Config>,
    /// Tripped when the server is stopping; streams close themselves on it.
    pub shutdown: Shutdown,
    /// The GraphQL schema, built once over `broker`.
    pub graphql: LonglatSchema,
    /// Live GraphQL subscriptions shared by every socket that sent the same one.
    pub graphql_shared: Arc<SharedExecutions>,
}

impl AppState {
    /// The state for serving `broker`, with the GraphQL schema built over it.
    pub fn new(broker: Arc<dyn Broker>, config: Config, shutdown: Shutdown) -> Self {
        let graphql = crate::graphql::build(broker.clone());
        Self {
            graphql_shared: Arc::new(SharedExecutions::new(graphql.clone())),
            graphql,
            broker,
            config: Arc::new(config),
            shutdown,
        }
    }
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    let body_limit = DefaultBodyLimit::max(state.config.max_body_bytes);
    let (routes, api) = documented_routes().split_for_parts();
    routes
        .merge(docs::router(api))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(body_limit)
        .with_state(state)
}

/// Every documented route, with the OpenAPI document built from them.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(pages::router())
        .merge(history::router())
        .merge(rest::router())
        .merge(graphql::router())
        .merge(ws::router())
        .merge(sse::router())
        .merge(health::router())
}

/// The OpenAPI document, as `GET /openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().split_for_parts().1
}

async fn not_found(uri: Uri) -> Error {
    Error::NotFound(format!("nothing at {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> Error {
    Error::MethodNotAllowed(format!("{} does not take this method", uri.path()))
}
