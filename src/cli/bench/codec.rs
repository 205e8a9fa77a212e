//! How a published position carries its sequence number, so every delivery
//! can be matched to its send time without the server's ids: servers with
//! the tutorial's contract return none, and the tutorial's own frames are
//! just `"%f %f"` (Go's `%f`: 6 decimals).
//!
//! The sequence number is written at 5 decimals, which survive `%f`:
//! longitude = 100 + (seq mod 5,000,000) / 10⁵, in 100..150;
//! latitude = -80 + (run × 1000 + seq div 5,000,000) / 10⁵, in -80..-70.
//! A longitude beyond ±90 and a latitude within it tell the two apart in a
//! bare pair of numbers, whatever their order; `run` tells this run's
//! positions from anyone else's.

use serde::Deserialize;

/// Sequence numbers per step of the latitude.
const PER_ROW: u64 = 5_000_000;
/// Latitude steps per run.
const ROWS: u64 = 1000;
/// Distinct run tags.
const RUNS: u64 = 1000;
/// The precision the numbers are written at.
const SCALE: f64 = 1e5;
const LONGITUDE_BASE: f64 = 100.0;
const LATITUDE_BASE: f64 = -80.0;

/// The largest sequence number a run can encode.
pub const MAX_SEQ: u64 = PER_ROW * ROWS - 1;

/// Encodes and decodes the sequence numbers of one run.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    run: u64,
}

impl Codec {
    /// A codec for run `run` (taken modulo 1000).
    pub fn new(run: u64) -> Self {
        Self { run: run % RUNS }
    }

    /// The `(longitude, latitude)` carrying `seq`.
    pub fn encode(&self, seq: u64) -> (f64, f64) {
        let longitude = LONGITUDE_BASE + (seq % PER_ROW) as f64 / SCALE;
        let latitude = LATITUDE_BASE + (self.run * ROWS + seq / PER_ROW) as f64 / SCALE;
        (longitude, latitude)
    }

    /// The `POST /longlat` body for `seq`.
    pub fn body(&self, seq: u64) -> String {
        let (longitude, latitude) = self.encode(seq);
        format!(r#"{{"longitude":{longitude:.5},"latitude":{latitude:.5}}}"#)
    }

    /// The sequence number a position carries, if it is one of this run's.
    pub fn decode(&self, longitude: f64, latitude: f64) -> Option<u64> {
        let low = exact((longitude - LONGITUDE_BASE) * SCALE)?;
        let row = exact((latitude - LATITUDE_BASE) * SCALE)?;
        (low < PER_ROW && row / ROWS == self.run).then(|| (row % ROWS) * PER_ROW + low)
    }

    /// The sequence number in a frame: a JSON object with `longitude` and
    /// `latitude` (extra fields ignored), or two bare numbers.
    pub fn decode_frame(&self, frame: &str) -> Option<u64> {
        let (longitude, latitude) = coordinates(frame)?;
        self.decode(longitude, latitude)
    }
}

/// `value` as a whole number, when it is one to well within rounding.
fn exact(value: f64) -> Option<u64> {
    let rounded = value.round();
    (rounded >= 0.0 && (value - rounded).abs() < 0.01).then_some(rounded as u64)
}

#[derive(Deserialize)]
struct Coordinates {
    longitude: f64,
    latitude: f64,
}

/// The `(longitude, latitude)` in a frame, when it has them.
fn coordinates(frame: &str) -> Option<(f64, f64)> {
    let frame = frame.trim();
    if frame.starts_with('{') {
        let c: Coordinates = serde_json::from_str(frame).ok()?;
        return Some((c.longitude, c.latitude));
    }
    let mut numbers = frame.split_whitespace().map(str::parse::<f64>);
    let (Some(Ok(a)), Some(Ok(b)), None) = (numbers.next(), numbers.next(), numbers.next()) else {
        return None;
    };
    // This run's longitudes are beyond ±90, its latitudes within.
    if a.abs() > 90.0 {
        Some((a, b))
    } else {
        Some((b, a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_survive_json_and_gos_six_decimals_in_either_order() {
        let codec = Codec::new(417);
        for seq in [0, 1, 99_999, 4_999_999, 5_000_000, 123_456_789, MAX_SEQ] {
            let (longitude, latitude) = codec.encode(seq);
            assert!((100.0..150.0).contains(&longitude), "{longitude}");
            assert!((-80.0..-70.0).contains(&latitude), "{latitude}");
            let json = format!(
                r#"{{"id":"1-0","longitude":{longitude},"latitude":{latitude},"receivedAt":"x"}}"#
            );
            assert_eq!(codec.decode_frame(&json), Some(seq));
            let go = format!("{latitude:.6} {longitude:.6}");
            assert_eq!(codec.decode_frame(&go), Some(seq), "{go}");
            let swapped = format!("{longitude:.6} {latitude:.6}");
            assert_eq!(codec.decode_frame(&swapped), Some(seq), "{swapped}");
            let body: Coordinates = serde_json::from_str(&codec.body(seq)).unwrap();
            assert_eq!(codec.decode(body.longitude, body.latitude), Some(seq));
        }
    }

    #[test]
    fn other_positions_are_not_taken_for_this_runs() {
        let codec = Codec::new(7);
        let (longitude, latitude) = Codec::new(8).encode(42);
        assert_eq!(codec.decode(longitude, latitude), None);
        assert_eq!(codec.decode_frame("59.334591 18.063240"), None);
        assert_eq!(
            codec.decode_frame(r#"{"longitude":100.000015,"latitude":-79.993}"#),
            None
        );
        assert_eq!(codec.decode_frame(r#"{"type":"gap"}"#), None);
        assert_eq!(codec.decode_frame("hello"), None);
    }
}
