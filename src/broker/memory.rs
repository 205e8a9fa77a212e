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
    fn publish(&self, position: ValidPosition) -> BoxFuture<'_, Result<Arc<Event>, BrokerError>> {
        let event = self.hub.append_with(|last| {
            let received_at = OffsetDateTime::now_utc();
            let id = last.next_after(now_millis());
            Some(Arc::new(Event::new(position.into_event(id, received_at))))
        });
        Box::pin(future::ready(event.ok_or_else(|| {
            BrokerError::Unavailable("the event was not appended".into())
        })))
    }

    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}
