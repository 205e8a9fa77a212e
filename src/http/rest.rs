//! REST: `POST /longlat` publishes a position, or a batch of them (a JSON
//! array, or NDJSON); `GET /longlat/{id}` reads one back while it is in
//! history.
//!
//! The body is read as JSON whatever its declared type, because the
//! tutorial's `curl -d '{…}'` sends JSON labelled
//! `application/x-www-form-urlencoded`. A real form body
//! (`longitude=18.06&latitude=59.33`) is read as a form.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::batch::{BatchFormat, is_json_array, is_ndjson, read_batch};
use super::body_refusal::{EXPECTED, invalid_body, not_json};
use super::{ApiCaller, AppState, ReaderCaller, TokenParam, read_body_up_to};
use crate::access::Scope;
use crate::error::{Error, Problem};
use crate::model::{Event, EventId, Filter, PositionEvent, PositionInput, ZoneEvent, parse_id};
use crate::publish::{MAX_BATCH, Publisher};

/// What `POST /longlat` takes as JSON, as the OpenAPI document shows it:
/// one position, or a batch of 1 to 1000.
struct PublishBody;

/// What `POST /longlat` answers: the stored event, or a batch's events.
struct Published;

/// One `schema` (by name), or an array of 1 to [`MAX_BATCH`] of them.
fn one_or_batch(schema: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder, Ref};
    OneOfBuilder::new()
        .item(Ref::from_schema_name(schema))
        .item(
            ArrayBuilder::new()
                .items(Ref::from_schema_name(schema))
                .min_items(Some(1))
                .max_items(Some(MAX_BATCH)),
        )
        .into()
}

impl utoipa::PartialSchema for PublishBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        one_or_batch("PositionInput")
    }
}

impl utoipa::ToSchema for PublishBody {}

impl utoipa::PartialSchema for Published {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        one_or_batch("PositionEvent")
    }
}

impl utoipa::ToSchema for Published {}

/// The REST routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish))
        .routes(routes!(event_by_id))
}

/// Publish a position, or a batch of positions.
///
/// Validates the position, stores it with a broker-assigned id and pushes it
/// to every subscriber. The body is read as JSON whatever its declared type
/// (the tutorial's `curl -d` labels JSON as a form); a real form body
/// (`longitude=18.06&latitude=59.33`) is read as a form.
///
/// A JSON array, or NDJSON (`application/x-ndjson`: one object a line), is a
/// batch of 1 to 1000 positions (at most `--max-batch-bytes`, 1 MiB by
/// default): all are validated first, and stored in one append, or none is
/// and every refused position is named in `refused` (its `index` and
/// field). The answer is then the array of stored events, in order. A batch
/// counts as one publish per position against `--publish-rate`.
#[utoipa::path(
    post,
    path = "/longlat",
    tag = "positions",
    security((), ("bearer" = [])),
    request_body(
        description = "The position, or a batch (a JSON array; or NDJSON, \
            `application/x-ndjson`, one position object a line). Unknown fields are refused.",
        content(
            (PublishBody = "application/json"),
            (PositionInput = "application/x-www-form-urlencoded"),
        ),
    ),
    responses(
        (status = 201, description = "Stored and pushed to every subscriber: the event, or a batch's events in order", body = Published,
            headers(("Location" = String, description = "`/longlat/{id}`: the stored event (not sent for a batch)"))),
        (status = 400, description = "Not JSON, empty, trailing data, or a number out of range (`malformed-body`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Publishing needs a bearer token and none valid was sent (`unauthorized`)",
            body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"longlat\"`"))),
        (status = 403, description = "The token may not publish, or not for this tracker (`forbidden`); \
            or a browser page from an origin outside the allowlist (`origin-not-allowed`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time (`request-timeout`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the size limit (`payload-too-large`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor a form (`unsupported-media-type`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong shape (`invalid-body`) or a value breaking a rule (`invalid-position`); `field` names it. \
            A batch with refused positions (`invalid-batch`): `refused` lists each with its `index`, and `field` is the first's (`[3].latitude`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over the publish rate for this token or address (`rate-limited`); retry after `Retry-After` seconds",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "The broker cannot take events right now (`broker-unavailable`); retry after `Retry-After` seconds",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
)]
async fn publish(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    ContentType(content_type): ContentType,
    body: Body,
) -> Result<Response, Error> {
    // Admitted before the body is read: a refused caller costs no reading.
    let admitted = Publisher::new(&state.access, &*state.broker).admit(&caller)?;
    let (one, batch) = (state.config.max_body_bytes, state.config.max_batch_bytes);
    let body = read_body_up_to(&state, body, one.max(batch)).await?;
    if let Some(format) = batch_format(content_type.as_ref(), &body) {
        let events = admitted
            .publish_batch("rest", || read_batch(format, &body))
            .await?;
        return Ok(created_batch(&events));
    }
    if body.len() > one {
        return Err(Error::PayloadTooLarge { limit: one });
    }
    let event = admitted
        .publish("rest", || parse_position(content_type.as_ref(), &body))
        .await?;
    Ok(created(&event))
}

