//! `/graphql`: queries and mutations over `POST` and `GET`, subscriptions
//! over a WebSocket on the same path (see [`super::graphql_ws`]), and the
//! GraphiQL page for a browser, its assets served from `/graphiql/…` out of
//! the binary, so it works with no internet.

use async_graphql::http::parse_query_string;
use async_graphql_axum::GraphQLResponse;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::graphql_ws::{self, Protocol, Timing};
use super::{ApiCaller, AppState, ReaderCaller, TokenParam, read_body, ws};
use crate::access::Caller;
use crate::error::{Error, Problem};
use crate::net::Writer;

/// The GraphiQL page: loads the vendored assets and subscribes over `/graphql`.
const GRAPHIQL_PAGE: &str = include_str!("../../static/graphiql.html");

/// Vendored GraphiQL assets: (file name, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("../../static/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("../../static/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript",
        include_bytes!("../../static/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("../../static/graphiql/react-dom.production.min.js"),
    ),
    (
        "graphql-ws.min.js",
        "text/javascript",
        include_bytes!("../../static/graphiql/graphql-ws.min.js"),
    ),
];

/// The GraphQL routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_graphql, post_graphql))
        .route("/graphiql/{file}", get(asset))
}

/// A GraphQL request, as `POST /graphql` takes it (the shape of
/// `async_graphql::Request` on the wire).
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"query": "{ latest { id longitude latitude receivedAt } }"}))]
#[allow(dead_code)]
pub struct GraphQLRequest {
    /// The GraphQL document; see `schema/schema.graphql` or GraphiQL's docs.
    #[schema(min_length = 1)]
    query: String,
    /// Values for the document's variables.
    variables: Option<Map<String, Value>>,
    /// Which operation of the document to run.
    #[schema(rename = "operationName")]
    operation_name: Option<String>,
}

/// A GraphQL answer: `data`, and `errors` (each with `message` and
/// `extensions.code`) when something was refused.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct GraphQLAnswer {
    /// The result, shaped like the selection.
    data: Option<Value>,
    /// What went wrong; `extensions.code` is stable (e.g. `invalid-position`).
    errors: Option<Vec<Value>>,
}

/// Run a GraphQL query or mutation.
///
/// One GraphQL request as JSON (no batches: each request is bounded by the
/// depth and complexity limits, a batch would multiply them), within
/// `--max-body-bytes`. GraphQL errors (validation, limits, refused input)
/// come back as 200 with `errors`, as GraphQL clients expect.
#[utoipa::path(
    post,
    path = "/graphql",
    tag = "graphql",
    security((), ("bearer" = [])),
    request_body(content = GraphQLRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The GraphQL answer", body = GraphQLAnswer,
            content_type = "application/graphql-response+json"),
        (status = 400, description = "Not one GraphQL request as JSON (`malformed-body`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the size limit (`payload-too-large`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn post_graphql(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    body: Body,
) -> Result<GraphQLResponse, Error> {
    let body = read_body(&state, body).await?;
    let request: async_graphql::Request =
        serde_json::from_slice(&body).map_err(|err| Error::MalformedBody {
            detail: format!(
                "send one GraphQL request as JSON: {{\"query\": \"…\", \"variables\": {{…}}}} ({err})"
            ),
            field: None,
        })?;
    if request.query.is_empty() {
        return Err(Error::MalformedBody {
            detail: "the request has no \"query\": send {\"query\": \"…\"}".into(),
            field: Some("query".into()),
        });
    }
    Ok(state.graphql.execute(request.data(caller)).await.into())
}

