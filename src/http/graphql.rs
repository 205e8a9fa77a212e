//! `/graphql`: queries and mutations over `POST` and `GET`, subscriptions
//! over a WebSocket on the same path (see [`super::graphql_ws`]), and the
//! GraphiQL page for a browser, its assets served from `/graphiql/…` out of
//! the binary, so it works with no internet.

use async_graphql::http::parse_query_string;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::assets::{Asset, asset};
use super::graphql_ws::{self, Protocol, Timing};
use super::{ApiCaller, AppState, ReaderCaller, TokenParam, graphql_sse, read_body, ws};
use crate::access::{Caller, Scope};
use crate::conn::{Connection, Writer};
use crate::error::{Error, Problem};
use crate::graphql::guard;

/// The GraphiQL page: loads the vendored assets and subscribes over `/graphql`.
const GRAPHIQL_PAGE: &str = include_str!("../../static/graphiql.html");

/// Vendored GraphiQL assets, served at `/graphiql/<file>`.
pub(super) const ASSETS: &[Asset] = &[
    asset!("graphiql/graphiql.min.js", "text/javascript", gzip),
    asset!("graphiql/graphiql.min.css", "text/css", gzip),
    asset!("graphiql/react.production.min.js", "text/javascript"),
    asset!(
        "graphiql/react-dom.production.min.js",
        "text/javascript",
        gzip
    ),
    asset!("graphiql/graphql-ws.min.js", "text/javascript"),
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
/// One GraphQL request as `application/json` (no batches: each request is
/// bounded by the document, depth and complexity limits, a batch would
/// multiply them), within `--max-body-bytes`. The answer follows the
/// GraphQL-over-HTTP specification: `application/json` (always 200, errors
/// in `errors`) unless `Accept` prefers `application/graphql-response+json`,
/// where a request error (a document that does not parse, validate or fit
/// the limits, a variable that cannot be coerced) is a 400 without `data`.
/// When every operation needs a credential, a request without a usable one
/// is refused before its document is read.
#[utoipa::path(
    post,
    path = "/graphql",
    tag = "graphql",
    security((), ("bearer" = [])),
    request_body(content = GraphQLRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The GraphQL answer", content(
            (GraphQLAnswer = "application/json"),
            (GraphQLAnswer = "application/graphql-response+json"))),
        (status = 400, description = "Not one GraphQL request as JSON (`malformed-body`), or, \
                                      for a client that accepts `application/graphql-response+json`, \
                                      a request error (`errors` only)", content(
            (Problem = "application/problem+json"),
            (GraphQLAnswer = "application/graphql-response+json"))),
        (status = 401, description = "Every operation needs a bearer token (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may neither read nor publish (`forbidden`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the size limit (`payload-too-large`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as `application/json` (`unsupported-media-type`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn post_graphql(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    headers: HeaderMap,
    uri: Uri,
    connection: Option<Extension<Connection>>,
    body: Body,
) -> Result<Response, Error> {
    // Refused before the document is read, when the caller may run nothing.
    state
        .access
        .authorize_any(&caller, &[Scope::Subscribe, Scope::Publish])?;
    require_json(&headers)?;
    let body = read_body(&state, body).await?;
    let connection = connection.map(|Extension(connection)| connection);
    if let Some(answer) =
        graphql_sse::post(&state, caller.clone(), &headers, &uri, &body, connection)
    {
        return answer;
    }
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
    let response = state.graphql.execute(request.data(caller)).await;
    Ok(answer(&headers, response))
}

/// A GraphQL request body is JSON, and says so: a body sent as anything
/// else (a form, plain text, no type) is refused with 415 rather than
/// guessed at.
fn require_json(headers: &HeaderMap) -> Result<(), Error> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or_default().trim());
    match media_type {
        Some(json) if json.eq_ignore_ascii_case("application/json") => Ok(()),
        other => Err(Error::UnsupportedMediaType {
            expected: "a GraphQL request as application/json",
            got: other.unwrap_or("(none)").to_ascii_lowercase(),
        }),
    }
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
/// down, 1002 a frame that breaks the WebSocket protocol, 1007 text that is
/// not UTF-8, 1009 a message over the size limit; a client's Close is
/// answered with the same code. The token goes in the `connection_init` payload
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
        (status = 200, description = "The GraphQL answer (or the GraphiQL page for a browser)", content(
            (GraphQLAnswer = "application/json"),
            (GraphQLAnswer = "application/graphql-response+json"))),
        (status = 400, description = "The URL holds no usable request (`invalid-parameter`), a document \
                                      over the limits (`document-refused`), or, for a client that accepts \
                                      `application/graphql-response+json`, a request error", content(
            (Problem = "application/problem+json"),
            (GraphQLAnswer = "application/graphql-response+json"))),
        (status = 401, description = "Reading needs a bearer token (`unauthorized`)",
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
    connection: Option<Extension<Connection>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Ok(upgrade) = upgrade {
        let socket = connection
            .filter(|Extension(connection)| connection.direct)
            .map(|Extension(connection)| connection.socket);
        return websocket(state, caller, upgrade, socket);
    }
    if graphql_sse::accepts_event_stream(&headers) {
        let connection = connection.map(|Extension(connection)| connection);
        return graphql_sse::get(&state, caller, &headers, &uri, connection)
            .unwrap_or_else(IntoResponse::into_response);
    }
    let query = uri.query().unwrap_or_default();
    if query.is_empty() && accepts_html(&headers) {
        return Html(GRAPHIQL_PAGE).into_response();
    }
    match run_get(&state, caller, &headers, query).await {
        Ok(response) => response,
        Err(refused) => refused.into_response(),
    }
}

