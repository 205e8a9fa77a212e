//! The broker: the one place events are ordered, numbered, kept and fanned out.
//!
//! Transports hold an `Arc<dyn Broker>` and never learn which implementation
//! runs. Every implementation feeds a [`Hub`], which keeps recent history and
//! serves subscribers from it, so history, resume and live delivery are one
//! mechanism.

pub mod durable;
mod hub;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
pub mod ring;

use std::sync::{Arc, RwLock, RwLockReadGuard};

use futures::future::BoxFuture;

use crate::geofence::Geofences;
pub use crate::geofence::{ZoneChange, ZoneQuery};

pub use hub::{CURSOR_LEEWAY, CursorAhead, History, Hub, HubSettings, Place, Subscription};

use crate::model::{Event, EventId, Filter, ReadScope, ValidPosition, Zone};
pub use crate::model::{Gap, GapReason};

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The next event matching the subscriber's filter.
    Event(Arc<Event>),
    /// Events were lost between the subscriber's cursor and what follows.
    Gap(Gap),
}

/// A broker failure: the event was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker's backing store cannot be reached right now.
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
}

/// The trackers inside a zone, each with the id of the enter event that
/// put it there, by tracker name.
pub type Occupants = Vec<(String, EventId)>;

/// Publish, subscribe and read back events; keep zones. See the module
/// documentation.
pub trait Broker: Send + Sync + 'static {
    /// Orders, numbers and stores a position, then fans it out. Returns the
    /// stored event once it is durable in this broker's terms. A batch of
    /// one: every broker has one publish path.
    fn publish(&self, position: ValidPosition) -> BoxFuture<'_, Result<Arc<Event>, BrokerError>> {
        let batch = self.publish_batch(vec![position]);
        Box::pin(async move {
            batch.await?.pop().ok_or_else(|| {
                BrokerError::Unavailable("the broker stored nothing for the position".into())
            })
        })
    }

    /// Orders, numbers and stores `positions` (at least one) in one append,
    /// consecutive and in the order given, then fans them out: all are
    /// stored or none. Returns the stored events once they are durable in
    /// this broker's terms.
    fn publish_batch(
        &self,
        positions: Vec<ValidPosition>,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, BrokerError>>;

    /// The local hub every subscription is served from.
    fn hub(&self) -> &Arc<Hub>;

    /// This instance's zones (and, but with Redis, who is inside them),
    /// which decide zone events; see [`crate::geofence`].
    fn geofences(&self) -> &RwLock<Geofences>;

    /// Puts or deletes a zone, kept as events are (on disk, or in Redis
    /// for every instance). Answers whether it changed anything that was
    /// there: a zone replaced, or one deleted.
    fn change_zone(&self, change: ZoneChange) -> BoxFuture<'_, Result<bool, BrokerError>>;

    /// The zones `query` asks for, by name.
    fn zones(&self, query: &ZoneQuery) -> Vec<Arc<Zone>> {
        read(self.geofences()).listed(query)
    }

    /// How many zones there are.
    fn zone_count(&self) -> usize {
        read(self.geofences()).len()
    }

    /// The zone with this name.
    fn zone(&self, name: &str) -> Option<Arc<Zone>> {
        read(self.geofences()).zone(name)
    }

    /// The trackers inside zone `name` now; `None` when there is no such
    /// zone.
    fn occupants(&self, name: String) -> BoxFuture<'_, Result<Option<Occupants>, BrokerError>> {
        let occupants = read(self.geofences()).occupants(&name);
        Box::pin(async move { Ok(occupants) })
    }

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

    /// The most recent event still in history, optionally for one tracker,
    /// and within a reader's `scope` when it has one.
    fn latest(&self, tracker: Option<&str>, scope: Option<&ReadScope>) -> Option<Arc<Event>> {
        self.hub().latest(tracker, scope)
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

    /// Why the broker cannot take events right now, for `/readyz`.
    fn readiness(&self) -> Result<(), BrokerError> {
        match self.is_ready() {
            true => Ok(()),
            false => Err(BrokerError::Unavailable(
                "the broker cannot be reached".into(),
            )),
        }
    }

    /// The event with this id, while it is still in history.
    fn get(&self, id: EventId) -> Option<Arc<Event>> {
        self.hub().get(id)
    }
}

/// Reads the zones, whatever a panicking writer left.
pub fn read(geofences: &RwLock<Geofences>) -> RwLockReadGuard<'_, Geofences> {
    geofences
        .read()
        .unwrap_or_else(|poison| poison.into_inner())
}

/// Changes the zones, whatever a panicking writer left.
pub fn write(geofences: &RwLock<Geofences>) -> std::sync::RwLockWriteGuard<'_, Geofences> {
    geofences
        .write()
        .unwrap_or_else(|poison| poison.into_inner())
}
