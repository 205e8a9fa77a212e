//! The one publish path: every way a position comes in (`POST /longlat`, the
//! GraphQL mutation, and any ingest format added later) takes the same
//! steps, in the same order, here and nowhere else.
//!
//! 1. authorize the caller to publish (401 / 403),
//! 2. count the publish against the caller's rate (429),
//! 3. read the position (a transport's own parsing),
//! 4. check the caller may publish for its tracker (403),
//! 5. validate it ([`PositionInput::validate`]),
//! 6. hand it to [`Broker::publish`].
//!
//! Steps 1 and 2 come before the position is read, so a refused caller
//! costs no body reading; [`Publisher::admit`] does them and returns the
//! only value from which steps 3 to 6 can be reached.

use std::sync::Arc;
use std::time::Instant;

use crate::access::{Access, Caller, Scope};
use crate::broker::Broker;
use crate::error::Error;
use crate::model::{Event, PositionInput};
use crate::stats;

/// Publishes positions under the access rules in force.
#[derive(Clone, Copy)]
pub struct Publisher<'a> {
    access: &'a Access,
    broker: &'a dyn Broker,
}

/// A publish the caller may make now: authorized and counted against its
/// rate. Only [`Publisher::admit`] makes one.
#[must_use = "an admitted publish does nothing until its position is published"]
pub struct Admitted<'a> {
    publisher: Publisher<'a>,
    caller: &'a Caller,
}

impl<'a> Publisher<'a> {
    /// A publisher into `broker` under the rules of `access`.
    pub fn new(access: &'a Access, broker: &'a dyn Broker) -> Self {
        Self { access, broker }
    }

    /// Steps 1 and 2: refuses `caller` unless it may publish, and now.
    pub fn admit(self, caller: &'a Caller) -> Result<Admitted<'a>, Error> {
        self.access.authorize(caller, Scope::Publish)?;
        self.access.check_publish_rate(caller)?;
        Ok(Admitted {
            publisher: self,
            caller,
        })
    }

    /// Every step, for a position already read: what the GraphQL mutation
    /// and ingest formats call. `via` names the path in the metrics.
    pub async fn publish(
        self,
        caller: &'a Caller,
        via: &'static str,
        input: PositionInput,
    ) -> Result<Arc<Event>, Error> {
        self.admit(caller)?.publish(via, || Ok(input)).await
    }
}

impl Admitted<'_> {
    /// Steps 3 to 6: reads the position with `read`, checks its tracker
    /// against the caller's credential, validates it and publishes it.
    /// Each attempt is timed and counted under `via` (`rest`, `graphql`).
    pub async fn publish(
        self,
        via: &'static str,
        read: impl FnOnce() -> Result<PositionInput, Error>,
    ) -> Result<Arc<Event>, Error> {
        let Publisher { access, broker } = self.publisher;
        let started = Instant::now();
        let published = async {
            let input = read()?;
            access.authorize_tracker(self.caller, input.tracker.as_deref())?;
            Ok(broker.publish(input.validate()?).await?)
        }
        .await;
        stats::publish(via, started, published.is_ok());
        published
    }
}
