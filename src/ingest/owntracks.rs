//! OwnTracks in HTTP mode: the app POSTs each message as JSON, a location
//! as `{"_type":"location","lat":..,"lon":..,"tst":..,…}`, and expects a
//! JSON array in the answer. Other message types (`lwt`, `transition`,
//! `waypoint`, `encrypted`, …) and empty bodies (a deleted friend) are
//! acknowledged and ignored.
//!
//! The tracker is `user/device`, from the `X-Limit-U` and `X-Limit-D`
//! headers the app sends, else from the message's `topic`
//! (`owntracks/user/device`), else its `tid`.

use serde::Deserialize;
use utoipa::ToSchema;

use super::{bad_field, known, missing, unix_time, wrong_type};
use crate::error::Error;
use crate::model::PositionInput;

/// An OwnTracks location message, as the app sends it (other fields are
/// ignored).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"_type": "location", "lat": 59.3345, "lon": 18.0632, "tst": 1764000000,
    "tid": "ph", "acc": 12, "alt": 28, "vel": 36, "cog": 270, "batt": 87}))]
pub struct OwnTracksLocation {
    /// The message type: only `location` is published.
    #[serde(rename = "_type")]
    pub kind: String,
    /// Latitude, degrees.
    pub lat: Option<f64>,
    /// Longitude, degrees.
    pub lon: Option<f64>,
    /// When the fix was taken, Unix seconds: `recordedAt`.
    pub tst: Option<f64>,
    /// Accuracy in metres: `accuracy`.
    pub acc: Option<f64>,
    /// Altitude in metres: `altitude`.
    pub alt: Option<f64>,
    /// Speed in km/h: `speed`, in m/s.
    pub vel: Option<f64>,
    /// Course over ground, degrees: `heading`.
    pub cog: Option<f64>,
    /// Battery level, percent: `battery`.
    pub batt: Option<f64>,
    /// Two-letter tracker id: the tracker when nothing else names it.
    pub tid: Option<String>,
    /// `owntracks/<user>/<device>`: the tracker `<user>/<device>` when the
    /// headers do not name it.
    pub topic: Option<String>,
}

/// The user and device the app named in `X-Limit-U` / `X-Limit-D`.
#[derive(Debug, Default)]
pub struct Sender<'a> {
    /// `X-Limit-U`.
    pub user: Option<&'a str>,
    /// `X-Limit-D`.
    pub device: Option<&'a str>,
}

/// The position in an OwnTracks message, or `None` for a message that is
/// acknowledged and ignored (empty, or not a location).
pub fn read(sender: &Sender<'_>, body: &[u8]) -> Result<Option<PositionInput>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| Error::MalformedBody {
            detail: format!(
                "the body is not an OwnTracks JSON message (line {}, column {})",
                err.line(),
                err.column()
            ),
            field: None,
        })?;
    if value.get("_type").and_then(|t| t.as_str()) != Some("location") {
        return Ok(None);
    }
    let location: OwnTracksLocation = serde_path_to_error::deserialize(value).map_err(|err| {
        let field = err.path().to_string();
        let rule = match field.as_str() {
            "tid" | "topic" | "_type" => "a string",
            _ => "a number",
        };
        wrong_type(&field, rule)
    })?;
    Ok(Some(position(sender, location)?))
}

fn position(sender: &Sender<'_>, location: OwnTracksLocation) -> Result<PositionInput, Error> {
    let latitude = location.lat.ok_or_else(|| missing("lat", "a latitude"))?;
    let longitude = location.lon.ok_or_else(|| missing("lon", "a longitude"))?;
    let recorded_at = match location.tst {
        None => None,
        Some(tst) => Some(
            unix_time(tst)
                .ok_or_else(|| bad_field("tst", "a time in Unix seconds", &tst.to_string()))?,
        ),
    };
    Ok(PositionInput {
        longitude,
        latitude,
        tracker: tracker(sender, location.topic.as_deref(), location.tid),
        recorded_at,
        accuracy: known(location.acc),
        altitude: location.alt,
        speed: known(location.vel).map(|kmh| kmh / 3.6),
        heading: known(location.cog),
        battery: known(location.batt),
    })
}

/// `user/device` from the headers, else from the topic, else the `tid`.
fn tracker(sender: &Sender<'_>, topic: Option<&str>, tid: Option<String>) -> Option<String> {
    match (sender.user, sender.device) {
        (Some(user), Some(device)) => return Some(format!("{user}/{device}")),
        (Some(user), None) => return Some(user.to_owned()),
        _ => {}
    }
    let from_topic = topic.and_then(|topic| {
        let mut parts = topic.strip_prefix("owntracks/")?.split('/');
        Some(format!("{}/{}", parts.next()?, parts.next()?))
    });
    from_topic.or(tid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_maps_onto_a_position_with_units_converted() {
        let body = br#"{"_type":"location","lat":59.3345,"lon":18.0632,"tst":1764000000,
            "tid":"ph","acc":12,"alt":28,"vel":36,"cog":270,"batt":87,"BSSID":"x","conn":"w"}"#;
        let sender = Sender {
            user: Some("alice"),
            device: Some("phone"),
        };
        let position = read(&sender, body).unwrap().unwrap();
        assert_eq!(position.tracker.as_deref(), Some("alice/phone"));
        assert_eq!((position.latitude, position.longitude), (59.3345, 18.0632));
        assert_eq!(
            position.recorded_at.unwrap().unix_timestamp(),
            1_764_000_000
        );
        assert_eq!(position.speed, Some(10.0));
        assert_eq!(
            (
                position.accuracy,
                position.altitude,
                position.heading,
                position.battery
            ),
            (Some(12.0), Some(28.0), Some(270.0), Some(87.0))
        );
    }

    #[test]
    fn the_tracker_comes_from_the_headers_then_the_topic_then_the_tid() {
        let body =
            br#"{"_type":"location","lat":1,"lon":2,"tid":"ph","topic":"owntracks/bob/tab"}"#;
        let tracker = |sender| read(&sender, body).unwrap().unwrap().tracker;
        assert_eq!(tracker(Sender::default()).as_deref(), Some("bob/tab"));
        let only_tid = br#"{"_type":"location","lat":1,"lon":2,"tid":"ph","vel":-1}"#;
        let position = read(&Sender::default(), only_tid).unwrap().unwrap();
        assert_eq!(
            (position.tracker.as_deref(), position.speed),
            (Some("ph"), None)
        );
    }

    #[test]
    fn other_messages_and_empty_bodies_are_ignored_and_bad_fields_named() {
        for ignored in [
            &b""[..],
            b"  ",
            br#"{"_type":"lwt","tst":1}"#,
            br#"{"_type":"encrypted","data":"x"}"#,
        ] {
            assert!(read(&Sender::default(), ignored).unwrap().is_none());
        }
        let no_lat = read(&Sender::default(), br#"{"_type":"location","lon":2}"#).unwrap_err();
        assert_eq!(no_lat.field().as_deref(), Some("lat"));
        let bad_vel = read(
            &Sender::default(),
            br#"{"_type":"location","lat":1,"lon":2,"vel":"fast"}"#,
        );
        assert_eq!(bad_vel.unwrap_err().field().as_deref(), Some("vel"));
    }
}
