//! `GET /longlat/history`, `GET /longlat/latest` and `GET /longlat/trail`:
//! what the broker still keeps, read through the same broker calls the
//! streams and GraphQL use, as JSON, GeoJSON or GPX (see [`super::geo`]).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::geo::{self, Feature, FeatureCollection, Format};
use super::{AppState, ReaderCaller, StreamParams, TokenParam};
use crate::access::Scope;
use crate::broker::{Gap, GapReason};
use crate::error::{Error, Problem};
use crate::model::{EventId, Filter, PositionEvent, check_tracker};

/// Events per page when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;
/// Most events per page.
pub const MAX_PAGE: usize = 1000;

/// The history routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history))
        .routes(routes!(latest))
        .routes(routes!(trail))
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

/// The `format` parameter of history and latest.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PointFormatParam {
    /// `json` (the default) or `geojson`: the same as
    /// `Accept: application/geo+json`.
    #[param(value_type = Option<String>, pattern = "^(json|geojson)$")]
    pub format: Option<Format>,
}

/// Read history.
///
/// Events still kept, oldest first, after `after` (from the oldest kept when
/// absent), filtered like the streams. Page through with `next`. With
/// `Accept: application/geo+json` (or `format=geojson`): a GeoJSON
/// FeatureCollection of points, each with the event's other fields as
/// properties, and `next` and `gap` as members of the collection.
#[utoipa::path(
    get,
    path = "/longlat/history",
    tag = "positions",
    params(StreamParams, HistoryParams, PointFormatParam, TokenParam),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of events", content(
            (HistoryPage = "application/json"),
            (FeatureCollection = "application/geo+json"),
        )),
        (status = 400, description = "A bad parameter (`invalid-parameter`); `field` names it",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Reading needs a bearer token (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not read events, or not the tracker asked for (`forbidden`, naming it)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn history(
    State(state): State<AppState>,
    ReaderCaller(caller): ReaderCaller,
    headers: HeaderMap,
    stream: Result<Query<StreamParams>, QueryRejection>,
    page: Result<Query<HistoryParams>, QueryRejection>,
    format: Result<Query<PointFormatParam>, QueryRejection>,
) -> Result<Response, Error> {
    state.access.authorize(&caller, Scope::Subscribe)?;
    let Query(stream) = stream.map_err(Error::from)?;
    // A limit is the only thing a page's parameters can get wrong.
    let Query(page) = page.map_err(|_| bad_limit())?;
    let Query(format) = format.map_err(|_| bad_format())?;
    let (after, filter) = stream.parse(&caller, &*state.broker)?;
    let limit = page_size(page.limit)?;
    let found = state.broker.history(after, limit, &filter)?;
    let next = found.events.last().map(|e| e.id()).or(after);
    let gap = found.cursor_too_old.then(|| Gap {
        reason: GapReason::CursorTooOld,
        after,
        resumed_from: found.events.first().map(|e| e.id()),
        missed: None,
    });
    if point_format(format.format, &headers)? == Format::Geojson {
        return Ok(geo::geojson(&geo::collection(&found.events, next, gap)));
    }
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

/// JSON or GeoJSON, for history and latest: GPX is a trail's format.
fn point_format(format: Option<Format>, headers: &HeaderMap) -> Result<Format, Error> {
    match (format, Format::wanted(format, headers, Format::Json)) {
        (Some(Format::Gpx), _) => Err(bad_format()),
        (_, Format::Geojson) => Ok(Format::Geojson),
        _ => Ok(Format::Json),
    }
}

/// The page size `limit` asks for.
fn page_size(limit: Option<u32>) -> Result<usize, Error> {
    match limit.map(|n| n as usize) {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(bad_limit()),
    }
}

fn bad_limit() -> Error {
    Error::InvalidParameter {
        param: "limit",
        detail: format!("limit must be a whole number from 1 to {MAX_PAGE}"),
    }
}

fn bad_format() -> Error {
    Error::InvalidParameter {
        param: "format",
        detail: "format must be json or geojson here (a tracker's GPX is /longlat/trail)".into(),
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
/// arrives late does not replace a newer one. With `Accept:
/// application/geo+json` (or `format=geojson`): a GeoJSON FeatureCollection
/// of that one point.
#[utoipa::path(
    get,
    path = "/longlat/latest",
    tag = "positions",
    params(LatestParams, PointFormatParam, TokenParam),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The latest event", content(
            (PositionEvent = "application/json"),
            (FeatureCollection = "application/geo+json"),
        )),
        (status = 400, description = "A bad tracker name (`invalid-parameter`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Reading needs a bearer token (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not read events, or not the tracker asked for (`forbidden`, naming it)",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No event in history, or none for that tracker (`not-found`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn latest(
    State(state): State<AppState>,
    ReaderCaller(caller): ReaderCaller,
    headers: HeaderMap,
    params: Result<Query<LatestParams>, QueryRejection>,
    format: Result<Query<PointFormatParam>, QueryRejection>,
) -> Result<Response, Error> {
    state.access.authorize(&caller, Scope::Subscribe)?;
    let Query(params) = params.map_err(Error::from)?;
    let Query(format) = format.map_err(|_| bad_format())?;
    let tracker = params.tracker.as_deref();
    if let Some(name) = tracker {
        check_tracker("tracker", name)?;
    }
    let readable = caller.reader_filter(Filter {
        trackers: params.tracker.clone().map(|name| vec![name]),
        ..Filter::default()
    })?;
    let event = state
        .broker
        .latest(tracker, readable.scope.as_ref())
        .ok_or_else(|| {
            Error::NotFound(match tracker {
                Some(t) => format!("no event from tracker {t} in history"),
                None => "no event in history".into(),
            })
        })?;
    if point_format(format.format, &headers)? == Format::Geojson {
        return Ok(geo::geojson(&geo::collection(&[event], None, None)));
    }
    Ok(json_response(event.json.clone()))
}

/// `trail` query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrailParams {
    /// The tracker.
    #[param(pattern = "^[A-Za-z0-9._:/-]{1,64}$", example = "alice/phone")]
    pub tracker: String,
    /// Only positions stored after this event id (page as history does).
    #[param(value_type = Option<String>, pattern = "^[0-9]{1,19}(-[0-9]{1,19})?$")]
    pub after: Option<String>,
    /// Most positions, 1 to 1000 (default 1000): the oldest kept after `after`.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `geojson` (the default) or `gpx`: the same as `Accept:
    /// application/gpx+xml`.
    #[param(value_type = Option<String>, pattern = "^(geojson|gpx)$")]
    pub format: Option<Format>,
}

/// A tracker's trail.
///
/// The tracker's positions still kept, in the order they were taken (by
/// `recordedAt`, else arrival: a late buffered fix takes its place), as a
/// GeoJSON LineString feature whose `times` property gives each point's
/// time; or, with `Accept: application/gpx+xml` (or `format=gpx`), as a GPX
/// 1.1 track for other tools. A trail of one position repeats it (a
/// LineString needs two).
#[utoipa::path(
    get,
    path = "/longlat/trail",
    tag = "positions",
    params(TrailParams, TokenParam),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The trail", content(
            (Feature = "application/geo+json"),
            (String = "application/gpx+xml"),
        )),
        (status = 400, description = "A bad parameter (`invalid-parameter`); `field` names it",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Reading needs a bearer token (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not read events (`forbidden`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No position of this tracker in history (`not-found`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn trail(
    State(state): State<AppState>,
    ReaderCaller(caller): ReaderCaller,
    headers: HeaderMap,
    params: Result<Query<TrailParams>, QueryRejection>,
) -> Result<Response, Error> {
    state.access.authorize(&caller, Scope::Subscribe)?;
    let Query(params) = params.map_err(Error::from)?;
    check_tracker("tracker", &params.tracker)?;
    let after = crate::model::parse_cursor("after", params.after.as_deref())?;
    let limit = match params.limit {
        None => MAX_PAGE,
        limit => page_size(limit)?,
    };
    let filter = caller.reader_filter(Filter {
        trackers: Some(vec![params.tracker.clone()]),
        ..Filter::default()
    })?;
    let found = state.broker.history(after, limit, &filter)?;
    if found.events.is_empty() {
        return Err(Error::NotFound(format!(
            "no position of tracker {} in history",
            params.tracker
        )));
    }
    let events = geo::in_fix_order(found.events);
    match Format::wanted(params.format, &headers, Format::Geojson) {
        Format::Gpx => Ok(geo::gpx_download(&params.tracker, &events)),
        _ => Ok(geo::geojson(&geo::line(&params.tracker, &events))),
    }
}
