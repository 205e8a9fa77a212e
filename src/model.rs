//! The typed event: what a client sends, what the broker accepts and what
//! every transport sends out.
//!
//! One type per concept, shared by REST, GraphQL and OpenAPI. Validation
//! lives here and nowhere else: [`PositionInput::validate`] is the only way
//! to build a [`ValidPosition`], and the broker accepts nothing else. What
//! a subscriber asks for ([`Filter`], a cursor) is parsed here once for
//! every transport, and what it is told when events were lost ([`Gap`]) is
//! decided here once. So is what a zone is ([`Zone`], checked by
//! [`ZoneInput::validate`]) and how far a point is from it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

mod filter;
mod scope;
mod transition;
mod zone;

pub use filter::{
    InvalidParameter, OutOfScope, check_tracker, check_zone_name, parse_cursor, parse_id,
    parse_zones,
};
pub use scope::{InvalidScope, ReadScope, UNTRACKED};
pub use transition::{Crossing, Transition, ZoneEvent};
pub(crate) use zone::reach_degrees;
pub use zone::{
    Circle, InvalidZone, Polygon, PolygonType, Shape, ZONE_NAME_RULE, Zone, ZoneInput,
    is_valid_zone_name,
};

/// Longest allowed `tracker` name, in bytes (every allowed byte is ASCII).
pub const TRACKER_MAX_LEN: usize = 64;

/// The tracker name rule, in words, wherever it is stated.
pub const TRACKER_RULE: &str = "1 to 64 characters from A-Z a-z 0-9 . _ : - /";

/// A position as a client sends it, before validation.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, async_graphql::InputObject)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"longitude": 18.06324, "latitude": 59.334591, "tracker": "bus-42"}))]
pub struct PositionInput {
    /// Degrees east of Greenwich, -180 to 180.
    #[schema(minimum = -180.0, maximum = 180.0, example = 18.06324)]
    pub longitude: f64,
    /// Degrees north of the equator, -90 to 90.
    #[schema(minimum = -90.0, maximum = 90.0, example = 59.334591)]
    pub latitude: f64,
    /// Optional name of the device: 1 to 64 characters from
    /// `A-Z a-z 0-9 . _ : - /` (`bus-42`, `alice/phone`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._:/-]{1,64}$", example = "bus-42")]
    pub tracker: Option<String>,
    /// When the device took the fix (RFC 3339), if it says: a buffered fix
    /// sent late is kept and delivered but does not replace a newer latest
    /// position. A time after the position arrived counts as its arrival.
    #[serde(default, deserialize_with = "present_time")]
    #[schema(value_type = String, format = DateTime, required = false, example = "2026-11-25T05:24:40Z")]
    pub recorded_at: Option<OffsetDateTime>,
    /// Horizontal accuracy in metres (radius), 0 or more.
    #[serde(default, deserialize_with = "present_number")]
    #[schema(value_type = f64, required = false, minimum = 0.0, example = 12.0)]
    pub accuracy: Option<f64>,
    /// Altitude in metres above sea level, -12000 to 100000.
    #[serde(default, deserialize_with = "present_number")]
    #[schema(value_type = f64, required = false, minimum = -12000.0, maximum = 100000.0, example = 28.0)]
    pub altitude: Option<f64>,
    /// Speed over ground in metres per second, 0 or more.
    #[serde(default, deserialize_with = "present_number")]
    #[schema(value_type = f64, required = false, minimum = 0.0, example = 8.3)]
    pub speed: Option<f64>,
    /// Direction of travel in degrees clockwise from true north, 0 to 360.
    #[serde(default, deserialize_with = "present_number")]
    #[schema(value_type = f64, required = false, minimum = 0.0, maximum = 360.0, example = 270.0)]
    pub heading: Option<f64>,
    /// The device's battery level in percent, 0 to 100.
    #[serde(default, deserialize_with = "present_number")]
    #[schema(value_type = f64, required = false, minimum = 0.0, maximum = 100.0, example = 87.0)]
    pub battery: Option<f64>,
}

