//! The embedded broker: one process, no set-up. Ids are
//! `<milliseconds>-<sequence>` from the wall clock, always increasing, so a
//! cursor from before a restart is recognised as older than history.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::{self, BoxFuture};
use time::OffsetDateTime;

use super::{Broker, BrokerError, Hub, HubSettings, ZoneChange};
use crate::geofence::Geofences;
use crate::model::{Event, EventId, ValidPosition};
use crate::stats;

/// The in-memory broker.
#[derive(Debug)]
pub struct MemoryBroker {
    hub: Arc<Hub>,
    geofences: RwLock<Geofences>,
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MemoryBroker {
    /// A broker keeping `settings.capacity` events of history, whose
    /// trackers leave a zone `hysteresis` metres past its border.
    pub fn new(settings: HubSettings, hysteresis: f64) -> Self {
        let horizon = EventId {
            millis: now_millis(),
            seq: 0,
        };
        Self {
            hub: Hub::new(settings, horizon),
            geofences: RwLock::new(Geofences::new(hysteresis)),
        }
    }
}

impl Broker for MemoryBroker {
    fn publish_batch(
        &self,
        positions: Vec<ValidPosition>,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, BrokerError>> {
        let near: Vec<_> = {
            let geofences = super::read(&self.geofences);
            positions.iter().map(|p| geofences.classify(p)).collect()
        };
        // Zones first, then the hub: the one order both locks are taken in.
        let mut geofences = super::write(&self.geofences);
        let mut events = self.hub.append_all_with(|mut last| {
            let received_at = OffsetDateTime::now_utc();
            let millis = now_millis();
            let mut events = Vec::with_capacity(positions.len());
            for (position, near) in positions.into_iter().zip(&near) {
                last = last.next_after(millis);
                let position = position.into_event(last, received_at);
                let transitions = geofences.cross(&position, near.as_ref(), || {
                    last = last.next_after(millis);
                    last
                });
                let zone_events: Vec<_> = transitions
                    .into_iter()
                    .map(|transition| Arc::new(Event::zone(position.clone(), transition)))
                    .collect();
                events.push(Arc::new(Event::new(position)));
                events.extend(zone_events);
            }
            events
        });
        drop(geofences);
        for transition in events.iter().filter_map(|e| e.transition.as_ref()) {
            stats::zone_event(transition.crossing);
        }
        events.retain(|e| e.is_position());
        Box::pin(future::ready(Ok(events)))
    }

    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn geofences(&self) -> &RwLock<Geofences> {
        &self.geofences
    }

    fn change_zone(&self, change: ZoneChange) -> BoxFuture<'_, Result<bool, BrokerError>> {
        let changed = super::write(&self.geofences).change(change);
        Box::pin(future::ready(Ok(changed)))
    }
}
