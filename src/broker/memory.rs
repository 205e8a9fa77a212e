//! The embedded broker: one process, no set-up. Ids are
//! `<milliseconds>-<sequence>` from the wall clock, always increasing, so a
//! cursor from before a restart is recognised as older than history.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::{self, BoxFuture};
use time::OffsetDateTime;

use super::{Broker, BrokerError, Hub, HubSettings};
use crate::model::{Event, EventId, ValidPosition};

/// The in-memory broker.
#[derive(Debug)]
pub struct MemoryBroker {
    hub: Arc<Hub>,
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MemoryBroker {
    /// A broker keeping `settings.capacity` events of history.
    pub fn new(settings: HubSettings) -> Self {
        let horizon = EventId {
            millis: now_millis(),
            seq: 0,
        };
        Self {
            hub: Hub::new(settings, horizon),
        }
    }
}

impl Broker for MemoryBroker {
    fn publish_batch(
        &self,
        positions: Vec<ValidPosition>,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, BrokerError>> {
        let events = self.hub.append_all_with(|mut last| {
            let received_at = OffsetDateTime::now_utc();
            let millis = now_millis();
            positions
                .into_iter()
                .map(|position| {
                    last = last.next_after(millis);
                    Arc::new(Event::new(position.into_event(last, received_at)))
                })
                .collect()
        });
        Box::pin(future::ready(Ok(events)))
    }

    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}