/// Why a [`PositionInput`] was refused. Each variant names its field and rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidPosition {
    /// Longitude outside -180..180 or not a finite number.
    #[error("longitude must be a number from -180 to 180, got {0}")]
    Longitude(f64),
    /// Latitude outside -90..90 or not a finite number.
    #[error("latitude must be a number from -90 to 90, got {0}")]
    Latitude(f64),
    /// Tracker name empty, too long or with a character outside the allowed set.
    #[error("tracker must be {TRACKER_RULE} (got {0:?})")]
    Tracker(String),
    /// A negative or non-finite accuracy.
    #[error("accuracy must be a number of metres, 0 or more, got {0}")]
    Accuracy(f64),
    /// An altitude out of range.
    #[error("altitude must be a number of metres from -12000 to 100000, got {0}")]
    Altitude(f64),
    /// A negative or non-finite speed.
    #[error("speed must be a number of metres per second, 0 or more, got {0}")]
    Speed(f64),
    /// A heading out of range.
    #[error("heading must be a number of degrees from 0 to 360, got {0}")]
    Heading(f64),
    /// A battery level out of range.
    #[error("battery must be a percentage from 0 to 100, got {0}")]
    Battery(f64),
}

impl InvalidPosition {
    /// The name of the offending field, as the client spelled it.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Longitude(_) => "longitude",
            Self::Latitude(_) => "latitude",
            Self::Tracker(_) => "tracker",
            Self::Accuracy(_) => "accuracy",
            Self::Altitude(_) => "altitude",
            Self::Speed(_) => "speed",
            Self::Heading(_) => "heading",
            Self::Battery(_) => "battery",
        }
    }
}

/// Whether `name` is an acceptable tracker name (see [`TRACKER_RULE`]).
pub fn is_valid_tracker(name: &str) -> bool {
    (1..=TRACKER_MAX_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-' | b'/'))
}

/// An optional number that, when sent, is a number: `null` is refused
/// rather than taken for absent, as a form could not send it.
fn present_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    f64::deserialize(d).map(Some)
}

/// An optional RFC 3339 time that, when sent, is a time (not `null`).
fn present_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<OffsetDateTime>, D::Error> {
    time::serde::rfc3339::deserialize(d).map(Some)
}

/// Whether `value` is a finite number in `range`.
fn within(value: Option<f64>, range: std::ops::RangeInclusive<f64>) -> Result<(), f64> {
    match value {
        Some(v) if !(v.is_finite() && range.contains(&v)) => Err(v),
        _ => Ok(()),
    }
}

impl PositionInput {
    /// The fields a client may send, in the order the examples show them.
    pub const FIELDS: [&'static str; 9] = [
        "longitude",
        "latitude",
        "tracker",
        "recordedAt",
        "accuracy",
        "altitude",
        "speed",
        "heading",
        "battery",
    ];

    /// A position at these coordinates, with nothing else said.
    pub fn at(longitude: f64, latitude: f64) -> Self {
        Self {
            longitude,
            latitude,
            ..Self::default()
        }
    }

    /// What `field` must hold, in words, for error messages that must not
    /// speak of Rust types; `None` for a field a position does not have.
    pub fn rule(field: &str) -> Option<&'static str> {
        match field {
            "longitude" => Some("a number from -180 to 180"),
            "latitude" => Some("a number from -90 to 90"),
            "tracker" => Some("a string of 1 to 64 characters from A-Z a-z 0-9 . _ : - /"),
            "recordedAt" => Some("an RFC 3339 time like 2026-11-25T05:24:40Z"),
            "accuracy" => Some("a number of metres, 0 or more"),
            "altitude" => Some("a number of metres from -12000 to 100000"),
            "speed" => Some("a number of metres per second, 0 or more"),
            "heading" => Some("a number of degrees from 0 to 360"),
            "battery" => Some("a percentage from 0 to 100"),
            _ => None,
        }
    }

    /// Checks every rule and returns the position the broker may publish.
    pub fn validate(self) -> Result<ValidPosition, InvalidPosition> {
        use InvalidPosition as Invalid;
        within(Some(self.longitude), -180.0..=180.0).map_err(Invalid::Longitude)?;
        within(Some(self.latitude), -90.0..=90.0).map_err(Invalid::Latitude)?;
        if let Some(tracker) = &self.tracker
            && !is_valid_tracker(tracker)
        {
            let shown: String = tracker.chars().take(TRACKER_MAX_LEN + 8).collect();
            return Err(Invalid::Tracker(shown));
        }
        within(self.accuracy, 0.0..=f64::MAX).map_err(Invalid::Accuracy)?;
        within(self.altitude, -12_000.0..=100_000.0).map_err(Invalid::Altitude)?;
        within(self.speed, 0.0..=f64::MAX).map_err(Invalid::Speed)?;
        within(self.heading, 0.0..=360.0).map_err(Invalid::Heading)?;
        within(self.battery, 0.0..=100.0).map_err(Invalid::Battery)?;
        Ok(ValidPosition(self))
    }
}