/// Whether the body is a batch, and laid out how: NDJSON by its declared
/// type, a JSON array by its first character (when it would be read as JSON).
fn batch_format(content_type: Option<&HeaderValue>, body: &[u8]) -> Option<BatchFormat> {
    match media_type(content_type) {
        Some(media) if is_ndjson(media) => Some(BatchFormat::Ndjson),
        Some(media) if !reads_as_json(media) => None,
        _ => is_json_array(body).then_some(BatchFormat::JsonArray),
    }
}

/// The answer to a batch: its events, as the JSON they were stored with.
fn created_batch(events: &[std::sync::Arc<Event>]) -> Response {
    let mut body = Vec::with_capacity(2 + events.iter().map(|e| e.json.len() + 1).sum::<usize>());
    body.push(b'[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&event.json);
    }
    body.push(b']');
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The request's `Content-Type`, without copying the other headers.
struct ContentType(Option<HeaderValue>);

impl<S: Sync> FromRequestParts<S> for ContentType {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.get(header::CONTENT_TYPE).cloned()))
    }
}

fn created(event: &Event) -> Response {
    let location = ["/longlat/", event.id().text().as_str()].concat();
    let mut response = (StatusCode::CREATED, event.json.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::try_from(location) {
        headers.insert(header::LOCATION, value);
    }
    response
}

/// An event read back by its id: a position, or a zone event (`enter`,
/// `leave`).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // describes what `event_by_id` writes as stored
enum StoredEvent {
    Position(PositionEvent),
    Zone(ZoneEvent),
}

/// Read one event back, while it is still in history.
///
/// A position, or a zone event (by the id its stream gave it).
#[utoipa::path(
    get,
    path = "/longlat/{id}",
    tag = "positions",
    params(("id" = EventId, Path, description = "The event's id, as `POST /longlat` answered or a stream gave it"), TokenParam),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The stored event: a position or a zone event", body = StoredEvent),
        (status = 400, description = "Not an event id (`invalid-parameter`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Reading needs a bearer token (`unauthorized`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not read events (`forbidden`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event in history, or none the token may read (`not-found`)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn event_by_id(
    State(state): State<AppState>,
    ReaderCaller(caller): ReaderCaller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    state.access.authorize(&caller, Scope::Subscribe)?;
    let parsed = parse_id("id", &id)?;
    // An event outside the reader's scope is not found, so that asking
    // tells nothing of whether it exists.
    let readable = caller.reader_filter(Filter::everything())?;
    let event = state
        .broker
        .get(parsed)
        .filter(|event| readable.matches(event))
        .ok_or_else(|| Error::NotFound(format!("no event {parsed} in history")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        event.json.clone(),
    )
        .into_response())
}

/// The declared media type, without parameters.
fn media_type(content_type: Option<&HeaderValue>) -> Option<&str> {
    content_type
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
}

/// Whether a body of this media type is read as JSON (or, for a form, may
/// be: the tutorial's `curl -d` labels JSON as a form).
fn reads_as_json(media_type: &str) -> bool {
    // Compared without a lower-cased copy: this runs for every publish.
    let bytes = media_type.as_bytes();
    let is_json_suffixed = bytes.len() >= "application/+json".len()
        && bytes[..12].eq_ignore_ascii_case(b"application/")
        && bytes[bytes.len() - 5..].eq_ignore_ascii_case(b"+json");
    ["application/json", "application/x-www-form-urlencoded"]
        .iter()
        .any(|known| media_type.eq_ignore_ascii_case(known))
        || is_json_suffixed
}

/// Reads a position from a body of the given declared type.
fn parse_position(content_type: Option<&HeaderValue>, body: &[u8]) -> Result<PositionInput, Error> {
    let Some(media_type) = media_type(content_type) else {
        return parse_json(body);
    };
    if !reads_as_json(media_type) {
        return Err(Error::UnsupportedMediaType {
            expected: "the position as application/json (or a form)",
            got: media_type.to_ascii_lowercase(),
        });
    }
    let is_form = media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded");
    let looks_like_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|&b| b == b'{' || b == b'[' || b == b'"');
    if is_form && !looks_like_json {
        parse_form(body)
    } else {
        parse_json(body)
    }
}

