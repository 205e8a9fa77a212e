//! Zone events: a tracker entering or leaving a zone. The broker decides
//! them from a tracker's positions (see [`crate::geofence`]) and numbers
//! each in the same stream as the positions, right after the position that
//! caused it, so a zone event is ordered with the positions and resumed by
//! the same ids on every transport.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{EventId, PositionEvent};

/// Which way a tracker crossed a zone's border.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, async_graphql::Enum,
)]
#[serde(rename_all = "lowercase")]
pub enum Crossing {
    /// The tracker came into the zone.
    Enter,
    /// The tracker left the zone.
    Leave,
}

impl Crossing {
    /// The crossing named `name` on the wire (`enter`, `leave`).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "enter" => Some(Self::Enter),
            "leave" => Some(Self::Leave),
            _ => None,
        }
    }

    /// Its name on the wire: the JSON `type` and the SSE event name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enter => "enter",
            Self::Leave => "leave",
        }
    }
}

/// What the broker adds to a position to make it a zone event: the zone
/// event's own id, and which zone was crossed which way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The zone event's id, after its position's.
    pub id: EventId,
    /// Entered or left.
    pub crossing: Crossing,
    /// The zone's name.
    pub zone: String,
}

/// A zone event as clients receive it, on every transport.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, async_graphql::SimpleObject)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"type": "enter", "id": "1795584285108-1", "zone": "depot",
    "tracker": "bus-42", "at": "2026-11-25T05:24:45.108992Z",
    "position": {"id": "1795584285108-0", "longitude": 18.06324, "latitude": 59.334591,
    "tracker": "bus-42", "receivedAt": "2026-11-25T05:24:45.108992Z"}}))]
#[graphql(complex)]
pub struct ZoneEvent {
    /// `enter` or `leave` (in GraphQL, `ENTER` or `LEAVE`).
    #[serde(rename = "type")]
    #[graphql(name = "type")]
    pub crossing: Crossing,
    /// Broker-assigned, ordered id, in the same sequence as positions: the
    /// resume cursor.
    #[graphql(skip)]
    pub id: EventId,
    /// The zone crossed.
    pub zone: String,
    /// The tracker that crossed it.
    pub tracker: String,
    /// When: the position's fix time (its `recordedAt`, else its arrival).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The position that crossed the border.
    pub position: PositionEvent,
}

#[async_graphql::ComplexObject]
impl ZoneEvent {
    /// Broker-assigned, ordered id (`"<milliseconds>-<sequence>"`), in the
    /// same sequence as positions; pass it as `after` to resume.
    #[graphql(name = "id")]
    async fn graphql_id(&self) -> async_graphql::ID {
        self.id.into()
    }
}