/// A position that passed [`PositionInput::validate`]; only validation builds one.
#[derive(Debug, Clone)]
pub struct ValidPosition(PositionInput);

impl ValidPosition {
    /// Stamps the position with its broker-assigned id and arrival time.
    pub fn into_event(self, id: EventId, received_at: OffsetDateTime) -> PositionEvent {
        let PositionInput {
            longitude,
            latitude,
            tracker,
            recorded_at,
            accuracy,
            altitude,
            speed,
            heading,
            battery,
        } = self.0;
        PositionEvent {
            id,
            longitude,
            latitude,
            tracker,
            received_at,
            recorded_at,
            accuracy,
            altitude,
            speed,
            heading,
            battery,
        }
    }

    /// The tracker it is for, if it names one.
    pub fn tracker(&self) -> Option<&str> {
        self.0.tracker.as_deref()
    }

    /// Its longitude and latitude.
    pub fn coordinates(&self) -> (f64, f64) {
        (self.0.longitude, self.0.latitude)
    }
}

/// The ordered id of an event, `"<milliseconds>-<sequence>"` (the shape of a
/// Redis stream id). Later events have greater ids; it is the resume cursor
/// on every transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId {
    /// Milliseconds since the Unix epoch when the id was assigned.
    pub millis: u64,
    /// Order among ids assigned within the same millisecond.
    pub seq: u64,
}

impl EventId {
    /// The smallest id greater than `self` whose time part is at least `millis`.
    pub fn next_after(self, millis: u64) -> EventId {
        if millis > self.millis {
            EventId { millis, seq: 0 }
        } else {
            EventId {
                millis: self.millis,
                seq: self.seq + 1,
            }
        }
    }

    /// The greatest id below `self`: nothing can lie between the two.
    pub fn just_before(self) -> EventId {
        match self.seq {
            0 => EventId {
                millis: self.millis.saturating_sub(1),
                seq: u64::MAX,
            },
            seq => EventId {
                millis: self.millis,
                seq: seq - 1,
            },
        }
    }

    /// The id as text (`<millis>-<seq>`), written without the formatting
    /// machinery: every publish writes its id three times (in its JSON,
    /// its SSE `id:` line and the `Location` header).
    pub fn text(self) -> EventIdText {
        let mut millis = itoa::Buffer::new();
        let mut seq = itoa::Buffer::new();
        let (millis, seq) = (millis.format(self.millis), seq.format(self.seq));
        let mut text = EventIdText {
            bytes: [0; 41],
            len: millis.len() + 1 + seq.len(),
        };
        text.bytes[..millis.len()].copy_from_slice(millis.as_bytes());
        text.bytes[millis.len()] = b'-';
        text.bytes[millis.len() + 1..text.len].copy_from_slice(seq.as_bytes());
        text
    }
}

/// An [`EventId`] as text, on the stack: two `u64`s in decimal and a dash.
#[derive(Debug, Clone, Copy)]
pub struct EventIdText {
    bytes: [u8; 41],
    len: usize,
}

impl EventIdText {
    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("digits and a dash")
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

/// An event id that does not have the `"<milliseconds>-<sequence>"` shape.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("an event id looks like 1764000000000-0 (milliseconds, a dash, a sequence number)")]
pub struct InvalidEventId;

impl FromStr for EventId {
    type Err = InvalidEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (millis, seq) = s.split_once('-').unwrap_or((s, "0"));
        let digits = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(InvalidEventId);
            }
            part.parse::<u64>().map_err(|_| InvalidEventId)
        };
        Ok(EventId {
            millis: digits(millis)?,
            seq: digits(seq)?,
        })
    }
}

