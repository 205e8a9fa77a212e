//! Local fan-out shared by every broker: a bounded history ring that is also
//! the live delivery buffer.
//!
//! Each subscriber is only a cursor into the ring plus a wake-up signal, so a
//! slow subscriber costs no memory of its own: it cannot slow the publisher or
//! anyone else, and when history moves past its cursor it is told exactly how
//! many events it missed. Because history and live delivery are the same
//! buffer, resuming from an id has no seam where an event could be lost or
//! delivered twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use time::OffsetDateTime;

use tokio::sync::watch;

use super::ring::{Ring, Slot};
use super::{Delivery, Gap, GapReason};
use crate::model::{Event, EventId, Filter, ReadScope};

/// How far past both this server's clock and the newest id it has seen a
/// resume cursor may be. Ids come from the clock of whichever machine
/// numbered the event (with Redis, the Redis server's), and another
/// instance's reader may be a moment ahead of this one: a cursor within
/// this of "now" is honoured; one beyond it was never issued by this
/// deployment and would otherwise wait, silently, until the clock caught up.
pub const CURSOR_LEEWAY: Duration = Duration::from_secs(10);

/// A resume cursor later than anything this deployment can have issued
/// (see [`CURSOR_LEEWAY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{after} is ahead of this server's clock and of every event it has issued; resume with an id the server sent"
)]
pub struct CursorAhead {
    /// The cursor asked for.
    pub after: EventId,
}

/// How far out of order arrival times may be along the ring (the clocks of
/// several instances behind one Redis differ a little): [`Hub::latest`]
/// looks this much further back than arrival order alone would need.
const ARRIVAL_SLACK: Duration = Duration::from_secs(60);

/// How much history a hub keeps.
#[derive(Debug, Clone, Copy)]
pub struct HubSettings {
    /// Most events kept; older ones are dropped first. At least 1.
    pub capacity: usize,
    /// Events older than this (by `receivedAt`) are dropped too, when set.
    pub max_age: Option<Duration>,
}

/// The history ring and the signal that wakes subscribers.
#[derive(Debug)]
pub struct Hub {
    ring: RwLock<Kept>,
    /// The ring's next sequence number, readable without the lock: a
    /// subscriber that has read everything finds out without locking.
    head: AtomicU64,
    published: watch::Sender<u64>,
    max_age: Option<Duration>,
}

/// The events kept, and what the hub knows of those it no longer keeps.
#[derive(Debug)]
struct Kept {
    events: Ring<Arc<Event>>,
    /// Every id at or below this that is not in `events` is unknown here.
    horizon: EventId,
    /// The greatest id ever appended.
    last_id: EventId,
    /// Sequence number where history begins again after [`Hub::restart`]:
    /// a cursor before it points into a history that is gone.
    restarted_at: u64,
}

impl Kept {
    fn next_seq(&self) -> u64 {
        self.events.head()
    }

    fn forget(&mut self, evicted: Option<Arc<Event>>) {
        if let Some(evicted) = evicted {
            self.horizon = evicted.id();
        }
    }

    fn pop_oldest(&mut self) {
        let evicted = self.events.pop_oldest();
        self.forget(evicted);
    }

    fn oldest_is_before(&self, cutoff: OffsetDateTime) -> bool {
        self.events
            .items()
            .front()
            .is_some_and(|e| e.position.received_at < cutoff)
    }
}

/// What a read at a cursor found.
enum Read {
    Event(Arc<Event>),
    Behind {
        first_seq: u64,
        first_id: Option<EventId>,
        /// The cursor is from before a [`Hub::restart`].
        forgotten: bool,
    },
    Pending,
}

