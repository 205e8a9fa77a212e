//! The broker: the one place events are ordered, numbered, kept and fanned out.
//!
//! Transports hold an `Arc<dyn Broker>` and never learn which implementation
//! runs. Every implementation feeds a [`Hub`], which keeps recent history and
//! serves subscribers from it, so history, resume and live delivery are one
//! mechanism.

mod hub;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

use std::sync::Arc;

use futures::future::BoxFuture;

pub use hub::{CURSOR_LEEWAY, CursorAhead, History, Hub, HubSettings, Subscription};

use crate::model::{Event, EventId, Filter, ValidPosition};

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The next event matching the subscriber's filter.
    Event(Arc<Event>),
    /// Events were lost between the subscriber's cursor and what follows.
    Gap(Gap),
}

/// An explicit notice that some events will never reach this subscriber.
///
/// Serialised as `{"type":"gap","reason":..,"after":..,"resumedFrom":..,"missed":..}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename = "gap", rename_all = "camelCase")]
pub struct Gap {
    /// Why the events were lost.
    pub reason: GapReason,
    /// The last event id the subscriber had (its cursor), if any.
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

/// A broker failure: the event was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker's backing store cannot be reached right now.
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
}

/// Publish, subscribe and read back events. See the module documentation.
pub trait Broker: Send + Sync + 'static {
    /// Orders, numbers and stores a position, then fans it out. Returns the
    /// stored event once it is durable in this broker's terms.
    fn publish(&self, position: ValidPosition) -> BoxFuture<'_, Result<Arc<Event>, BrokerError>>;

    /// The local hub every subscription is served from.
    fn hub(&self) -> &Arc<Hub>;

    /// Starts a subscription: events after `after` (or only new ones when
    /// `None`) that match `filter`. Subscribe before telling the client it is
    /// connected, so it cannot miss an event published in between. A cursor
    /// later than anything this deployment can have issued is refused.
    fn subscribe(
        &self,
        after: Option<EventId>,
        filter: Filter,
    ) -> Result<Subscription, CursorAhead> {
        Hub::subscribe(self.hub(), after, filter)
    }

    /// The most recent event still in history, optionally for one tracker.
    fn latest(&self, tracker: Option<&str>) -> Option<Arc<Event>> {
        self.hub().latest(tracker)
    }

    /// Up to `limit` events after `after` (from the oldest kept when `None`)
    /// matching `filter`, oldest first; see [`Hub::history`]. A cursor
    /// later than anything this deployment can have issued is refused.
    fn history(
        &self,
        after: Option<EventId>,
        limit: usize,
        filter: &Filter,
    ) -> Result<History, CursorAhead> {
        self.hub().history(after, limit, filter)
    }

    /// Whether the broker can take and deliver events right now.
    fn is_ready(&self) -> bool {
        true
    }

    /// The event with this id, while it is still in history.
    fn get(&self, id: EventId) -> Option<Arc<Event>> {
        self.hub().get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