/// The pattern every event id matches.
pub const EVENT_ID_PATTERN: &str = "^[0-9]{1,19}(-[0-9]{1,19})?$";

impl utoipa::PartialSchema for EventId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(EVENT_ID_PATTERN))
            .description(Some(
                "Ordered event id, `<milliseconds>-<sequence>`: later events have greater ids. \
                 The resume cursor on every stream.",
            ))
            .examples([serde_json::json!("1795584285108-0")])
            .into()
    }
}

impl ToSchema for EventId {}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.text().as_str())
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A stored position: what `POST /longlat` answers and every subscriber receives.
///
/// The optional fields are absent from its JSON when the device did not
/// send them, so a position of longitude and latitude reads as it always did.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, async_graphql::SimpleObject,
)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"id": "1795584285108-0", "longitude": 18.06324, "latitude": 59.334591,
    "tracker": "bus-42", "receivedAt": "2026-11-25T05:24:45.108992Z"}))]
#[graphql(complex)]
pub struct PositionEvent {
    /// Broker-assigned, ordered id; the resume cursor.
    #[graphql(skip)]
    pub id: EventId,
    /// Degrees east, -180 to 180.
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: f64,
    /// Degrees north, -90 to 90.
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: f64,
    /// The device that sent it, when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker: Option<String>,
    /// When the broker accepted it (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: OffsetDateTime,
    /// When the device took the fix (RFC 3339), when it said.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub recorded_at: Option<OffsetDateTime>,
    /// Horizontal accuracy in metres, when the device said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Altitude in metres above sea level, when the device said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude: Option<f64>,
    /// Speed over ground in metres per second, when the device said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// Direction of travel in degrees from true north, when the device said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<f64>,
    /// Battery level in percent, when the device said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery: Option<f64>,
}

impl PositionEvent {
    /// When the fix was taken: the device's `recordedAt`, else the
    /// arrival; never after the arrival, so a device clock running ahead
    /// cannot keep a position latest until its time comes.
    pub fn fix_time(&self) -> OffsetDateTime {
        self.recorded_at
            .map_or(self.received_at, |at| at.min(self.received_at))
    }

    /// Whether this is a later position of its device than `other`: by fix
    /// time, then by id. The one rule for a tracker's latest position, so a
    /// buffered fix that arrives late never replaces a newer one.
    pub fn is_later_fix_than(&self, other: &PositionEvent) -> bool {
        (self.fix_time(), self.id) > (other.fix_time(), other.id)
    }
}

#[async_graphql::ComplexObject]
impl PositionEvent {
    /// Broker-assigned, ordered id (`"<milliseconds>-<sequence>"`); pass it as
    /// `after` to resume a subscription or page through history.
    #[graphql(name = "id")]
    async fn graphql_id(&self) -> async_graphql::ID {
        self.id.into()
    }
}

/// A published event: a position, or a zone event (a tracker entering or
/// leaving a zone, with the position that crossed), and its wire forms,
/// built once at publish so every subscriber of a transport is sent the
/// same bytes.
#[derive(Debug)]
pub struct Event {
    /// The position; of a zone event, the position that crossed the border.
    pub position: PositionEvent,
    /// Set on a zone event: its id, the zone and which way it was crossed.
    pub transition: Option<Transition>,
    /// The event as compact JSON text (valid UTF-8): the position, or the
    /// [`ZoneEvent`].
    pub json: bytes::Bytes,
    /// The Server-Sent Events frame: `id:`, `event:` (`position`, `enter`
    /// or `leave`), `data:` the JSON.
    pub sse: bytes::Bytes,
    /// The WebSocket text frame (from the server: unmasked) carrying `json`.
    pub ws: bytes::Bytes,
}

impl Event {
    /// A position event: serialises `position` once, and lays out its wire
    /// forms (see [`crate::wire::event_forms`]).
    pub fn new(position: PositionEvent) -> Self {
        let forms = crate::wire::event_forms(position.id, "position", &position);
        Self::with_forms(position, None, forms)
    }

    /// The zone event `transition` made of `position`, the position that
    /// crossed the border.
    pub fn zone(position: PositionEvent, transition: Transition) -> Self {
        let view = zone_event(&position, &transition);
        let forms = crate::wire::event_forms(transition.id, transition.crossing.as_str(), &view);
        Self::with_forms(position, Some(transition), forms)
    }

