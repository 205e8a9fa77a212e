//! Tracker apps' own protocols, read into positions: people post from
//! phones running OwnTracks, OsmAnd or Traccar Client, which speak their
//! own documented HTTP formats and cannot be taught longlat's.
//!
//! Each format is only read here, into a [`PositionInput`] with units
//! converted (km/h and knots to m/s, a battery fraction to percent, Unix
//! times to RFC 3339); the HTTP adapter hands it to the one publish path
//! ([`crate::publish`]), which authorizes, validates and stores it exactly
//! like `POST /longlat`.
//!
//! [`PositionInput`]: crate::model::PositionInput

pub mod osmand;
pub mod owntracks;

use time::OffsetDateTime;

use crate::error::Error;

/// A field the app sent that cannot be read: refused naming the app's own
/// field name.
fn bad_field(field: &str, rule: &str, sent: &str) -> Error {
    let shown: String = sent.chars().take(40).collect();
    Error::InvalidBody {
        detail: format!("{field} must be {rule}, got {shown:?}"),
        field: Some(field.to_owned()),
    }
}

/// A field the app sent as the wrong kind of JSON value.
fn wrong_type(field: &str, rule: &str) -> Error {
    Error::InvalidBody {
        detail: format!("{field} must be {rule}"),
        field: Some(field.to_owned()),
    }
}

/// A required field the app did not send.
fn missing(field: &str, what: &str) -> Error {
    Error::InvalidBody {
        detail: format!("{field} is missing: it must be {what}"),
        field: Some(field.to_owned()),
    }
}

/// The time `seconds` after the Unix epoch, whole or fractional.
fn unix_time(seconds: f64) -> Option<OffsetDateTime> {
    let nanos = (seconds * 1e9).round();
    if !nanos.is_finite() {
        return None;
    }
    OffsetDateTime::from_unix_timestamp_nanos(nanos as i128).ok()
}

/// A reading an app marks as unknown with a negative number (iOS reports a
/// speed or course of -1 when it has none) is left out.
fn known(value: Option<f64>) -> Option<f64> {
    value.filter(|v| *v >= 0.0)
}
