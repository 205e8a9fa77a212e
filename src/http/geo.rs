//! Stored positions in the formats map tools read: GeoJSON (RFC 7946) for
//! history and latest (a FeatureCollection of points) and a tracker's trail
//! (a LineString), and GPX 1.1 for a trail exported to other tools.
//!
//! Which one a reader gets is negotiated once here ([`Format::wanted`]):
//! a `format` query parameter, else the `Accept` header, else JSON.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::model::{Event, EventId, Gap};

/// A format a reader may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// longlat's own JSON.
    Json,
    /// GeoJSON (`application/geo+json`).
    Geojson,
    /// GPX 1.1 (`application/gpx+xml`).
    Gpx,
}

impl Format {
    /// What the reader asked for: `format`, else the first of GeoJSON or
    /// GPX its `Accept` header names, else `fallback`.
    pub fn wanted(format: Option<Format>, headers: &HeaderMap, fallback: Format) -> Format {
        if let Some(format) = format {
            return format;
        }
        let accept = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|range| range.split(';').next().unwrap_or("").trim());
        for media in accept {
            if media.eq_ignore_ascii_case("application/geo+json") {
                return Format::Geojson;
            }
            if media.eq_ignore_ascii_case("application/gpx+xml") {
                return Format::Gpx;
            }
        }
        fallback
    }
}

/// A GeoJSON FeatureCollection of positions, with longlat's paging members.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureCollection {
    /// `FeatureCollection`.
    #[serde(rename = "type")]
    #[schema(example = "FeatureCollection")]
    pub kind: &'static str,
    /// One point per position, oldest first.
    pub features: Vec<Feature>,
    /// As in a history page: pass as `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<EventId>,
    /// As in a history page: set when `after` is older than history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
}

/// A GeoJSON Feature: a position (a Point) or a trail (a LineString).
#[derive(Debug, Serialize, ToSchema)]
pub struct Feature {
    /// `Feature`.
    #[serde(rename = "type")]
    #[schema(example = "Feature")]
    pub kind: &'static str,
    /// The event's id, for a position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<EventId>,
    /// Where.
    pub geometry: Geometry,
    /// For a position, every field of the event but its coordinates; for a
    /// trail, its tracker and each point's fix time.
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
}

/// A GeoJSON geometry: `[longitude, latitude]` pairs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type")]
pub enum Geometry {
    /// One position.
    Point {
        /// `[longitude, latitude]`.
        coordinates: [f64; 2],
    },
    /// A trail, in fix-time order.
    LineString {
        /// `[longitude, latitude]` pairs, at least two.
        coordinates: Vec<[f64; 2]>,
    },
}

/// `event` as a Point feature.
pub fn point(event: &Event) -> Feature {
    let position = &event.position;
    let mut properties = match serde_json::to_value(position) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    properties.remove("longitude");
    properties.remove("latitude");
    Feature {
        kind: "Feature",
        id: Some(position.id),
        geometry: Geometry::Point {
            coordinates: [position.longitude, position.latitude],
        },
        properties,
    }
}

/// `events` as a FeatureCollection of points.
pub fn collection(
    events: &[Arc<Event>],
    next: Option<EventId>,
    gap: Option<Gap>,
) -> FeatureCollection {
    FeatureCollection {
        kind: "FeatureCollection",
        features: events.iter().map(|event| point(event)).collect(),
        next,
        gap,
    }
}

/// `events` (at least one) of `tracker` in fix-time order: its trail.
pub fn in_fix_order(mut events: Vec<Arc<Event>>) -> Vec<Arc<Event>> {
    events.sort_by_key(|e| (e.position.fix_time(), e.id()));
    events
}

/// A trail (`events` in fix-time order) as a LineString feature; a single
/// position is repeated, as a LineString needs two.
pub fn line(tracker: &str, events: &[Arc<Event>]) -> Feature {
    let mut coordinates: Vec<[f64; 2]> = events
        .iter()
        .map(|e| [e.position.longitude, e.position.latitude])
        .collect();
    if coordinates.len() == 1 {
        coordinates.push(coordinates[0]);
    }
    let times: Vec<Value> = events.iter().map(|e| Value::from(rfc3339(e))).collect();
    let mut properties = Map::new();
    properties.insert("tracker".into(), tracker.into());
    properties.insert("times".into(), Value::Array(times));
    Feature {
        kind: "Feature",
        id: None,
        geometry: Geometry::LineString { coordinates },
        properties,
    }
}

fn rfc3339(event: &Event) -> String {
    event
        .position
        .fix_time()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A trail (`events` in fix-time order) as a GPX 1.1 track.
pub fn gpx(tracker: &str, events: &[Arc<Event>]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(256 + events.len() * 120);
    out.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <gpx version=\"1.1\" creator=\"longlat\" xmlns=\"http://www.topografix.com/GPX/1/1\">\n",
    );
    let _ = write!(
        out,
        "  <trk>\n    <name>{}</name>\n    <trkseg>\n",
        escape(tracker)
    );
    for event in events {
        let p = &event.position;
        let _ = write!(
            out,
            "      <trkpt lat=\"{}\" lon=\"{}\">",
            p.latitude, p.longitude
        );
        if let Some(altitude) = p.altitude {
            let _ = write!(out, "<ele>{altitude}</ele>");
        }
        let _ = writeln!(out, "<time>{}</time></trkpt>", rfc3339(event));
    }
    out.push_str("    </trkseg>\n  </trk>\n</gpx>\n");
    out
}

/// `text` safe inside XML character data.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A response of `body` as `media_type`.
pub fn respond(media_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    let mut response = Response::new(body.into());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    response
}

/// `value` as a GeoJSON response.
pub fn geojson(value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => respond("application/geo+json", body),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A GPX download of `tracker`'s trail.
pub fn gpx_download(tracker: &str, events: &[Arc<Event>]) -> Response {
    let mut response = respond("application/gpx+xml", gpx(tracker, events));
    let file: String = tracker
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(value) = HeaderValue::try_from(format!("attachment; filename=\"{file}.gpx\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_parameter_wins_then_accept_then_the_fallback() {
        let mut headers = HeaderMap::new();
        assert_eq!(Format::wanted(None, &headers, Format::Json), Format::Json);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html, Application/GPX+XML;q=0.9, application/geo+json"),
        );
        assert_eq!(Format::wanted(None, &headers, Format::Json), Format::Gpx);
        assert_eq!(
            Format::wanted(Some(Format::Json), &headers, Format::Geojson),
            Format::Json
        );
    }
}