impl Hub {
    /// A hub whose history starts after `horizon`: a cursor below it is
    /// reported as too old. Pass the last id the backing store knows of, or
    /// an id made from the start time when there is none.
    pub fn new(settings: HubSettings, horizon: EventId) -> Arc<Self> {
        let (published, _) = watch::channel(0);
        Arc::new(Self {
            ring: RwLock::new(Kept {
                events: Ring::new(settings.capacity),
                horizon,
                last_id: horizon,
                restarted_at: 0,
            }),
            head: AtomicU64::new(0),
            published,
            max_age: settings.max_age,
        })
    }

    /// The arrival time before which events are too old to keep.
    fn age_cutoff(&self) -> Option<OffsetDateTime> {
        self.max_age.map(|age| OffsetDateTime::now_utc() - age)
    }

    /// Drops events past the maximum age. Cheap when there are none: only
    /// the oldest event is looked at under the read lock.
    fn expire(&self) {
        let Some(cutoff) = self.age_cutoff() else {
            return;
        };
        if self.read_ring().oldest_is_before(cutoff) {
            let mut ring = self.write_ring();
            while ring.oldest_is_before(cutoff) {
                ring.pop_oldest();
            }
        }
    }

    fn read_ring(&self) -> RwLockReadGuard<'_, Kept> {
        self.ring
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn write_ring(&self) -> RwLockWriteGuard<'_, Kept> {
        self.ring
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Appends the event built by `make` from the last id, and wakes every
    /// subscriber. `make` runs under the write lock, so ids are assigned in
    /// the order events are appended. It returns `None` to append nothing
    /// (for example an event already seen).
    pub fn append_with(
        &self,
        make: impl FnOnce(EventId) -> Option<Arc<Event>>,
    ) -> Option<Arc<Event>> {
        let mut ring = self.write_ring();
        let event = make(ring.last_id)?;
        self.push(&mut ring, event.clone());
        self.publish_head(ring);
        Some(event)
    }

    /// Appends every event built by `make` from the last id, in order, under
    /// one lock, and wakes subscribers once: a batch is one append.
    pub fn append_all_with(
        &self,
        make: impl FnOnce(EventId) -> Vec<Arc<Event>>,
    ) -> Vec<Arc<Event>> {
        let mut ring = self.write_ring();
        let events = make(ring.last_id);
        if events.is_empty() {
            return events;
        }
        for event in &events {
            self.push(&mut ring, event.clone());
        }
        self.publish_head(ring);
        events
    }

    fn push(&self, ring: &mut Kept, event: Arc<Event>) {
        debug_assert!(
            event.id() > ring.last_id,
            "hub events must be appended in id order"
        );
        ring.last_id = event.id();
        let evicted = ring.events.push(event.clone());
        ring.forget(evicted);
        if let Some(cutoff) = self.age_cutoff() {
            while ring.oldest_is_before(cutoff) {
                ring.pop_oldest();
            }
        }
    }

    /// Makes what was pushed visible and wakes every subscriber.
    fn publish_head(&self, ring: RwLockWriteGuard<'_, Kept>) {
        let next = ring.next_seq();
        self.head.store(next, Ordering::Release);
        drop(ring);
        self.published.send_replace(next);
    }

    /// Forgets all history because the backing store lost it (Redis came
    /// back empty, say): history begins again after `horizon`, so a cursor
    /// below it is too old, as for events dropped from the ring. Every
    /// subscriber, even one that had read everything, is told its cursor
    /// is too old, then goes on with what is appended next.
    pub fn restart(&self, horizon: EventId) {
        let mut ring = self.write_ring();
        // One sequence number is skipped, so that a subscriber at the head
        // finds itself behind, like every other.
        let first = ring.next_seq() + 1;
        ring.events.clear_from(first);
        ring.restarted_at = first;
        ring.horizon = horizon;
        ring.last_id = horizon;
        let next = ring.next_seq();
        self.head.store(next, Ordering::Release);
        drop(ring);
        self.published.send_replace(next);
    }

    /// The greatest id this hub has seen: appended, or below its horizon.
    pub fn last_id(&self) -> EventId {
        self.read_ring().last_id
    }