/// The operation a `GET /graphql` carries in its query string; refused
/// without a document.
pub(super) fn request_in_query(query: &str) -> Result<async_graphql::Request, Error> {
    let request = parse_query_string(query).map_err(|err| Error::InvalidParameter {
        param: "query",
        detail: err.to_string(),
    })?;
    if request.query.is_empty() {
        return Err(Error::InvalidParameter {
            param: "query",
            detail: "a GraphQL document is required: /graphql?query={ latest { id } }".into(),
        });
    }
    Ok(request)
}

/// A query sent in the URL: reading needs the subscribe credential, and
/// only queries run (GET must not change state).
async fn run_get(
    state: &AppState,
    caller: Caller,
    headers: &HeaderMap,
    query: &str,
) -> Result<Response, Error> {
    state.access.authorize(&caller, Scope::Subscribe)?;
    let request = request_in_query(query)?;
    let document = match guard::check(&request.query) {
        Ok(document) => document,
        Err(refused) => {
            let refused = async_graphql::Response::from_errors(vec![guard::server_error(&refused)]);
            return Ok(answer(headers, refused));
        }
    };
    if document.as_ref().is_some_and(is_mutation) {
        return Err(Error::MethodNotAllowed(
            "mutations are sent with POST /graphql".into(),
        ));
    }
    let response = state.graphql.execute(request.data(caller)).await;
    Ok(answer(headers, response))
}

/// The HTTP answer for a GraphQL response, as the GraphQL-over-HTTP
/// specification has it: `application/graphql-response+json` when the
/// client prefers it, where a request error (the document did not parse,
/// validate or fit the limits, or a variable could not be coerced: nothing
/// ran) is a 400; `application/json` otherwise, always 200. A request
/// error has no `data` entry.
fn answer(headers: &HeaderMap, response: async_graphql::Response) -> Response {
    let graphql_response = prefers_graphql_response(headers);
    let request_error = crate::graphql::is_request_error(&response);
    let body = if request_error {
        serde_json::to_vec(&serde_json::json!({ "errors": response.errors }))
    } else {
        serde_json::to_vec(&response)
    };
    let status = if graphql_response && request_error {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let content_type = if graphql_response {
        "application/graphql-response+json; charset=utf-8"
    } else {
        "application/json; charset=utf-8"
    };
    let mut answer = (
        status,
        [(header::CONTENT_TYPE, content_type)],
        body.unwrap_or_default(),
    )
        .into_response();
    if response.is_ok()
        && let Some(value) = response.cache_control.value()
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        answer.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    answer
}

/// Whether the `Accept` header prefers `application/graphql-response+json`
/// to `application/json` (a tie goes to the former; `*/*` or no header
/// means JSON).
fn prefers_graphql_response(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut best = (0.0_f32, false);
    for entry in accept.split(',') {
        let mut parts = entry.split(';');
        let media_type = parts.next().unwrap_or_default().trim();
        let quality = parts
            .find_map(|part| part.trim().strip_prefix("q="))
            .and_then(|q| q.parse().ok())
            .unwrap_or(1.0);
        let graphql_response = match media_type.to_ascii_lowercase().as_str() {
            "application/graphql-response+json" => true,
            "application/json" | "application/*" | "*/*" => false,
            _ => continue,
        };
        if quality > best.0 || (quality == best.0 && quality > 0.0 && graphql_response) {
            best = (quality, graphql_response);
        }
    }
    best.1
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
fn is_mutation(document: &async_graphql::parser::types::ExecutableDocument) -> bool {
    document
        .operations
        .iter()
        .any(|(_, op)| op.node.ty == async_graphql::parser::types::OperationType::Mutation)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Result<Response, Error> {
    let path = format!("graphiql/{file}");
    super::assets::send(ASSETS, &path, &headers, "public, max-age=86400")
}
