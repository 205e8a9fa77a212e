//! `/zones`: geofences put, listed, read and deleted (changes need a
//! publish credential not restricted to some trackers), and who is inside
//! one now, through the operations GraphQL shares ([`crate::zones`]).
//! The zone events themselves are read as any other event: on
//! `/ws`, `/events` and history with `zone=`, and GraphQL's `zoneEvents`.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiCaller, AppState, ReaderCaller, TokenParam, read_body_up_to};
use crate::access::Scope;
use crate::broker::{ZoneChange, ZoneQuery};
use crate::error::{Error, Problem};
use crate::model::{BoundingBox, Zone, ZoneInput, check_zone_name};
use crate::zones::{self, ZoneOccupants};

/// The zone routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_zones))
        .routes(routes!(get_zone, put_zone, delete_zone))
        .routes(routes!(inside))
}

/// List zones.
///
/// The zones, by name: circles (centre and radius in metres) and GeoJSON
/// polygons. Every zone, unless narrowed to those meeting a box (`bbox`,
/// say a map's view) or paged (`limit`, then `after`): a page followed by
/// more zones carries `Link: <…>; rel="next"`, the same query after its
/// last name.
#[utoipa::path(
    get,
    path = "/zones",
    tag = "zones",
    security((), ("bearer" = [])),
    params(ZoneListParams, TokenParam),
    responses(
        (status = 200, description = "The zones, by name", body = Vec<Zone>,
            headers(("Link" = String, description = "`<the next page>; rel=\"next\"`, when more zones follow"))),
        (status = 400, description = "A bad parameter (`invalid-parameter`); `field` names it",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Reading needs a bearer token (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn list_zones(
    State(state): State<AppState>,
    ReaderCaller(caller): ReaderCaller,
    params: Result<Query<ZoneListParams>, QueryRejection>,
) -> Result<Response, Error> {
    state.access.authorize(&caller, Scope::Subscribe)?;
    let Query(params) = params.map_err(Error::from)?;
    let query = params.parse()?;
    let page = zones::list(&*state.broker, query.clone())?;
    // Written from the broker's zones, not copies of them: a polygon may
    // hold 10,000 positions.
    let listed: Vec<&Zone> = page.zones.iter().map(|z| &**z).collect();
    let mut response = Json(listed).into_response();
    if let Some(next) = page.next {
        let link = format!("<{}>; rel=\"next\"", next_page(&query, &next));
        let value = HeaderValue::try_from(link).expect("names and numbers are header-safe");
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// The query string of `GET /zones`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ZoneListParams {
    /// Only zones whose bounds meet `minLon,minLat,maxLon,maxLat` (degrees);
    /// a west edge east of the east edge crosses the antimeridian.
    #[param(
        pattern = r"^-?(180(\.0+)?|(1[0-7][0-9]|[0-9]{1,2})(\.[0-9]+)?),-?(90(\.0+)?|[0-8]?[0-9](\.[0-9]+)?),-?(180(\.0+)?|(1[0-7][0-9]|[0-9]{1,2})(\.[0-9]+)?),-?(90(\.0+)?|[0-8]?[0-9](\.[0-9]+)?)$",
        example = "18.0,59.3,18.1,59.4"
    )]
    pub bbox: Option<String>,
    /// Only zones named after this one (in byte order): the last name of
    /// the page before.
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "depot")]
    pub after: Option<String>,
    /// At most this many zones, 1 to 10,000; every one when absent.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    pub limit: Option<String>,
}

impl ZoneListParams {
    /// The listing these parameters ask for; `limit` named when it is not
    /// a number (the rest is checked by [`zones::list`]).
    fn parse(self) -> Result<ZoneQuery, Error> {
        let within = self
            .bbox
            .as_deref()
            .map(str::parse::<BoundingBox>)
            .transpose()
            .map_err(|e| Error::InvalidParameter {
                param: "bbox",
                detail: e.to_string(),
            })?;
        let limit = self
            .limit
            .as_deref()
            .map(str::parse::<usize>)
            .transpose()
            .map_err(|_| zones::bad_zone_limit())?;
        Ok(ZoneQuery {
            within,
            after: self.after,
            limit,
        })
    }
}

/// The path and query of the page after `last` (the same box and limit).
fn next_page(query: &ZoneQuery, last: &str) -> String {
    let mut url = format!("/zones?after={last}");
    if let Some(b) = &query.within {
        let [w, s, e, n] = [
            b.min_longitude,
            b.min_latitude,
            b.max_longitude,
            b.max_latitude,
        ];
        url.push_str(&format!("&bbox={w},{s},{e},{n}"));
    }
    if let Some(limit) = query.limit {
        url.push_str(&format!("&limit={limit}"));
    }
    url
}