    /// A zone event when `transition` is set, else a position event.
    pub fn of(position: PositionEvent, transition: Option<Transition>) -> Self {
        match transition {
            Some(transition) => Self::zone(position, transition),
            None => Self::new(position),
        }
    }

    fn with_forms(
        position: PositionEvent,
        transition: Option<Transition>,
        forms: crate::wire::EventForms,
    ) -> Self {
        let crate::wire::EventForms { json, ws, sse } = forms;
        Self {
            position,
            transition,
            json,
            sse,
            ws,
        }
    }

    /// The event's id.
    pub fn id(&self) -> EventId {
        self.transition.as_ref().map_or(self.position.id, |t| t.id)
    }

    /// The zone event as clients see it, when this is one.
    pub fn zone_event(&self) -> Option<ZoneEvent> {
        Some(zone_event(&self.position, self.transition.as_ref()?))
    }

    /// Whether this is a position (not a zone event).
    pub fn is_position(&self) -> bool {
        self.transition.is_none()
    }
}

fn zone_event(position: &PositionEvent, transition: &Transition) -> ZoneEvent {
    ZoneEvent {
        crossing: transition.crossing,
        id: transition.id,
        zone: transition.zone.clone(),
        tracker: position.tracker.clone().unwrap_or_default(),
        at: position.fix_time(),
        position: position.clone(),
    }
}

/// An explicit notice that some events will never reach this subscriber.
///
/// Serialised as `{"type":"gap","reason":..,"after":..,"resumedFrom":..,"missed":..}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename = "gap", rename_all = "camelCase")]
pub struct Gap {
    /// Why the events were lost.
    pub reason: GapReason,
    /// The last event id the subscriber had (its cursor), if any. A reader
    /// held to a read scope is told only why (`reason`): `after` (unless it
    /// is the cursor it sent), `resumedFrom` and `missed` are left out, as
    /// they could tell of others' trackers.
    pub after: Option<EventId>,
    /// The first event id delivered after the gap, when one exists yet.
    pub resumed_from: Option<EventId>,
    /// How many events were skipped, when the broker knows.
    pub missed: Option<u64>,
}

/// Why a [`Gap`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GapReason {
    /// The subscriber asked to resume from an id older than history (or one
    /// this broker never issued, for example from before a restart), or the
    /// history its cursor pointed into was lost (Redis came back empty).
    CursorTooOld,
    /// The subscriber read so slowly that history moved past its cursor.
    Lagged,
}

impl Gap {
    /// Whether the stream ends after this notice: a subscriber that lagged
    /// is told, then its stream ends (`/ws` closes with 4008, `/events`
    /// ends, a GraphQL subscription completes) and it resumes with the
    /// last id it received; after `cursor-too-old` it goes on. Decided here
    /// once for every transport.
    pub fn ends_stream(&self) -> bool {
        self.reason == GapReason::Lagged
    }

    /// What a reader with `filter` may be told of this gap. A scoped
    /// reader learns only why: the ids around the gap and how many events
    /// were missed may belong to trackers outside its scope, and would tell
    /// it of others' traffic. It resumes with the last id it received.
    pub fn seen_through(self, filter: &Filter) -> Self {
        if !filter.is_scoped() {
            return self;
        }
        Self {
            reason: self.reason,
            after: None,
            resumed_from: None,
            missed: None,
        }
    }

    /// The notice as JSON: a `/ws` text frame, and the `data` of an
    /// `/events` `gap` event.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a gap notice always serialises")
    }
}

impl GapReason {
    /// Stable machine-readable name, used on every transport.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CursorTooOld => "cursor-too-old",
            Self::Lagged => "lagged",
        }
    }
}

/// Which kind of event a subscriber follows.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Events {
    /// Positions (what every transport sends unless asked otherwise).
    #[default]
    Positions,
    /// Zone events, of these zones when set, else of every zone.
    Zones(Option<Vec<String>>),
    /// Every event: what a fan-out that serves all subscribers follows.
    All,
}