/// Reads one position object from JSON `body`.
pub(super) fn parse_json(body: &[u8]) -> Result<PositionInput, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::MalformedBody {
            detail: format!("the body is empty: {EXPECTED}"),
            field: None,
        });
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Serde would read a struct from an array too; only an object is a position.
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => Error::InvalidBody {
                    detail: format!("the body is JSON but not an object: {EXPECTED}"),
                    field: None,
                },
                Err(e) => not_json(&e, "."),
            },
        );
    }
    // The usual case first: a good body, read without tracking where the
    // reader is (that is only needed to name the field in an error).
    if let Ok(input) = serde_json::from_slice(body) {
        return Ok(input);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let input: PositionInput =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    // serde_json appends " at line L column C"; the field says where.
                    let message = inner.to_string();
                    let message = message.split(" at line ").next().unwrap_or_default();
                    invalid_body(&path, message, None)
                }
                _ => not_json(&inner, &path),
            }
        })?;
    deserializer.end().map_err(|e| Error::MalformedBody {
        detail: format!(
            "the body goes on after its JSON object (line {}, column {}): send one object and nothing after it",
            e.line(),
            e.column()
        ),
        field: None,
    })?;
    Ok(input)
}

fn parse_form(body: &[u8]) -> Result<PositionInput, Error> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(body));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let value = form_urlencoded::parse(body)
            .find(|(name, _)| *name == path)
            .map(|(_, value)| value.into_owned());
        invalid_body(&path, &err.into_inner().to_string(), value.as_deref())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(content_type: &str, body: &str) -> Result<PositionInput, Error> {
        parse_position(
            Some(&HeaderValue::from_str(content_type).unwrap()),
            body.as_bytes(),
        )
    }

    #[test]
    fn the_declared_media_type_is_read_without_regard_to_case_or_parameters() {
        let json = r#"{"longitude": 18.06, "latitude": 59.33}"#;
        for json_type in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/geo+json",
            "APPLICATION/VND.LONGLAT+JSON ; q=1",
            // The tutorial's `curl -d` labels JSON as a form.
            "application/x-www-form-urlencoded",
        ] {
            let input = read(json_type, json).unwrap_or_else(|e| panic!("{json_type}: {e:?}"));
            assert_eq!(
                (input.longitude, input.latitude),
                (18.06, 59.33),
                "{json_type}"
            );
        }
        let form = read(
            "Application/X-WWW-Form-Urlencoded",
            "longitude=1.5&latitude=2.5",
        )
        .unwrap();
        assert_eq!((form.longitude, form.latitude), (1.5, 2.5));
        assert!(
            parse_position(None, json.as_bytes()).is_ok(),
            "no type: JSON"
        );
        for refused in [
            "text/csv",
            "application/+jso",
            "json",
            "Text/Plain; charset=utf-8",
        ] {
            match read(refused, json) {
                Err(Error::UnsupportedMediaType { got: named, .. }) => {
                    assert_eq!(
                        named,
                        refused
                            .split(';')
                            .next()
                            .unwrap()
                            .trim()
                            .to_ascii_lowercase()
                    );
                }
                other => panic!("{refused}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_bad_field_is_named_though_good_bodies_are_read_without_tracking() {
        match parse_json(br#"{"longitude": 18.06, "latitude": "north"}"#) {
            Err(Error::InvalidBody { field, .. }) => assert_eq!(field.as_deref(), Some("latitude")),
            other => panic!("{other:?}"),
        }
        match parse_json(br#"{"longitude": 18.06, "latitude": 59.33} x"#) {
            Err(Error::MalformedBody { detail, .. }) => {
                assert!(detail.contains("nothing after it"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }
}
