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
//!
//! A batch takes the same steps: its other positions are counted against
//! the rate once it is read, every position is tracker-checked and
//! validated, and only when all pass are they handed to
//! [`Broker::publish_batch`], in one append. A refused batch publishes
//! nothing and names each refused position.

use std::sync::Arc;
use std::time::Instant;

use crate::access::{Access, Caller, Scope};
use crate::broker::Broker;
use crate::error::{Error, RefusedItem};
use crate::model::{Event, PositionInput, ValidPosition};
use crate::stats;

/// Most positions in one batch.
pub const MAX_BATCH: usize = 1000;

/// A batch as read: each position, or why it could not be read.
pub type BatchItems = Vec<Result<PositionInput, Error>>;

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
        stats::publish(via, started, usize::from(published.is_ok()));
        published
    }

    /// Steps 3 to 6 for a batch read with `read` (at most [`MAX_BATCH`]
    /// positions): all are published in one broker append, or none.
    pub async fn publish_batch(
        self,
        via: &'static str,
        read: impl FnOnce() -> Result<BatchItems, Error>,
    ) -> Result<Vec<Arc<Event>>, Error> {
        let Publisher { access, broker } = self.publisher;
        let started = Instant::now();
        let published = async {
            let items = read()?;
            access.check_more_publishes(self.caller, items.len().saturating_sub(1))?;
            let valid = self.check_all(items)?;
            Ok(broker.publish_batch(valid).await?)
        }
        .await;
        stats::publish(via, started, published.as_ref().map_or(0, Vec::len));
        published
    }

    /// Every position of a batch checked against the caller's trackers and
    /// validated; a tracker refused anywhere refuses the batch (403), and
    /// otherwise every position that fails is named.
    fn check_all(&self, items: BatchItems) -> Result<Vec<ValidPosition>, Error> {
        let Publisher { access, .. } = self.publisher;
        for (index, item) in items.iter().enumerate() {
            if let Ok(input) = item {
                access
                    .authorize_tracker(self.caller, input.tracker.as_deref())
                    .map_err(|refusal| match refusal {
                        Error::Forbidden(why) => Error::Forbidden(format!("[{index}]: {why}")),
                        other => other,
                    })?;
            }
        }
        let total = items.len();
        let mut valid = Vec::with_capacity(total);
        let mut refused = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            match item.and_then(|input| Ok(input.validate()?)) {
                Ok(position) => valid.push(position),
                Err(error) => refused.push(RefusedItem::new(index, &error)),
            }
        }
        match (refused.is_empty(), total) {
            (_, 0) => Err(Error::InvalidBody {
                detail: format!("the batch is empty: send 1 to {MAX_BATCH} positions"),
                field: None,
            }),
            (true, _) => Ok(valid),
            (false, _) => Err(Error::InvalidBatch { total, refused }),
        }
    }
}