/// Which events a subscriber wants, and may read; the default filter
/// matches every position.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Positions or zone events.
    pub events: Events,
    /// Only events from one of these trackers, when set.
    pub trackers: Option<Vec<String>>,
    /// Only events inside this box, when set.
    pub bbox: Option<BoundingBox>,
    /// Only events the reader's credential may read, when it is scoped
    /// (set by [`Filter::within`]).
    pub scope: Option<ReadScope>,
    /// Only events whose position is inside this zone (its shape when the
    /// filter was made), when set.
    pub inside: Option<std::sync::Arc<Zone>>,
}

impl Filter {
    /// Every event, positions and zone events alike, unfiltered.
    pub fn everything() -> Self {
        Self {
            events: Events::All,
            ..Self::default()
        }
    }

    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        let kind_ok = match (&self.events, &event.transition) {
            (Events::All, _) => true,
            (Events::Positions, None) => true,
            (Events::Zones(zones), Some(transition)) => zones
                .as_ref()
                .is_none_or(|zones| zones.contains(&transition.zone)),
            _ => false,
        };
        kind_ok && self.matches_position(&event.position)
    }

    /// Whether `position` (or the position of a zone event) passes the
    /// filter's trackers, box and scope.
    pub fn matches_position(&self, position: &PositionEvent) -> bool {
        let tracker = position.tracker.as_deref();
        let tracker_ok = match &self.trackers {
            None => true,
            Some(wanted) => tracker.is_some_and(|t| wanted.iter().any(|w| w == t)),
        };
        tracker_ok
            && self.scope.as_ref().is_none_or(|s| s.allows(tracker))
            && self
                .bbox
                .as_ref()
                .is_none_or(|b| b.contains(position.longitude, position.latitude))
            && self
                .inside
                .as_ref()
                .is_none_or(|zone| zone.contains(position.longitude, position.latitude))
    }

    /// Whether the reader is held to a read scope: what it is told about
    /// events it was not sent (see [`Gap::seen_through`]) must then say
    /// nothing about others' traffic.
    pub fn is_scoped(&self) -> bool {
        self.scope.is_some()
    }
}

/// A longitude/latitude rectangle. A box whose west edge is east of its east
/// edge crosses the antimeridian.
#[derive(Debug, Clone, Copy, PartialEq, async_graphql::InputObject)]
pub struct BoundingBox {
    /// Western edge, degrees.
    pub min_longitude: f64,
    /// Southern edge, degrees.
    pub min_latitude: f64,
    /// Eastern edge, degrees.
    pub max_longitude: f64,
    /// Northern edge, degrees.
    pub max_latitude: f64,
}

/// A bounding box that is not four numbers in range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "bbox must be minLongitude,minLatitude,maxLongitude,maxLatitude with longitudes in -180..180 and latitudes in -90..90"
)]
pub struct InvalidBoundingBox;

impl BoundingBox {
    /// Builds a box, checking the ranges. The latitudes may come in either
    /// order; the longitudes may not, since west-after-east crosses the
    /// antimeridian.
    pub fn new(
        min_longitude: f64,
        latitude_a: f64,
        max_longitude: f64,
        latitude_b: f64,
    ) -> Result<Self, InvalidBoundingBox> {
        let lon_ok = |v: f64| (-180.0..=180.0).contains(&v);
        let lat_ok = |v: f64| (-90.0..=90.0).contains(&v);
        if lon_ok(min_longitude)
            && lon_ok(max_longitude)
            && lat_ok(latitude_a)
            && lat_ok(latitude_b)
        {
            Ok(Self {
                min_longitude,
                min_latitude: latitude_a.min(latitude_b),
                max_longitude,
                max_latitude: latitude_a.max(latitude_b),
            })
        } else {
            Err(InvalidBoundingBox)
        }
    }

    /// This box checked again as [`BoundingBox::new`] checks one, for a
    /// box that came from a client unchecked (a GraphQL input object); a
    /// bad one is `invalid-parameter` naming `bbox`.
    pub fn checked(self) -> Result<Self, InvalidParameter> {
        Self::new(
            self.min_longitude,
            self.min_latitude,
            self.max_longitude,
            self.max_latitude,
        )
        .map_err(|e| InvalidParameter {
            param: "bbox",
            detail: e.to_string(),
        })
    }

