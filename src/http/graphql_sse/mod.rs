//! GraphQL over Server-Sent Events on `/graphql`, for GraphQL clients
//! behind proxies that block WebSockets: the protocol of the npm
//! `graphql-sse` client (also served by GraphQL Yoga and others).
//!
//! Two modes share one path. In the *distinct connections* mode a `GET` or
//! `POST` that accepts `text/event-stream` runs one operation (a query, a
//! mutation or a subscription) and streams its results as `event: next`
//! messages, then `event: complete`. In the *single connection* mode (see
//! [`reservation`]) a `PUT` reserves a stream, one `GET` opens it, `POST`s
//! add operations to it (each with `extensions.operationId`) and `DELETE`
//! stops one; over HTTP/1.1 a browser then needs one connection for any
//! number of operations.
//!
//! Operations run as they do over a WebSocket: through the same document
//! guard, with the caller's credential, live subscriptions shared through
//! [`SharedExecutions`](super::SharedExecutions) (read as a sharer, written
//! through hyper's body: no connection takeover, so the same code serves
//! HTTP/1.1, HTTP/2 and TLS), `after` to resume. Each stream holds a place
//! under the connection limits, keeps itself alive with comments, is cut
//! by the send timeout when its client stops reading, and ends on shutdown
//! without `complete`, so the client reconnects (and resumes with `after`).

pub mod reservation;

use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::stream::{BoxStream, Stream, StreamExt};
use serde_json::Value;
use tokio::time::{MissedTickBehavior, interval_at};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiCaller, AppState};
use crate::access::{Caller, ConnectionPermit, Scope};
use crate::conn::Connection;
use crate::error::{Error, Problem};
use crate::graphql::guard;
use crate::graphql::shared::{Outcome, SharedKey};
use crate::shutdown::Shutdown;

pub use reservation::Reservations;

/// The header that carries a single connection mode's reservation token.
pub const TOKEN_HEADER: &str = "x-graphql-event-stream-token";

/// The single connection mode's own methods on `/graphql`: `PUT` to
/// reserve a stream, `DELETE` to stop an operation (`GET` and `POST` are
/// [`super::graphql`]'s, which hand event streams here).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(reserve, stop))
}