/// GraphiQL, a query in the URL, or subscriptions over a WebSocket.
///
/// A browser asking for HTML with no query gets GraphiQL. A WebSocket upgrade
/// with subprotocol `graphql-transport-ws` (the graphql-ws protocol) or
/// `graphql-ws` (the legacy subscriptions-transport-ws) carries
/// subscriptions; close codes 4400 malformed message, 4401 subscribe before
/// `connection_ack` or a `connection_init` without a valid token when one is
/// needed, 4403 a token that may not subscribe, 4408 no `connection_init`
/// in time, 4409 duplicate subscription id, 4429 second `connection_init`,
/// 1013 at a connection limit, 4000 no answer to ping, 1001 server shutting
/// down. The token goes in the `connection_init` payload
/// (`{"authorization": "Bearer …"}`), the `Authorization` header or `access_token`. Otherwise `query` (and `variables`, `operationName`) run a query;
/// mutations need `POST`.
#[utoipa::path(
    get,
    path = "/graphql",
    tag = "graphql",
    params(
        ("query" = String, Query, min_length = 1,
            description = "The GraphQL document (a query). `variables` (a JSON object) and \
                           `operationName` may be added as in the GraphQL-over-HTTP convention.",
            example = "{ latest { id longitude latitude } }"),
        TokenParam,
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The GraphQL answer (or the GraphiQL page for a browser)",
            body = GraphQLAnswer, content_type = "application/graphql-response+json"),
        (status = 400, description = "The URL holds no usable request (`invalid-parameter`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 405, description = "A mutation sent with GET (`method-not-allowed`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn get_graphql(
    State(state): State<AppState>,
    ReaderCaller(caller): ReaderCaller,
    headers: HeaderMap,
    uri: Uri,
    raw: Option<Extension<Writer>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Ok(upgrade) = upgrade {
        return websocket(state, caller, upgrade, raw.map(|Extension(raw)| raw));
    }
    let query = uri.query().unwrap_or_default();
    if query.is_empty() && accepts_html(&headers) {
        return Html(GRAPHIQL_PAGE).into_response();
    }
    let request = match parse_query_string(query) {
        Ok(request) => request,
        Err(err) => {
            return Error::InvalidParameter {
                param: "query",
                detail: err.to_string(),
            }
            .into_response();
        }
    };
    if request.query.is_empty() {
        return Error::InvalidParameter {
            param: "query",
            detail: "a GraphQL document is required: /graphql?query={ latest { id } }".into(),
        }
        .into_response();
    }
    if is_mutation(&request.query) {
        return Error::MethodNotAllowed("mutations are sent with POST /graphql".into())
            .into_response();
    }
    GraphQLResponse::from(state.graphql.execute(request.data(caller)).await).into_response()
}

fn websocket(
    state: AppState,
    caller: Caller,
    upgrade: WebSocketUpgrade,
    raw: Option<Writer>,
) -> Response {
    // Operations arrive as small JSON messages: a 1 KiB read buffer.
    let upgrade = ws::configure(upgrade.protocols(Protocol::NAMES), 1024, &state.config);
    let protocol =
        Protocol::from_subprotocol(upgrade.selected_protocol().map(|name| name.as_bytes()));
    let permit = match state.access.connect(&caller) {
        Ok(permit) => permit,
        Err(refused) => return ws::refuse(upgrade, &refused),
    };
    let timing = Timing {
        init_timeout: state.config.graphql_init_timeout(),
        socket: ws::Timing::of(&state.config),
    };
    upgrade.on_upgrade(move |socket| async move {
        let session = graphql_ws::Session {
            protocol,
            shared: state.graphql_shared.clone(),
            access: state.access.clone(),
            caller,
            timing,
            raw,
        };
        graphql_ws::serve(socket, session, state.shutdown.clone()).await;
        drop(permit);
    })
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Whether the document holds a mutation (GET must not change state).
fn is_mutation(query: &str) -> bool {
    async_graphql::parser::parse_query(query).is_ok_and(|document| {
        document
            .operations
            .iter()
            .any(|(_, op)| op.node.ty == async_graphql::parser::types::OperationType::Mutation)
    })
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => Error::NotFound(format!("no asset {file}")).into_response(),
    }
}