    /// Whether the point lies inside (edges included).
    pub fn contains(&self, longitude: f64, latitude: f64) -> bool {
        let lat_ok = (self.min_latitude..=self.max_latitude).contains(&latitude);
        let lon_ok = if self.min_longitude <= self.max_longitude {
            (self.min_longitude..=self.max_longitude).contains(&longitude)
        } else {
            longitude >= self.min_longitude || longitude <= self.max_longitude
        };
        lat_ok && lon_ok
    }
}

impl FromStr for BoundingBox {
    type Err = InvalidBoundingBox;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().parse::<f64>().map_err(|_| InvalidBoundingBox))
            .collect::<Result<_, _>>()?;
        match parts[..] {
            [a, b, c, d] => Self::new(a, b, c, d),
            _ => Err(InvalidBoundingBox),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::frame::Frame;
    use tungstenite::protocol::frame::coding::{Data, OpCode};

    fn input(longitude: f64, latitude: f64, tracker: Option<&str>) -> PositionInput {
        PositionInput {
            tracker: tracker.map(str::to_owned),
            ..PositionInput::at(longitude, latitude)
        }
    }

    #[test]
    fn the_tutorial_position_is_valid() {
        assert!(input(18.063240, 59.334591, None).validate().is_ok());
        assert!(input(-180.0, 90.0, Some("bus-42.a_b:c")).validate().is_ok());
        assert!(input(0.0, 0.0, Some("alice/phone")).validate().is_ok());
    }

    #[test]
    fn each_optional_field_has_its_rule_and_names_itself() {
        let now = OffsetDateTime::now_utc();
        let with = |edit: fn(&mut PositionInput)| {
            let mut position = input(1.0, 2.0, None);
            edit(&mut position);
            position.validate().map(|_| ()).map_err(|e| e.field())
        };
        assert_eq!(
            with(|p| {
                p.recorded_at = Some(OffsetDateTime::now_utc() - time::Duration::days(3));
                (p.accuracy, p.altitude, p.speed) = (Some(0.0), Some(-400.0), Some(31.5));
                (p.heading, p.battery) = (Some(360.0), Some(100.0));
            }),
            Ok(())
        );
        assert_eq!(with(|p| p.accuracy = Some(-1.0)), Err("accuracy"));
        assert_eq!(with(|p| p.altitude = Some(f64::NAN)), Err("altitude"));
        assert_eq!(with(|p| p.speed = Some(-0.5)), Err("speed"));
        assert_eq!(with(|p| p.heading = Some(360.5)), Err("heading"));
        assert_eq!(with(|p| p.battery = Some(101.0)), Err("battery"));
        let id = EventId { millis: 1, seq: 0 };
        let mut ahead = input(1.0, 2.0, None);
        ahead.recorded_at = Some(now + time::Duration::hours(1));
        let ahead = ahead.validate().unwrap().into_event(id, now);
        assert_eq!(ahead.fix_time(), now, "never after its arrival");
        for field in PositionInput::FIELDS {
            assert!(PositionInput::rule(field).is_some(), "{field}");
        }
    }

    #[test]
    fn absent_optional_fields_are_absent_from_the_json_and_present_ones_are_camel_case() {
        let id = EventId { millis: 1, seq: 0 };
        let bare = input(18.06, 59.33, None)
            .validate()
            .unwrap()
            .into_event(id, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"id":"1-0","longitude":18.06,"latitude":59.33,"receivedAt":"1970-01-01T00:00:00Z"}"#
        );
        let sent: PositionInput = serde_json::from_str(
            r#"{"longitude":1,"latitude":2,"recordedAt":"2026-11-25T05:24:40.5Z","battery":50}"#,
        )
        .unwrap();
        let event = sent
            .validate()
            .unwrap()
            .into_event(id, OffsetDateTime::UNIX_EPOCH);
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["recordedAt"], "2026-11-25T05:24:40.5Z");
        assert_eq!(json["battery"], 50.0);
        assert!(json.get("speed").is_none());
        let form: PositionInput = serde_urlencoded::from_str(
            "longitude=1&latitude=2&recordedAt=2026-11-25T05%3A24%3A40Z&speed=3",
        )
        .unwrap();
        assert_eq!(form.speed, Some(3.0));
        assert!(form.recorded_at.is_some());
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases = [
            (input(180.5, 0.0, None), "longitude"),
            (input(f64::NAN, 0.0, None), "longitude"),
            (input(0.0, -90.01, None), "latitude"),
            (input(0.0, 0.0, Some("")), "tracker"),
            (input(0.0, 0.0, Some("has space")), "tracker"),
            (input(0.0, 0.0, Some(&"x".repeat(65))), "tracker"),
            (input(0.0, 0.0, Some("alice phone")), "tracker"),
        ];
        for (case, field) in cases {
            assert_eq!(case.validate().unwrap_err().field(), field);
        }
    }

    #[test]
    fn an_event_carries_its_json_and_the_frames_made_from_it() {
        // Under and over 125 bytes of JSON, and over 64 KiB (a tracker no
        // validation here would pass, as a foreign writer could store).
        for tracker in [None, Some("t".repeat(64)), Some("t".repeat(70_000))] {
            let id = EventId {
                millis: 1_764_000_000_000,
                seq: 3,
            };
            let position = input(18.06, 59.33, None).validate().unwrap();
            let mut typed = position.into_event(id, OffsetDateTime::UNIX_EPOCH);
            typed.tracker = tracker;
            let event = Event::new(typed.clone());
            assert_eq!(event.json, serde_json::to_vec(&typed).unwrap());
            let mut frame = Vec::new();
            Frame::message(event.json.clone(), OpCode::Data(Data::Text), true)
                .format(&mut frame)
                .unwrap();
            assert_eq!(event.ws, frame, "json of {} bytes", event.json.len());
            let sse = format!(
                "id: {id}\nevent: position\ndata: {}\n\n",
                std::str::from_utf8(&event.json).unwrap()
            );
            assert_eq!(event.sse, sse);
        }
    }

    #[test]
    fn event_ids_round_trip_and_order() {
        let id: EventId = "1764000000000-7".parse().unwrap();
        assert_eq!(id.to_string(), "1764000000000-7");
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""1764000000000-7""#);
        for (millis, seq) in [(0, 0), (u64::MAX, u64::MAX), (9, 10)] {
            let id = EventId { millis, seq };
            assert_eq!(id.text().as_str(), format!("{millis}-{seq}"));
            assert_eq!(id.text().as_str().parse::<EventId>().unwrap(), id);
        }
        assert_eq!(
            "42".parse::<EventId>().unwrap(),
            EventId { millis: 42, seq: 0 }
        );
        assert!("1-2-3".parse::<EventId>().is_err());
        assert!("-1".parse::<EventId>().is_err());
        assert!(id < id.next_after(0));
        assert_eq!(
            id.next_after(1764000000001),
            EventId {
                millis: 1764000000001,
                seq: 0
            }
        );
    }

    #[test]
    fn a_bounding_box_may_cross_the_antimeridian() {
        let pacific: BoundingBox = "170,-10,-170,10".parse().unwrap();
        assert!(pacific.contains(179.0, 0.0));
        assert!(pacific.contains(-175.0, 5.0));
        assert!(!pacific.contains(0.0, 0.0));
        assert!("1,2,3".parse::<BoundingBox>().is_err());
        assert!("0,91,1,5".parse::<BoundingBox>().is_err());
        let flipped: BoundingBox = "0,10,1,5".parse().unwrap();
        assert!(flipped.contains(0.5, 7.0));
    }

    #[test]
    fn a_lagged_notice_ends_the_stream_and_a_too_old_cursor_does_not() {
        let id = |millis| EventId { millis, seq: 0 };
        let lagged = Gap {
            reason: GapReason::Lagged,
            after: Some(id(1)),
            resumed_from: Some(id(5)),
            missed: Some(3),
        };
        assert!(lagged.ends_stream());
        assert_eq!(
            lagged.to_json(),
            r#"{"type":"gap","reason":"lagged","after":"1-0","resumedFrom":"5-0","missed":3}"#
        );
        let too_old = Gap {
            reason: GapReason::CursorTooOld,
            after: Some(id(1)),
            resumed_from: None,
            missed: None,
        };
        assert!(!too_old.ends_stream());
        assert_eq!(
            too_old.to_json(),
            r#"{"type":"gap","reason":"cursor-too-old","after":"1-0","resumedFrom":null,"missed":null}"#
        );
    }
}