/// Read a zone.
#[utoipa::path(
    get,
    path = "/zones/{name}",
    tag = "zones",
    security((), ("bearer" = [])),
    params(("name" = String, Path, description = "The zone's name", pattern = "^[A-Za-z0-9._-]{1,64}$"), TokenParam),
    responses(
        (status = 200, description = "The zone", body = Zone),
        (status = 404, description = "No zone of that name (`not-found`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn get_zone(
    State(state): State<AppState>,
    ReaderCaller(caller): ReaderCaller,
    Path(name): Path<String>,
) -> Result<Response, Error> {
    state.access.authorize(&caller, Scope::Subscribe)?;
    let zone = zones::existing(&*state.broker, &name)?;
    Ok(Json(&*zone).into_response())
}

/// Create or replace a zone.
///
/// The body is one of `circle` (`longitude`, `latitude`, `radius` in
/// metres) or `polygon` (a GeoJSON Polygon: the exterior ring, then holes;
/// each ring closed). From the next position on, a tracker that comes
/// inside it gets an `enter` event, and one that goes more than
/// `--zone-hysteresis` metres (20 by default) outside a `leave` event.
/// Trackers inside a replaced zone stay inside until a position says
/// otherwise.
#[utoipa::path(
    put,
    path = "/zones/{name}",
    tag = "zones",
    security((), ("bearer" = [])),
    params(("name" = String, Path, description = "The zone's name: 1 to 64 of A-Z a-z 0-9 . _ -", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body(content = ZoneInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = Zone),
        (status = 200, description = "Replaced", body = Zone),
        (status = 400, description = "Not JSON (`malformed-body`) or a bad name (`invalid-parameter`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Changing zones needs a bearer token (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not publish, or only for some trackers (`forbidden`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "As many zones as `--max-zones` already (`conflict`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong shape (`invalid-body`) or a value breaking a rule (`invalid-zone`); `field` names it",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The zone could not be stored (`broker-unavailable`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn put_zone(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, Error> {
    state.access.authorize_zones(&caller)?;
    check_zone_name("name", &name)?;
    let body = read_body_up_to(&state, body, state.config.max_batch_bytes).await?;
    let zone = parse_zone(&body)?.validate(&name)?;
    let replaced = zones::put(&*state.broker, state.config.max_zones, zone.clone()).await?;
    let status = match replaced {
        true => StatusCode::OK,
        false => StatusCode::CREATED,
    };
    Ok((status, Json(zone)).into_response())
}

/// Delete a zone.
///
/// Trackers inside it are no longer, without a `leave` event: the zone is
/// gone, not left.
#[utoipa::path(
    delete,
    path = "/zones/{name}",
    tag = "zones",
    security((), ("bearer" = [])),
    params(("name" = String, Path, description = "The zone's name", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Changing zones needs a bearer token (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not publish, or only for some trackers (`forbidden`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No zone of that name (`not-found`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The change could not be stored (`broker-unavailable`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn delete_zone(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    state.access.authorize_zones(&caller)?;
    match state
        .broker
        .change_zone(ZoneChange::Delete(name.clone()))
        .await?
    {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(zones::no_zone(&name)),
    }
}

/// Who is inside a zone now.
///
/// Each tracker inside, with the id of its `enter` event and its latest
/// position; only trackers the reader may read.
#[utoipa::path(
    get,
    path = "/zones/{name}/inside",
    tag = "zones",
    security((), ("bearer" = [])),
    params(("name" = String, Path, description = "The zone's name", pattern = "^[A-Za-z0-9._-]{1,64}$"), TokenParam),
    responses(
        (status = 200, description = "The trackers inside", body = ZoneOccupants),
        (status = 404, description = "No zone of that name (`not-found`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker cannot be asked right now (`broker-unavailable`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn inside(
    State(state): State<AppState>,
    ReaderCaller(caller): ReaderCaller,
    Path(name): Path<String>,
) -> Result<Json<ZoneOccupants>, Error> {
    state.access.authorize(&caller, Scope::Subscribe)?;
    Ok(Json(zones::occupants(&*state.broker, &caller, name).await?))
}

/// A zone's shape from a JSON body, a wrong shape named by its path.
fn parse_zone(body: &[u8]) -> Result<ZoneInput, Error> {
    const EXPECTED: &str = r#"send {"circle": {"longitude": 18.06, "latitude": 59.33, "radius": 150}} or {"polygon": {"type": "Polygon", "coordinates": [[[lon, lat], …]]}}"#;
    let mut reader = serde_json::Deserializer::from_slice(body);
    let parsed: Result<ZoneInput, _> = serde_path_to_error::deserialize(&mut reader);
    let input = parsed.map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let field = (path != ".").then_some(path);
        match inner.classify() {
            serde_json::error::Category::Data => Error::InvalidBody {
                detail: format!("{inner}: {EXPECTED}"),
                field,
            },
            _ => Error::MalformedBody {
                detail: format!("the body is not valid JSON ({inner}): {EXPECTED}"),
                field,
            },
        }
    })?;
    reader.end().map_err(|err| Error::MalformedBody {
        detail: format!("trailing data after the zone ({err})"),
        field: None,
    })?;
    Ok(input)
}
