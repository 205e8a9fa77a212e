//! The OsmAnd protocol, as Traccar defines it and OsmAnd and Traccar Client
//! send it: query or form parameters (`id`, `lat`, `lon`, `timestamp`,
//! `speed`, `bearing`, `altitude`, `accuracy`, `batt`), or, from Traccar
//! Client 9 on, the JSON of its location SDK
//! (`{"location":{"timestamp","coords":{…},"battery":{"level"}},"device_id"}`).
//!
//! Units follow Traccar's reader of the protocol: the `speed` parameter is
//! in knots (Traccar Client sends knots), unless `speed_unit` says `mps` or
//! `kmh` (OsmAnd's own online tracking sends its speed as the phone reports
//! it, in m/s); the JSON's speed is in m/s and its battery level a fraction
//! from 0 to 1. A `timestamp` of digits is Unix seconds, or milliseconds
//! when it is too large for seconds (Traccar's rule); otherwise ISO 8601 or
//! `yyyy-MM-dd HH:mm:ss` (UTC).

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::{Iso8601, Rfc3339};
use utoipa::{IntoParams, ToSchema};

use super::{bad_field, known, missing, unix_time, wrong_type};
use crate::error::Error;
use crate::model::PositionInput;

/// Metres per second in a knot.
const KNOT: f64 = 1852.0 / 3600.0;

/// The OsmAnd parameters longlat reads (others, like `hdop` or `valid`,
/// are ignored), from the query string or a form body.
#[derive(Debug, Default, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct OsmAndParams {
    /// The device: the tracker name (`deviceid` is read the same).
    #[param(example = "bus-42")]
    pub id: Option<String>,
    /// Latitude, degrees.
    #[param(value_type = f64)]
    #[schema(value_type = f64)]
    pub lat: Option<String>,
    /// Longitude, degrees.
    #[param(value_type = f64)]
    #[schema(value_type = f64)]
    pub lon: Option<String>,
    /// When the fix was taken: Unix seconds, milliseconds, or ISO 8601.
    pub timestamp: Option<String>,
    /// Speed, in knots unless `speed_unit` says otherwise.
    #[param(value_type = f64)]
    #[schema(value_type = f64)]
    pub speed: Option<String>,
    /// `kn` (the default, as Traccar reads `speed`), `mps` or `kmh`.
    #[param(value_type = String, example = "mps")]
    #[schema(example = "mps")]
    pub speed_unit: Option<String>,
    /// Direction of travel, degrees (`heading` is read the same).
    #[param(value_type = f64)]
    #[schema(value_type = f64)]
    pub bearing: Option<String>,
    /// Altitude, metres.
    #[param(value_type = f64)]
    #[schema(value_type = f64)]
    pub altitude: Option<String>,
    /// Accuracy, metres.
    #[param(value_type = f64)]
    #[schema(value_type = f64)]
    pub accuracy: Option<String>,
    /// Battery level, percent.
    #[param(value_type = f64)]
    #[schema(value_type = f64)]
    pub batt: Option<String>,
}

/// The position in OsmAnd parameters: `pairs` from the query string, then
/// the form body (a parameter in both is read from the query, as Traccar
/// does when the query has any).
pub fn read_params<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> Result<PositionInput, Error> {
    let mut params = OsmAndParams::default();
    for (name, value) in pairs {
        let slot = match name.as_ref() {
            "id" | "deviceid" => &mut params.id,
            "lat" => &mut params.lat,
            "lon" => &mut params.lon,
            "timestamp" => &mut params.timestamp,
            "speed" => &mut params.speed,
            "speed_unit" => &mut params.speed_unit,
            "bearing" | "heading" => &mut params.bearing,
            "altitude" => &mut params.altitude,
            "accuracy" => &mut params.accuracy,
            "batt" => &mut params.batt,
            _ => continue,
        };
        slot.get_or_insert_with(|| value.into_owned());
    }
    position(params)
}