    /// Refuses a cursor ahead of both the clock and the newest id seen by
    /// more than [`CURSOR_LEEWAY`]: the one check every transport's resume
    /// and history read goes through.
    fn check_cursor(&self, after: Option<EventId>) -> Result<(), CursorAhead> {
        let Some(after) = after else {
            return Ok(());
        };
        let clock = u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(0);
        let newest = self.read_ring().last_id.millis.max(clock);
        let limit = newest.saturating_add(CURSOR_LEEWAY.as_millis() as u64);
        if after.millis > limit {
            return Err(CursorAhead { after });
        }
        Ok(())
    }

    /// Starts a subscription; see [`super::Broker::subscribe`].
    pub fn subscribe(
        hub: &Arc<Self>,
        after: Option<EventId>,
        filter: Filter,
    ) -> Result<Subscription, CursorAhead> {
        hub.check_cursor(after)?;
        hub.expire();
        let changed = hub.published.subscribe();
        let ring = hub.read_ring();
        let (cursor, gap) = match after {
            None => (ring.next_seq(), None),
            Some(after) if after < ring.horizon => {
                let gap = Gap {
                    reason: GapReason::CursorTooOld,
                    after: Some(after),
                    resumed_from: ring.events.items().front().map(|e| e.id()),
                    missed: None,
                };
                // The cursor is the reader's own: it may always hear it back.
                let gap = Gap {
                    after: Some(after),
                    ..gap.seen_through(&filter)
                };
                (ring.events.first(), Some(gap))
            }
            Some(after) => {
                let kept = ring.events.items().partition_point(|e| e.id() <= after);
                (ring.events.first() + kept as u64, None)
            }
        };
        drop(ring);
        Ok(Subscription {
            hub: hub.clone(),
            cursor,
            last_id: after,
            pending_gap: gap,
            filter,
            changed,
        })
    }

    fn read(&self, cursor: u64) -> Read {
        let ring = self.read_ring();
        match ring.events.read(cursor) {
            Slot::Item(event) => Read::Event(event.clone()),
            Slot::Behind { first } => Read::Behind {
                first_seq: first,
                first_id: ring.events.items().front().map(|e| e.id()),
                forgotten: cursor < ring.restarted_at,
            },
            Slot::Pending => Read::Pending,
        }
    }

    /// The latest position still in history, optionally of one tracker:
    /// the one with the latest fix time (see
    /// [`crate::model::PositionEvent::is_later_fix_than`]), so a buffered fix that
    /// arrived late does not replace a newer one; within a reader's `scope`
    /// when it has one.
    pub fn latest(&self, tracker: Option<&str>, scope: Option<&ReadScope>) -> Option<Arc<Event>> {
        self.expire();
        let ring = self.read_ring();
        let mut best: Option<&Arc<Event>> = None;
        for event in ring.events.items().iter().rev() {
            if !event.is_position() {
                continue;
            }
            let position = &event.position;
            if let Some(best) = best
                && position.received_at + ARRIVAL_SLACK < best.position.fix_time()
            {
                // A fix is never later than its arrival, and what lies
                // further back arrived earlier still.
                break;
            }
            let its = position.tracker.as_deref();
            let wanted =
                tracker.is_none_or(|t| its == Some(t)) && scope.is_none_or(|s| s.allows(its));
            if wanted && best.is_none_or(|b| position.is_later_fix_than(&b.position)) {
                best = Some(event);
            }
        }
        best.cloned()
    }

    /// The event with this id, while it is still in history.
    pub fn get(&self, id: EventId) -> Option<Arc<Event>> {
        self.expire();
        let ring = self.read_ring();
        let events = ring.events.items();
        let index = events.partition_point(|e| e.id() < id);
        events.get(index).filter(|e| e.id() == id).cloned()
    }

