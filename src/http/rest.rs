//! REST: `POST /longlat` publishes a position; `GET /longlat/{id}` reads one
//! back while it is in history.
//!
//! The body is read as JSON whatever its declared type, because the
//! tutorial's `curl -d '{…}'` sends JSON labelled
//! `application/x-www-form-urlencoded`. A real form body
//! (`longitude=18.06&latitude=59.33`) is read as a form.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use crate::error::Error;
use crate::model::{Event, EventId, PositionInput};

/// The REST routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/longlat", post(publish))
        .route("/longlat/{id}", get(event_by_id))
}

/// `POST /longlat`: validate, publish, answer `201 Created` with the stored event.
async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Error> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge {
            limit: state.config.max_body_bytes,
        },
        _ => Error::MalformedBody {
            detail: format!("the body could not be read: {rejection}"),
            field: None,
        },
    })?;
    let input = parse_position(headers.get(header::CONTENT_TYPE), &body)?;
    let event = state.broker.publish(input.validate()?).await?;
    Ok(created(&event))
}

fn created(event: &Event) -> Response {
    let location = format!("/longlat/{}", event.id());
    let mut response = (StatusCode::CREATED, event.json.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    response
}

/// `GET /longlat/{id}`: one event, while it is still in history.
async fn event_by_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let parsed: EventId =
        id.parse()
            .map_err(|e: crate::model::InvalidEventId| Error::InvalidParameter {
                param: "id",
                detail: e.to_string(),
            })?;
    let event = state
        .broker
        .get(parsed)
        .ok_or_else(|| Error::NotFound(format!("no event {parsed} in history")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        event.json.clone(),
    )
        .into_response())
}

/// Reads a position from a body of the given declared type.
fn parse_position(content_type: Option<&HeaderValue>, body: &[u8]) -> Result<PositionInput, Error> {
    let media_type = content_type.and_then(|v| v.to_str().ok()).map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let looks_like_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|&b| b == b'{' || b == b'[' || b == b'"');
    match media_type.as_deref() {
        None | Some("application/json") => parse_json(body),
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => parse_json(body),
        Some("application/x-www-form-urlencoded") if looks_like_json => parse_json(body),
        Some("application/x-www-form-urlencoded") => parse_form(body),
        Some(other) => Err(Error::UnsupportedMediaType(other.to_owned())),
    }
}

const EXPECTED: &str = r#"send a JSON object like {"longitude": 18.06324, "latitude": 59.334591}"#;

fn parse_json(body: &[u8]) -> Result<PositionInput, Error> {
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
                Err(e) => Error::MalformedBody {
                    detail: format!("{e}: {EXPECTED}"),
                    field: None,
                },
            },
        );
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let input: PositionInput =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            let path = err.path().to_string();
            let field = (path != ".").then_some(path);
            let inner = err.into_inner();
            let detail = match &field {
                Some(f) => format!("{f}: {inner}"),
                None => format!("{inner}: {EXPECTED}"),
            };
            match inner.classify() {
                serde_json::error::Category::Data => Error::InvalidBody { detail, field },
                _ => Error::MalformedBody { detail, field },
            }
        })?;
    deserializer.end().map_err(|e| Error::MalformedBody {
        detail: format!("{e}: send one JSON object and nothing after it"),
        field: None,
    })?;
    Ok(input)
}

fn parse_form(body: &[u8]) -> Result<PositionInput, Error> {
    serde_urlencoded::from_bytes(body).map_err(|e| Error::InvalidBody {
        detail: format!("form body: {e}: {EXPECTED}"),
        field: None,
    })
}