/// Reserve an event stream (GraphQL over SSE, single connection mode).
///
/// Answers `201` with the reservation token as `text/plain`. Then open
/// the stream with `GET /graphql`, `Accept: text/event-stream` and the
/// token in `X-GraphQL-Event-Stream-Token` (or `?token=`); add operations
/// with `POST /graphql` and the token, each with `extensions.operationId`
/// (`202`; results arrive on the stream as `event: next` with `{"id",
/// "payload"}`, then `event: complete` with `{"id"}`); stop one with
/// `DELETE /graphql?operationId=…`. A reservation holds a place under the
/// stream limits; one whose stream does not open within
/// `--graphql-init-timeout-ms` is dropped.
#[utoipa::path(
    put,
    path = "/graphql",
    tag = "graphql",
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "The reservation token", body = String, content_type = "text/plain"),
        (status = 401, description = "Every operation needs a bearer token (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may neither read nor publish (`forbidden`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The server or this address holds as many streams as allowed (`too-many-connections`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn reserve(State(state): State<AppState>, ApiCaller(caller): ApiCaller) -> Response {
    let reserved = state
        .access
        .authorize_any(&caller, &[Scope::Subscribe, Scope::Publish])
        .and_then(|()| state.graphql_sse.reserve(&state, &caller));
    match reserved {
        Ok(token) => (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            token,
        )
            .into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// Stop an operation on a reserved event stream (GraphQL over SSE).
///
/// `operationId` names the operation; the reservation token goes in
/// `X-GraphQL-Event-Stream-Token` (or `?token=`). An operation that already
/// ended is no error.
#[utoipa::path(
    delete,
    path = "/graphql",
    tag = "graphql",
    params(
        ("operationId" = String, Query, description = "The operation's `extensions.operationId`"),
        ("X-GraphQL-Event-Stream-Token" = Option<String>, Header, description = "The reservation token"),
    ),
    responses(
        (status = 200, description = "The operation is stopped"),
        (status = 400, description = "No `operationId` (`invalid-parameter`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No stream is reserved under the token (`not-found`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn stop(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let stopped = stream_token(&headers, &uri)
        .ok_or_else(|| {
            Error::NotFound("no event stream token: send X-GraphQL-Event-Stream-Token".into())
        })
        .and_then(|token| {
            let id = query_param(&uri, "operationId").ok_or_else(|| Error::InvalidParameter {
                param: "operationId",
                detail: "name the operation to stop: DELETE /graphql?operationId=…".into(),
            })?;
            state.graphql_sse.remove(&token, &id)
        });
    match stopped {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// Serves a `GET /graphql` that accepts an event stream: the reserved
/// stream its token names, else the one operation in its query string.
pub fn get(
    state: &AppState,
    caller: Caller,
    headers: &HeaderMap,
    uri: &Uri,
    connection: Option<Connection>,
) -> Result<Response, Error> {
    if let Some(token) = stream_token(headers, uri) {
        state
            .access
            .authorize_any(&caller, &[Scope::Subscribe, Scope::Publish])?;
        return state.graphql_sse.open(state, &token, connection);
    }
    state.access.authorize(&caller, Scope::Subscribe)?;
    let operation = Operation::from_query(uri.query().unwrap_or_default())?;
    distinct(state, caller, &Method::GET, operation, connection)
}

/// Serves a `POST /graphql` (already authorized, its JSON `body` read)
/// that speaks GraphQL over SSE: an operation on its own event stream, or
/// one added to a reserved stream; `None` for a plain GraphQL request.
pub fn post(
    state: &AppState,
    caller: Caller,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
    connection: Option<Connection>,
) -> Option<Result<Response, Error>> {
    if accepts_event_stream(headers) {
        let answer = Operation::from_json(body).and_then(|(operation, _)| {
            distinct(state, caller, &Method::POST, operation, connection)
        });
        return Some(answer);
    }
    let token = stream_token(headers, uri)?;
    let added = Operation::from_json(body).and_then(|(operation, extensions)| {
        state
            .graphql_sse
            .add(state, caller, &token, operation, extensions)
    });
    Some(added.map(|()| StatusCode::ACCEPTED.into_response()))
}

/// The reservation token a request presents, in the header or the URL.
pub fn stream_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    headers
        .get(TOKEN_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_param(uri, "token"))
        .filter(|token| !token.is_empty())
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Whether the client asks for an event stream (`Accept: text/event-stream`).
pub fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|entry| {
            let mut parts = entry.split(';');
            let media_type = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|part| {
                part.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media_type.eq_ignore_ascii_case("text/event-stream") && !refused
        })
}

/// One operation as the client sent it, and the key identical ones share:
/// its request without `extensions` (which holds a per-operation id).
pub struct Operation {
    /// The request to run.
    pub request: async_graphql::Request,
    /// `query`, `variables` and `operationName` as canonical JSON.
    pub key: String,
}

impl Operation {
    /// The operation in a `POST` body.
    pub fn from_json(body: &[u8]) -> Result<(Self, Option<Value>), Error> {
        let malformed = |detail: String| Error::MalformedBody {
            detail: format!(
                "send one GraphQL request as JSON: {{\"query\": \"…\", \"variables\": {{…}}}} ({detail})"
            ),
            field: None,
        };
        let value: Value =
            serde_json::from_slice(body).map_err(|err| malformed(err.to_string()))?;
        let Value::Object(mut fields) = value else {
            return Err(malformed("not an object".into()));
        };
        let extensions = fields.remove("extensions");
        let key = Value::Object(fields.clone()).to_string();
        let request: async_graphql::Request = serde_json::from_value(Value::Object(fields))
            .map_err(|err| malformed(err.to_string()))?;
        if request.query.is_empty() {
            return Err(Error::MalformedBody {
                detail: "the request has no \"query\": send {\"query\": \"…\"}".into(),
                field: Some("query".into()),
            });
        }
        Ok((Self { request, key }, extensions))
    }

    /// The operation in a `GET`'s query string.
    pub fn from_query(query: &str) -> Result<Self, Error> {
        let request = super::graphql::request_in_query(query)?;
        let key = serde_json::json!({
            "query": request.query,
            "variables": request.variables,
            "operationName": request.operation_name,
        })
        .to_string();
        Ok(Self { request, key })
    }
}

/// What an operation may do before it runs, as the document guard sees it:
/// refused (its errors go to the client as results), or its kind.
pub enum Checked {
    /// Over a limit: the errors, as a `next` payload.
    Refused(Arc<str>),
    /// A document that may run (or that the parser will refuse, with errors
    /// of its own).
    Runs,
}

impl Checked {
    /// Runs the document guard on `operation`; refuses a mutation sent
    /// with `GET` (which must not change state) and a subscription from a
    /// caller that may not read.
    pub fn of(
        state: &AppState,
        caller: &Caller,
        method: &Method,
        operation: &Operation,
    ) -> Result<Self, Error> {
        let document = match guard::check(&operation.request.query) {
            Ok(document) => document,
            Err(refused) => {
                let refused =
                    async_graphql::Response::from_errors(vec![guard::server_error(&refused)]);
                return Ok(Self::Refused(errors_payload(&refused)));
            }
        };
        let kind = document
            .as_ref()
            .and_then(|document| kind(document, operation));
        if kind == Some(OperationType::Mutation) && method == Method::GET {
            return Err(Error::MethodNotAllowed(
                "mutations are sent with POST /graphql".into(),
            ));
        }
        if kind == Some(OperationType::Subscription) {
            // Shared executions run as a caller checked beforehand.
            state.access.authorize(caller, Scope::Subscribe)?;
        }
        Ok(Self::Runs)
    }

    /// The operation's results: the refusal, or those of its execution.
    pub fn outcomes(
        self,
        state: &AppState,
        caller: Caller,
        operation: Operation,
    ) -> BoxStream<'static, Outcome> {
        match self {
            Self::Refused(errors) => futures::stream::iter([Outcome::Refused(errors)]).boxed(),
            Self::Runs => {
                // Shared only among callers who may read the same trackers.
                let key = SharedKey::new(operation.key, &caller);
                let mut data = async_graphql::Data::default();
                data.insert(caller);
                state
                    .graphql_shared
                    .join(key, operation.request, Arc::new(data), None)
            }
        }
    }
}

/// The kind of the operation `operation` names in `document`.
fn kind(document: &ExecutableDocument, operation: &Operation) -> Option<OperationType> {
    use async_graphql::parser::types::DocumentOperations;
    match (&document.operations, &operation.request.operation_name) {
        (DocumentOperations::Single(single), _) => Some(single.node.ty),
        (DocumentOperations::Multiple(named), Some(name)) => {
            named.get(name.as_str()).map(|op| op.node.ty)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// `{"errors":[…]}`, the payload of a refused operation.
fn errors_payload(response: &async_graphql::Response) -> Arc<str> {
    match Outcome::of(response) {
        Outcome::Refused(errors) | Outcome::Next(errors) => errors,
        Outcome::Complete | Outcome::Stalled => "[]".into(),
    }
}

/// Serves one operation on its own event stream (the distinct connections
/// mode): its results as `next` events, then `complete`; errors found
/// before it runs as a `next` with `errors`, as the protocol asks.
pub fn distinct(
    state: &AppState,
    caller: Caller,
    method: &Method,
    operation: Operation,
    connection: Option<Connection>,
) -> Result<Response, Error> {
    let checked = Checked::of(state, &caller, method, &operation)?;
    let permit = state.access.connect(&caller)?;
    let outcomes = checked.outcomes(state, caller, operation);
    let messages = messages(outcomes, None);
    Ok(event_stream(state, permit, connection, messages))
}

/// The protocol's messages for one operation's outcomes, up to and with
/// its `complete`: for the single connection mode, each tagged with the
/// operation's `id` (as JSON).
pub fn messages(
    outcomes: BoxStream<'static, Outcome>,
    id: Option<Arc<str>>,
) -> impl Stream<Item = Message> + Send + 'static {
    outcomes
        .flat_map(move |outcome| {
            let messages = match outcome {
                Outcome::Next(payload) => vec![Message::Next(next(&payload, id.as_deref()))],
                // Refused before it ran: the errors as a result, then the end.
                Outcome::Refused(errors) => {
                    let payload = format!(r#"{{"errors":{errors}}}"#);
                    vec![
                        Message::Refused(next(&payload, id.as_deref())),
                        Message::Complete(complete(id.as_deref())),
                    ]
                }
                Outcome::Complete => vec![Message::Complete(complete(id.as_deref()))],
                // Only a sharer with a seat of its own stalls; hyper writes
                // this stream, under the socket's send timeout.
                Outcome::Stalled => Vec::new(),
            };
            futures::stream::iter(messages)
        })
        .scan(false, |done, message| {
            let item = (!*done).then(|| {
                *done = matches!(message, Message::Complete(_));
                message
            });
            futures::future::ready(item)
        })
}

/// One message of the event stream, ready to write.
pub enum Message {
    /// A result.
    Next(Bytes),
    /// Errors found before the operation ran.
    Refused(Bytes),
    /// The operation ended.
    Complete(Bytes),
}

impl Message {
    fn into_bytes(self) -> Bytes {
        match self {
            Self::Next(bytes) | Self::Refused(bytes) | Self::Complete(bytes) => bytes,
        }
    }
}

fn next(payload: &str, id: Option<&str>) -> Bytes {
    match id {
        None => format!("event: next\ndata: {payload}\n\n"),
        Some(id) => format!("event: next\ndata: {{\"id\":{id},\"payload\":{payload}}}\n\n"),
    }
    .into()
}

fn complete(id: Option<&str>) -> Bytes {
    match id {
        // An empty `data:`: EventSource ignores an event without one.
        None => "event: complete\ndata:\n\n".to_owned(),
        Some(id) => format!("event: complete\ndata: {{\"id\":{id}}}\n\n"),
    }
    .into()
}

/// The `text/event-stream` answer carrying `messages`: it holds `permit`
/// while it runs, sends a comment when idle for `--sse-keepalive-secs`,
/// and ends after the last message or on shutdown. A client that stops
/// reading is cut by the send timeout, as on `/events`.
pub fn event_stream(
    state: &AppState,
    permit: ConnectionPermit,
    connection: Option<Connection>,
    messages: impl Stream<Item = Message> + Send + 'static,
) -> Response {
    if let Some(connection) = connection {
        connection
            .socket
            .set_send_timeout(state.config.send_timeout());
    }
    let keepalive = Duration::from_secs(state.config.sse_keepalive_secs);
    let body = with_keepalive(messages, keepalive, state.shutdown.clone(), permit);
    let mut response = Body::from_stream(body).into_response();
    super::sse::event_stream_headers(response.headers_mut());
    response
}

/// What a stream holds while it runs.
struct Running {
    stats: crate::stats::Connection,
    _permit: ConnectionPermit,
}

fn with_keepalive(
    messages: impl Stream<Item = Message> + Send + 'static,
    period: Duration,
    shutdown: Shutdown,
    permit: ConnectionPermit,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
    let mut keepalive = interval_at(tokio::time::Instant::now() + period, period);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let running = Running {
        stats: crate::stats::Connection::open("graphql-sse"),
        _permit: permit,
    };
    let state = (Box::pin(messages), keepalive, shutdown, running);
    futures::stream::unfold(
        state,
        |(mut messages, mut keepalive, shutdown, running)| async move {
            let bytes = tokio::select! {
                biased;
                () = shutdown.wait() => return None,
                message = messages.next() => {
                    let message = message?;
                    if matches!(message, Message::Next(_)) {
                        running.stats.delivered.increment(1);
                    }
                    keepalive.reset();
                    message.into_bytes()
                }
                _ = keepalive.tick() => Bytes::from_static(b": keep-alive\n\n"),
            };
            Some((Ok(bytes), (messages, keepalive, shutdown, running)))
        },
    )
}