    /// Up to `limit` events after `after` (from the oldest kept when `None`)
    /// matching `filter`, oldest first, and whether `after` was older than
    /// history.
    pub fn history(
        &self,
        after: Option<EventId>,
        limit: usize,
        filter: &Filter,
    ) -> Result<History, CursorAhead> {
        self.check_cursor(after)?;
        self.expire();
        let ring = self.read_ring();
        let kept = ring.events.items();
        let start = after.map_or(0, |a| kept.partition_point(|e| e.id() <= a));
        let events = kept
            .range(start..)
            .filter(|e| filter.matches(e))
            .take(limit)
            .cloned()
            .collect();
        Ok(History {
            events,
            cursor_too_old: after.is_some_and(|a| a < ring.horizon),
        })
    }
}

/// A page of history; see [`Hub::history`].
#[derive(Debug)]
pub struct History {
    /// Matching events, oldest first.
    pub events: Vec<Arc<Event>>,
    /// Whether events after the requested cursor were already dropped.
    pub cursor_too_old: bool,
}

/// Where a subscription is: the next sequence number it reads, and the
/// last event it had (a live fan-out hands it back to a subscriber with
/// this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The next sequence number to read.
    pub seq: u64,
    /// The last event had, if known.
    pub last_id: Option<EventId>,
}

/// One subscriber's place in the stream: a cursor into the hub's ring.
///
/// Holds no queue of its own; it reads the shared ring when woken.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    cursor: u64,
    last_id: Option<EventId>,
    pending_gap: Option<Gap>,
    filter: Filter,
    changed: watch::Receiver<u64>,
}