fn position(params: OsmAndParams) -> Result<PositionInput, Error> {
    let number = |field: &str, value: &Option<String>| -> Result<Option<f64>, Error> {
        value
            .as_deref()
            .map(|text| {
                text.trim()
                    .parse::<f64>()
                    .map_err(|_| bad_field(field, "a number", text))
            })
            .transpose()
    };
    let per_unit = match params.speed_unit.as_deref() {
        None | Some("kn") => KNOT,
        Some("mps") => 1.0,
        Some("kmh") => 1.0 / 3.6,
        Some(other) => return Err(bad_field("speed_unit", "kn, mps or kmh", other)),
    };
    let latitude = number("lat", &params.lat)?.ok_or_else(|| missing("lat", "a latitude"))?;
    let longitude = number("lon", &params.lon)?.ok_or_else(|| missing("lon", "a longitude"))?;
    Ok(PositionInput {
        longitude,
        latitude,
        tracker: params.id,
        recorded_at: params.timestamp.as_deref().map(timestamp).transpose()?,
        accuracy: known(number("accuracy", &params.accuracy)?),
        altitude: number("altitude", &params.altitude)?,
        speed: known(number("speed", &params.speed)?).map(|speed| speed * per_unit),
        heading: known(number("bearing", &params.bearing)?),
        battery: known(number("batt", &params.batt)?),
    })
}

/// A `timestamp`: Unix seconds or milliseconds, ISO 8601, or
/// `yyyy-MM-dd HH:mm:ss` in UTC.
fn timestamp(text: &str) -> Result<OffsetDateTime, Error> {
    let text = text.trim();
    let refused = || {
        bad_field(
            "timestamp",
            "Unix seconds or milliseconds, or an ISO 8601 time",
            text,
        )
    };
    if let Ok(whole) = text.parse::<i64>() {
        // Traccar's rule: below 2^31 it is seconds, above milliseconds.
        let nanos = match whole < i64::from(i32::MAX) {
            true => i128::from(whole) * 1_000_000_000,
            false => i128::from(whole) * 1_000_000,
        };
        return OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| refused());
    }
    if let Ok(fractional) = text.parse::<f64>() {
        return unix_time(fractional).ok_or_else(refused);
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .or_else(|_| OffsetDateTime::parse(&format!("{}Z", text.replacen(' ', "T", 1)), &Rfc3339))
        .map_err(|_| refused())
}

/// Traccar Client's JSON (from version 9): its location SDK's record.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"location": {"timestamp": "2026-11-25T05:24:40.000Z",
    "coords": {"latitude": 59.3345, "longitude": 18.0632, "accuracy": 5, "speed": 8.3,
    "heading": 270, "altitude": 28}, "is_moving": true, "battery": {"level": 0.87, "is_charging": false}},
    "device_id": "48241179"}))]
pub struct TraccarClientLocation {
    /// The fix.
    pub location: TraccarLocation,
    /// The device: the tracker name.
    pub device_id: Option<String>,
}

/// The fix in [`TraccarClientLocation`] (other fields are ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TraccarLocation {
    /// When it was taken, ISO 8601: `recordedAt`.
    pub timestamp: Option<String>,
    /// Where.
    pub coords: TraccarCoords,
    /// The phone's battery.
    pub battery: Option<TraccarBattery>,
}

/// Coordinates and motion of a [`TraccarLocation`].
#[derive(Debug, Deserialize, ToSchema)]
pub struct TraccarCoords {
    /// Degrees.
    pub latitude: f64,
    /// Degrees.
    pub longitude: f64,
    /// Metres: `accuracy`.
    pub accuracy: Option<f64>,
    /// m/s (-1 when unknown): `speed`.
    pub speed: Option<f64>,
    /// Degrees (-1 when unknown): `heading`.
    pub heading: Option<f64>,
    /// Metres: `altitude`.
    pub altitude: Option<f64>,
}

/// The battery of a [`TraccarLocation`].
#[derive(Debug, Deserialize, ToSchema)]
pub struct TraccarBattery {
    /// From 0 to 1 (-1 when unknown): `battery`, in percent.
    pub level: Option<f64>,
}

