//! The HTTP surface: shared state, and one router assembled from each
//! transport's own `router()`.

mod assets;
mod batch;
mod body_refusal;
mod docs;
mod favicon;
mod geo;
mod graphql;
mod graphql_sse;
mod graphql_ws;
mod history;
mod ingest;
mod operations;
mod origin;
mod pages;
mod params;
mod request_id;
mod rest;
mod sse;
mod ws;
mod zones;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower::{Service, ServiceBuilder};

use axum::http::{Request, Uri};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::access::{Access, Caller};
use crate::broker::Broker;
use crate::config::Config;
use crate::error::Error;
use crate::graphql::LonglatSchema;
use crate::shutdown::Shutdown;

pub use crate::graphql::shared::SharedExecutions;
pub use params::{StreamParams, TokenParam};

/// What every handler can reach. Cloned for every request, so it is one
/// shared allocation: a clone is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    /// Where events are published and subscribed.
    pub broker: Arc<dyn Broker>,
    /// Settings read at start-up.
    pub config: Arc<Config>,
    /// Who may do what, and what one client may cost.
    pub access: Arc<Access>,
    /// Tripped when the server is stopping; streams close themselves on it.
    pub shutdown: Shutdown,
    /// The GraphQL schema, built once over `broker`.
    pub graphql: LonglatSchema,
    /// Live GraphQL subscriptions shared by every socket that sent the same one.
    pub graphql_shared: Arc<SharedExecutions>,
    /// Writes live events to caught-up `/ws` and `/events` sockets.
    pub fanout: crate::delivery::Fanout,
    /// Event streams reserved by GraphQL over SSE clients.
    pub graphql_sse: Arc<graphql_sse::Reservations>,
}

impl AppState {
    /// The state for serving `broker`, with the GraphQL schema built over it.
    pub fn new(
        broker: Arc<dyn Broker>,
        config: Config,
        access: Arc<Access>,
        shutdown: Shutdown,
    ) -> Self {
        let graphql = crate::graphql::build(broker.clone(), access.clone(), config.max_zones);
        let fanout = crate::delivery::fanout(&broker, &shutdown, config.uses_io_uring());
        let graphql_sse = Arc::new(graphql_sse::Reservations::new(
            config.graphql_init_timeout(),
        ));
        Self(Arc::new(Services {
            fanout,
            graphql_sse,
            access,
            graphql_shared: Arc::new(SharedExecutions::new(
                graphql.clone(),
                config.uses_io_uring(),
                shutdown.clone(),
                config.send_timeout(),
            )),
            graphql,
            broker,
            config: Arc::new(config),
            shutdown,
        }))
    }
}

/// The caller of an API request (see [`Access::caller`]): its credential
/// from `Authorization` only.
pub struct ApiCaller(pub Caller);

/// The caller of a stream or a read: its credential from `Authorization`,
/// or from the `access_token` query parameter, for the GET requests browsers
/// open without custom headers (WebSocket, EventSource).
pub struct ReaderCaller(pub Caller);

/// The caller of a tracker app's request (see [`Access::app_caller`]): its
/// token from `Authorization` (Basic password or Bearer) or the `token`
/// query parameter.
pub struct AppCaller(pub Caller);

impl FromRequestParts<AppState> for AppCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(state.access.app_caller(parts)))
    }
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(state.access.caller(parts, false)))
    }
}

impl FromRequestParts<AppState> for ReaderCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(state.access.caller(parts, true)))
    }
}

/// Reads a request body of at most `--max-body-bytes`, which must arrive
/// within `--header-read-timeout-secs` (a client announcing a body it sends
/// slowly, or never, is cut off rather than holding a connection forever).
pub async fn read_body(state: &AppState, body: Body) -> Result<Bytes, Error> {
    read_body_up_to(state, body, state.config.max_body_bytes).await
}

/// Reads a request body of at most `limit` bytes, like [`read_body`].
pub async fn read_body_up_to(state: &AppState, body: Body, limit: usize) -> Result<Bytes, Error> {
    let secs = state.config.header_read_timeout_secs;
    match within(
        std::time::Duration::from_secs(secs),
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(err)) => Err(Error::from_body_error(&err, limit)),
        Err(_) => Err(Error::RequestTimeout(secs)),
    }
}

/// Runs `future` for at most `limit`. One that completes at its first
/// poll, the usual case (a write the kernel takes, a body that came with
/// its headers), sets no timer.
pub async fn within<F: Future>(
    limit: std::time::Duration,
    future: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut future = std::pin::pin!(future);
    if let std::task::Poll::Ready(output) = futures::poll!(future.as_mut()) {
        return Ok(output);
    }
    tokio::time::timeout(limit, future).await
}

/// The whole application.
pub fn app(
    state: AppState,
) -> impl Service<
    Request<Body>,
    Response = Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    let (routes, api) = documented_routes().split_for_parts();
    let cors = origin::cors(&state.config.cors_origins);
    // Request spans cost a good share of publish throughput: only build
    // them when the log filter would show them.
    let tracing_requests = tracing::enabled!(target: "longlat::request", tracing::Level::INFO);
    let routes = routes
        .merge(docs::router(docs::served(
            api,
            state.access.has_credentials(),
        )))
        .merge(favicon::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    // Without an allowlist every origin passes: no layer, no cost per request.
    let origin_check = (!state.config.allowed_origins.is_empty())
        .then(|| axum::middleware::from_fn_with_state(state.clone(), origin::check));
    // Spans change the response body's type: map it back, so that with or
    // without them the service answers the same type.
    let trace = tracing_requests.then(|| {
        ServiceBuilder::new()
            .map_response(IntoResponse::into_response)
            .layer(TraceLayer::new_for_http().make_span_with(request_span))
            .into_inner()
    });
    // Around the whole router, not `Router::layer`: that wraps every route
    // in its own boxed service, one allocation per layer per request.
    ServiceBuilder::new()
        .layer(request_id::RequestIdLayer::default())
        .option_layer(trace)
        .option_layer(cors)
        .option_layer(origin_check)
        .service(routes)
}

/// Every documented route, with the OpenAPI document built from them.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(pages::router())
        .merge(history::router())
        .merge(rest::router())
        .merge(ingest::router())
        .merge(graphql::router())
        .merge(graphql_sse::router())
        .merge(ws::router())
        .merge(sse::router())
        .merge(operations::router())
        .merge(zones::router())
}

/// The OpenAPI document, as `GET /openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().split_for_parts().1
}

/// The span every log line of a request is in: method, path, request id.
/// Its target, `longlat::request`, is off by default, and the tracing layer
/// is then left out (it costs several percent of publish throughput); turn
/// it on with
/// `RUST_LOG=longlat=info,longlat::request=info,tower_http=debug` to log
/// every request with its id.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(target: "longlat::request", "request", method = %request.method(), path = %request.uri().path(), request_id = %id)
}

async fn not_found(uri: Uri) -> Error {
    Error::NotFound(format!("nothing at {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> Error {
    Error::MethodNotAllowed(format!("{} does not take this method", uri.path()))
}
