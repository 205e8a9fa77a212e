//! `/ingest/owntracks` and `/ingest/osmand`: tracker apps publish in their
//! own protocols (read by [`crate::ingest`]) through the same publish path
//! as `POST /longlat`. Apps cannot send a bearer token, so their token may
//! be the HTTP Basic password or a `token` query parameter ([`AppCaller`]).

use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppCaller, AppState, read_body};
use crate::error::{Error, Problem};
use crate::ingest::osmand::{self, OsmAndParams, TraccarClientLocation};
use crate::ingest::owntracks::{self, OwnTracksLocation, Sender};
use crate::publish::Publisher;

/// The ingest routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(owntracks))
        .routes(routes!(osmand))
}

/// Publish from OwnTracks (HTTP mode).
///
/// Point the app's HTTP mode at this URL. A `location` message is published
/// for the tracker `<X-Limit-U>/<X-Limit-D>` (or `?u=&d=` in the URL; else
/// the `topic`'s `user/device`, else the `tid`): `lat`, `lon`, `tst` (`recordedAt`),
/// `acc`, `alt`, `vel` (km/h, stored in m/s), `cog` (`heading`), `batt`.
/// Other message types and empty bodies are acknowledged and ignored. The
/// answer is the JSON array the app expects (`[]`). The token, when the
/// server asks for one, is the Basic authentication password.
#[utoipa::path(
    post,
    path = "/ingest/owntracks",
    tag = "apps",
    security((), ("basic" = []), ("bearer" = [])),
    params(
        ("X-Limit-U" = Option<String>, Header, description = "The OwnTracks user: the tracker's first part"),
        ("X-Limit-D" = Option<String>, Header, description = "The OwnTracks device: the tracker's second part"),
        ("u" = Option<String>, Query, description = "The user, when the app's URL names it instead of `X-Limit-U`"),
        ("d" = Option<String>, Query, description = "The device, when the app's URL names it instead of `X-Limit-D`"),
    ),
    request_body(content = OwnTracksLocation, content_type = "application/json",
        description = "An OwnTracks message; only `_type` `location` is published"),
    responses(
        (status = 200, description = "Published, or acknowledged and ignored: an empty JSON array",
            body = Vec<String>, example = json!([])),
        (status = 400, description = "Not JSON (`malformed-body`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A token is required (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not publish for this tracker (`forbidden`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the size limit (`payload-too-large`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field missing or out of range; `field` names it",
            body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over the publish rate (`rate-limited`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker cannot take events right now (`broker-unavailable`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn owntracks(
    State(state): State<AppState>,
    AppCaller(caller): AppCaller,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let admitted = Publisher::new(&state.access, &*state.broker).admit(&caller)?;
    let body = read_body(&state, body).await?;
    // The user and device: the app's headers, or `?u=&d=` in its URL.
    let query: Vec<(String, String)> = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let named = |header: &str, param: &str| {
        let sent = headers.get(header).and_then(|v| v.to_str().ok());
        sent.or_else(|| {
            query
                .iter()
                .find(|(n, _)| n == param)
                .map(|(_, v)| v.as_str())
        })
    };
    let sender = Sender {
        user: named("x-limit-u", "u"),
        device: named("x-limit-d", "d"),
    };
    let input = match owntracks::read(&sender, &body) {
        Ok(None) => return Ok(acknowledged()),
        Ok(Some(input)) => Ok(input),
        Err(refused) => Err(refused),
    };
    admitted.publish("owntracks", move || input).await?;
    Ok(acknowledged())
}

/// What OwnTracks expects back: a JSON array (of messages for the app; none).
fn acknowledged() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        "[]",
    )
        .into_response()
}

/// Publish from OsmAnd or Traccar Client (the OsmAnd protocol).
///
/// Parameters in the query string (OsmAnd's online tracking, a GET) or a
/// form body (Traccar Client, a POST), or Traccar Client 9's JSON body. The
/// tracker is `id` (or `deviceid`, or the JSON's `device_id`). `speed` is
/// in knots, as Traccar reads it, unless `speed_unit=mps` or `kmh`; a
/// `timestamp` is Unix seconds, milliseconds or ISO 8601. The token, when
/// the server asks for one, is the `token` query parameter. The answer is
/// `200` with an empty body.
#[utoipa::path(
    method(get, post),
    path = "/ingest/osmand",
    tag = "apps",
    security((), ("token" = []), ("bearer" = [])),
    params(OsmAndParams),
    request_body(content(
        (TraccarClientLocation = "application/json"),
        (OsmAndParams = "application/x-www-form-urlencoded"),
    ), description = "Traccar Client's JSON, or the parameters as a form (or nothing: they are in the query)"),
    responses(
        (status = 200, description = "Published"),
        (status = 400, description = "Not JSON (`malformed-body`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A token is required (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not publish for this tracker (`forbidden`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the size limit (`payload-too-large`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter missing, unreadable or out of range; `field` names it",
            body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over the publish rate (`rate-limited`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker cannot take events right now (`broker-unavailable`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn osmand(
    State(state): State<AppState>,
    AppCaller(caller): AppCaller,
    parts: Parts,
    body: Body,
) -> Result<Response, Error> {
    let admitted = Publisher::new(&state.access, &*state.broker).admit(&caller)?;
    let body = read_body(&state, body).await?;
    let query = parts.uri.query().unwrap_or("").as_bytes();
    let read = || {
        if is_json(&parts.headers, &body) {
            return osmand::read_json(&body);
        }
        let pairs = form_urlencoded::parse(query).chain(form_urlencoded::parse(&body));
        osmand::read_params(pairs)
    };
    admitted.publish("osmand", read).await?;
    Ok(StatusCode::OK.into_response())
}

/// Whether an OsmAnd request carries Traccar Client's JSON: declared so,
/// or an object without a declared type.
fn is_json(headers: &HeaderMap, body: &[u8]) -> bool {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim());
    let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match declared {
        Some(media) => {
            media.eq_ignore_ascii_case("application/json") || (object && media.is_empty())
        }
        None => object,
    }
}