/// The position in Traccar Client's JSON.
pub fn read_json(body: &[u8]) -> Result<PositionInput, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let sent: TraccarClientLocation =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            let field = err.path().to_string();
            match err.inner().classify() {
                serde_json::error::Category::Data if field != "." => {
                    wrong_type(&field, "as Traccar Client sends it")
                }
                serde_json::error::Category::Data => Error::InvalidBody {
                    detail: format!("the body is not Traccar Client's JSON: {}", err.inner()),
                    field: None,
                },
                _ => Error::MalformedBody {
                    detail: "the body is not JSON".into(),
                    field: None,
                },
            }
        })?;
    let TraccarLocation {
        timestamp: at,
        coords,
        battery,
    } = sent.location;
    Ok(PositionInput {
        longitude: coords.longitude,
        latitude: coords.latitude,
        tracker: sent.device_id,
        recorded_at: at.as_deref().map(timestamp).transpose()?,
        accuracy: known(coords.accuracy),
        altitude: coords.altitude,
        speed: known(coords.speed),
        heading: known(coords.heading),
        battery: known(battery.and_then(|b| b.level)).map(|level| level * 100.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Result<PositionInput, Error> {
        read_params(form_urlencoded::parse(text.as_bytes()))
    }

    #[test]
    fn parameters_map_onto_a_position_with_speed_in_knots_by_default() {
        let position = query(
            "id=bus-42&lat=59.3345&lon=18.0632&timestamp=1764000000&speed=10&bearing=90&altitude=28&accuracy=5&batt=87&hdop=1.2&valid=true",
        )
        .unwrap();
        assert_eq!(position.tracker.as_deref(), Some("bus-42"));
        assert_eq!(
            position.recorded_at.unwrap().unix_timestamp(),
            1_764_000_000
        );
        assert!((position.speed.unwrap() - 5.144_444).abs() < 1e-5);
        assert_eq!(
            (position.heading, position.battery),
            (Some(90.0), Some(87.0))
        );
        let mps = query("deviceid=x&lat=1&lon=2&speed=10&speed_unit=mps&heading=-1").unwrap();
        assert_eq!(
            (mps.tracker.as_deref(), mps.speed, mps.heading),
            (Some("x"), Some(10.0), None)
        );
    }

    #[test]
    fn timestamps_may_be_seconds_milliseconds_or_iso_8601() {
        for (text, seconds) in [
            ("1764000000", 1_764_000_000),
            ("1764000000123", 1_764_000_000),
            ("1764000000.5", 1_764_000_000),
            ("2025-11-24T16:00:00Z", 1_764_000_000),
            ("2025-11-24T17:00:00.000+01:00", 1_764_000_000),
            ("2025-11-24 16:00:00", 1_764_000_000),
        ] {
            assert_eq!(timestamp(text).unwrap().unix_timestamp(), seconds, "{text}");
        }
        assert_eq!(
            timestamp("yesterday").unwrap_err().field().as_deref(),
            Some("timestamp")
        );
    }

    #[test]
    fn missing_or_bad_parameters_are_named() {
        assert_eq!(
            query("id=a&lon=2").unwrap_err().field().as_deref(),
            Some("lat")
        );
        assert_eq!(
            query("id=a&lat=x&lon=2").unwrap_err().field().as_deref(),
            Some("lat")
        );
        let unit = query("lat=1&lon=2&speed=1&speed_unit=mph").unwrap_err();
        assert_eq!(unit.field().as_deref(), Some("speed_unit"));
    }

    #[test]
    fn traccar_client_json_maps_speed_in_mps_and_the_battery_fraction_to_percent() {
        let body =
            br#"{"location":{"timestamp":"2025-11-24T16:00:00.000Z","coords":{"latitude":59.3,
            "longitude":18.1,"accuracy":5,"speed":8.5,"heading":-1,"altitude":28},"is_moving":true,
            "odometer":0,"event":"motionchange","battery":{"level":0.87,"is_charging":false},
            "activity":{"type":"still"},"extras":{}},"device_id":"48241179"}"#;
        let position = read_json(body).unwrap();
        assert_eq!(position.tracker.as_deref(), Some("48241179"));
        assert_eq!((position.speed, position.heading), (Some(8.5), None));
        assert_eq!(position.battery, Some(87.0));
        assert_eq!(
            position.recorded_at.unwrap().unix_timestamp(),
            1_764_000_000
        );
        let bad = read_json(br#"{"location":{"coords":{"latitude":"x","longitude":1}}}"#);
        assert_eq!(
            bad.unwrap_err().field().as_deref(),
            Some("location.coords.latitude")
        );
    }
}
