//! `GET /longlat/history` and `GET /longlat/latest`: what the broker still
//! keeps, read through the same broker calls the streams and GraphQL use.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, ReaderCaller, StreamParams, TokenParam};
use crate::access::Scope;
use crate::broker::{Gap, GapReason};
use crate::error::{Error, Problem};
use crate::model::{EventId, PositionEvent, check_tracker};

/// Events per page when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;
/// Most events per page.
pub const MAX_PAGE: usize = 1000;

/// The history routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history))
        .routes(routes!(latest))
}

/// A page of history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    /// Matching events, oldest first.
    pub events: Vec<PositionEvent>,
    /// Pass as `after` for the next page; absent when the page is empty and
    /// no cursor was given.
    pub next: Option<EventId>,
    /// Set when `after` is older than history: events after it were lost.
    pub gap: Option<Gap>,
}

/// History query parameters: the stream parameters plus a page size.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Events per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Read history.
///
/// Events still kept, oldest first, after `after` (from the oldest kept when
/// absent), filtered like the streams. Page through with `next`.
#[utoipa::path(
    get,
    path = "/longlat/history",
    tag = "positions",
    params(StreamParams, HistoryParams, TokenParam),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of events", body = HistoryPage),
        (status = 400, description = "A bad parameter (`invalid-parameter`); `field` names it",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Reading needs a bearer token (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not read events (`forbidden`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn history(
    State(state): State<AppState>,
    ReaderCaller(caller): ReaderCaller,
    stream: Result<Query<StreamParams>, QueryRejection>,
    page: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Response, Error> {
    state.access.authorize(&caller, Scope::Subscribe)?;
    let Query(stream) = stream.map_err(Error::from)?;
    // A limit is the only thing a page's parameters can get wrong.
    let Query(page) = page.map_err(|_| bad_limit())?;
    let (after, filter) = stream.parse()?;
    let limit = match page.limit.map(|n| n as usize) {
        None => DEFAULT_PAGE,
        Some(n) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => return Err(bad_limit()),
    };
    let found = state.broker.history(after, limit, &filter)?;
    let next = found.events.last().map(|e| e.id()).or(after);
    let gap = found.cursor_too_old.then(|| Gap {
        reason: GapReason::CursorTooOld,
        after,
        resumed_from: found.events.first().map(|e| e.id()),
        missed: None,
    });
    // The events are written as the JSON they were stored with.
    let mut body =
        Vec::with_capacity(32 + found.events.iter().map(|e| e.json.len() + 1).sum::<usize>());
    body.extend_from_slice(b"{\"events\":[");
    for (i, event) in found.events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&event.json);
    }
    body.extend_from_slice(b"],\"next\":");
    serde_json::to_writer(&mut body, &next).expect("an id serialises");
    body.extend_from_slice(b",\"gap\":");
    serde_json::to_writer(&mut body, &gap).expect("a gap serialises");
    body.push(b'}');
    Ok(json_response(body))
}

fn bad_limit() -> Error {
    Error::InvalidParameter {
        param: "limit",
        detail: format!("limit must be a whole number from 1 to {MAX_PAGE}"),
    }
}

fn json_response(body: impl Into<axum::body::Body>) -> Response {
    let mut response = axum::response::Response::new(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `latest` query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LatestParams {
    /// Only this tracker.
    #[param(pattern = "^[A-Za-z0-9._:/-]{1,64}$", example = "alice/phone")]
    pub tracker: Option<String>,
}

/// The latest position.
///
/// The latest position still in history, overall or for one tracker, by
/// fix time (`recordedAt` when sent, else arrival): a buffered fix that
/// arrives late does not replace a newer one.
#[utoipa::path(
    get,
    path = "/longlat/latest",
    tag = "positions",
    params(LatestParams, TokenParam),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The latest event", body = PositionEvent),
        (status = 400, description = "A bad tracker name (`invalid-parameter`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Reading needs a bearer token (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not read events (`forbidden`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No event in history, or none for that tracker (`not-found`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn latest(
    State(state): State<AppState>,
    ReaderCaller(caller): ReaderCaller,
    params: Result<Query<LatestParams>, QueryRejection>,
) -> Result<Response, Error> {
    state.access.authorize(&caller, Scope::Subscribe)?;
    let Query(params) = params.map_err(Error::from)?;
    let tracker = params.tracker.as_deref();
    if let Some(name) = tracker {
        check_tracker("tracker", name)?;
    }
    let event = state.broker.latest(tracker).ok_or_else(|| {
        Error::NotFound(match tracker {
            Some(t) => format!("no event from tracker {t} in history"),
            None => "no event in history".into(),
        })
    })?;
    Ok(json_response(event.json.clone()))
}