impl Subscription {
    /// Waits for the next delivery. Cancel-safe: dropping the future loses
    /// nothing.
    pub async fn recv(&mut self) -> Delivery {
        loop {
            if let Some(delivery) = self.try_recv() {
                return delivery;
            }
            if self.changed.changed().await.is_err() {
                // The sender lives in the hub, which we hold: unreachable.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The next delivery if one is ready now, without waiting. Lets a
    /// transport that was woken for one event write every event already
    /// published in one go.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        if let Some(gap) = self.pending_gap.take() {
            return Some(Delivery::Gap(gap));
        }
        loop {
            // Mark the signal seen before reading, so a publish that lands
            // after this read still wakes the next wait.
            self.changed.mark_unchanged();
            if self.cursor >= self.hub.head.load(Ordering::Acquire) {
                return None;
            }
            match self.hub.read(self.cursor) {
                Read::Event(event) => {
                    self.cursor += 1;
                    // A cursor from another instance may be ahead of this
                    // hub: skip what the subscriber already has.
                    if self.last_id.is_some_and(|last| event.id() <= last) {
                        continue;
                    }
                    self.last_id = Some(event.id());
                    if self.filter.matches(&event) {
                        return Some(Delivery::Event(event));
                    }
                }
                Read::Behind {
                    first_seq,
                    first_id,
                    forgotten,
                } => {
                    let mut gap = Gap {
                        reason: GapReason::Lagged,
                        after: self.last_id,
                        resumed_from: first_id,
                        missed: Some(first_seq - self.cursor),
                    };
                    if forgotten {
                        gap.reason = GapReason::CursorTooOld;
                        gap.missed = None;
                        // Ids start again with the new history.
                        self.last_id = None;
                    }
                    self.cursor = first_seq;
                    return Some(Delivery::Gap(gap.seen_through(&self.filter)));
                }
                Read::Pending => return None,
            }
        }
    }

    /// The sequence number of the next event this subscription reads.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Where this subscription is.
    pub fn place(&self) -> Place {
        Place {
            seq: self.cursor,
            last_id: self.last_id,
        }
    }

    /// Where this subscription is, when it has read everything published
    /// so far and has nothing of its own left to deliver (no pending gap
    /// notice, no id to skip up to): from here a fan-out that follows the
    /// hub can serve it. `None` otherwise.
    pub fn caught_up(&self) -> Option<Place> {
        if self.pending_gap.is_some() || self.cursor < self.hub.head.load(Ordering::Acquire) {
            return None;
        }
        let ahead = self
            .last_id
            .is_some_and(|last| last > self.hub.read_ring().last_id);
        (!ahead).then_some(self.place())
    }

    /// Goes on from `place`, having had everything up to its `last_id`
    /// (when known): where a fan-out that served this subscriber stopped.
    pub fn resume_at(&mut self, place: Place) {
        self.cursor = place.seq;
        if place.last_id.is_some() {
            self.last_id = place.last_id;
        }
    }

    /// The subscription as a stream of deliveries.
    pub fn into_stream(self) -> impl futures::Stream<Item = Delivery> + Send {
        futures::stream::unfold(self, |mut sub| async move {
            let delivery = sub.recv().await;
            Some((delivery, sub))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PositionEvent, PositionInput};
    use time::OffsetDateTime;

    fn hub(capacity: usize) -> Arc<Hub> {
        Hub::new(
            HubSettings {
                capacity,
                max_age: None,
            },
            EventId { millis: 10, seq: 0 },
        )
    }

    fn append(hub: &Hub, tracker: &str) -> EventId {
        let event = hub.append_with(|last| {
            let position = PositionInput {
                tracker: Some(tracker.into()),
                ..PositionInput::at(1.0, 2.0)
            }
            .validate()
            .ok()?;
            let id = last.next_after(0);
            let event: PositionEvent = position.into_event(id, OffsetDateTime::UNIX_EPOCH);
            Some(Arc::new(Event::new(event)))
        });
        event.expect("appended").id()
    }

    async fn next_event(sub: &mut Subscription) -> EventId {
        match sub.recv().await {
            Delivery::Event(e) => e.id(),
            Delivery::Gap(g) => panic!("unexpected gap {g:?}"),
        }
    }

    #[tokio::test]
    async fn a_subscriber_resumes_exactly_after_its_cursor() {
        let hub = hub(10);
        let ids: Vec<_> = (0..5).map(|_| append(&hub, "a")).collect();
        let mut sub =
            Hub::subscribe(&hub, Some(ids[1]), Filter::default()).expect("a cursor the hub issued");
        for id in &ids[2..] {
            assert_eq!(next_event(&mut sub).await, *id);
        }
        let live = append(&hub, "a");
        assert_eq!(next_event(&mut sub).await, live);
    }

    #[tokio::test]
    async fn a_woken_subscriber_takes_every_event_already_published_without_waiting() {
        let hub = hub(10);
        let mut sub =
            Hub::subscribe(&hub, None, Filter::default()).expect("a cursor the hub issued");
        assert!(sub.try_recv().is_none());
        let ids: Vec<_> = (0..3).map(|_| append(&hub, "a")).collect();
        for id in &ids {
            match sub.try_recv() {
                Some(Delivery::Event(e)) => assert_eq!(e.id(), *id),
                other => panic!("expected event {id}, got {other:?}"),
            }
        }
        assert!(sub.try_recv().is_none());
        let live = append(&hub, "a");
        assert_eq!(next_event(&mut sub).await, live);
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_how_many_events_it_missed() {
        let hub = hub(3);
        let mut sub =
            Hub::subscribe(&hub, None, Filter::default()).expect("a cursor the hub issued");
        let ids: Vec<_> = (0..5).map(|_| append(&hub, "a")).collect();
        match sub.recv().await {
            Delivery::Gap(gap) => {
                assert_eq!(gap.reason, GapReason::Lagged);
                assert_eq!(gap.missed, Some(2));
                assert_eq!(gap.resumed_from, Some(ids[2]));
            }
            other => panic!("expected a gap, got {other:?}"),
        }
        assert_eq!(next_event(&mut sub).await, ids[2]);
    }

    #[tokio::test]
    async fn a_cursor_older_than_history_is_reported() {
        let hub = hub(2);
        let first = append(&hub, "a");
        let kept: Vec<_> = (0..2).map(|_| append(&hub, "a")).collect();
        let mut sub = Hub::subscribe(&hub, Some(EventId { millis: 1, seq: 0 }), Filter::default())
            .expect("a cursor the hub issued");
        assert!(
            matches!(sub.recv().await, Delivery::Gap(g) if g.reason == GapReason::CursorTooOld)
        );
        assert_eq!(next_event(&mut sub).await, kept[0]);
        let mut exact =
            Hub::subscribe(&hub, Some(first), Filter::default()).expect("a cursor the hub issued");
        assert_eq!(next_event(&mut exact).await, kept[0]);
    }

    #[test]
    fn a_cursor_is_refused_only_well_past_both_the_clock_and_the_newest_id() {
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let now = u64::try_from(now).expect("after 1970");
        let leeway = CURSOR_LEEWAY.as_millis() as u64;
        let at = |millis| Some(EventId { millis, seq: 0 });
        let hub = hub(10);
        assert!(hub.check_cursor(at(now + leeway / 2)).is_ok());
        assert!(hub.check_cursor(at(now + leeway * 2)).is_err());
        // Ids numbered by a clock ahead of this one (another machine's).
        let ahead = now + leeway * 3;
        hub.append_with(|_| {
            let position = PositionInput::at(0.0, 0.0);
            let id = EventId {
                millis: ahead,
                seq: 0,
            };
            let event = position
                .validate()
                .ok()?
                .into_event(id, OffsetDateTime::now_utc());
            Some(Arc::new(Event::new(event)))
        });
        assert!(hub.check_cursor(at(ahead + leeway / 2)).is_ok());
        assert!(hub.check_cursor(at(ahead + leeway * 2)).is_err());
        assert!(hub.check_cursor(None).is_ok());
    }

    #[tokio::test]
    async fn after_a_restart_every_cursor_from_before_is_too_old() {
        let hub = hub(10);
        let old: Vec<_> = (0..3).map(|_| append(&hub, "a")).collect();
        let mut reading = Hub::subscribe(&hub, Some(old[0]), Filter::default()).unwrap();
        let mut caught_up = Hub::subscribe(&hub, None, Filter::default()).unwrap();
        hub.restart(EventId { millis: 20, seq: 0 });
        let new = append(&hub, "a");
        for sub in [&mut reading, &mut caught_up] {
            match sub.recv().await {
                Delivery::Gap(gap) => {
                    assert_eq!(gap.reason, GapReason::CursorTooOld);
                    assert_eq!(gap.missed, None);
                }
                other => panic!("expected a gap, got {other:?}"),
            }
            assert_eq!(next_event(sub).await, new);
        }
        let mut late = Hub::subscribe(&hub, Some(old[2]), Filter::default()).unwrap();
        assert!(
            matches!(late.recv().await, Delivery::Gap(g) if g.reason == GapReason::CursorTooOld)
        );
        assert!(
            hub.history(Some(old[2]), 10, &Filter::default())
                .unwrap()
                .cursor_too_old
        );
        let mut current = Hub::subscribe(&hub, Some(new), Filter::default()).unwrap();
        assert!(current.try_recv().is_none());
    }

    #[tokio::test]
    async fn filters_skip_other_trackers() {
        let hub = hub(10);
        let mut sub = Hub::subscribe(
            &hub,
            None,
            Filter {
                trackers: Some(vec!["b".into()]),
                ..Filter::default()
            },
        )
        .expect("a cursor the hub issued");
        append(&hub, "a");
        let b = append(&hub, "b");
        assert_eq!(next_event(&mut sub).await, b);
        assert_eq!(
            hub.latest(Some("a"), None).map(|e| e.id()),
            Some(EventId { millis: 10, seq: 1 })
        );
    }
}
