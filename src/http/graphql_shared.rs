//! Identical live subscriptions share one execution.
//!
//! A thousand GraphiQL tabs or map widgets usually send the very same
//! `subscription { positions { … } }`. Executing it once per subscriber would
//! resolve and serialise every event a thousand times; instead the first
//! subscriber starts one execution whose results are serialised once and fanned
//! out, as text, to everyone who sent the same operation (same document, same
//! variables). Only live subscriptions are shared: one with `after` replays a
//! history of its own, and queries and mutations run once anyway.
//!
//! A sharer that has read every result so far, and whose socket took every
//! byte, parks: the execution then writes each result's `next` message to its
//! socket itself, made once per operation id (clients usually all use the
//! same one), so a result costs each parked sharer one `send` and no task
//! wake-up, as on `/ws` (see [`super::fanout`]). A socket that does not take
//! a whole message is handed back to its connection, which reads on from
//! the ring and writes under its send timeout, and parks again once drained.
//!
//! Results are sent from a bounded ring (`broadcast`): a sharer that falls
//! more than [`RING`] results behind is told `events-lost` (`lagged`) and its
//! subscription completes, as for any lagging subscriber. Connection data from
//! `connection_init` is not part of the key: a connection may only run
//! subscriptions once `connection_init` found it allowed to read, and what a
//! subscription returns does not depend on who asked. If it ever does, the
//! caller must join the key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_graphql::{ErrorExtensions, PathSegment, Pos, Response, ServerError};
use futures::stream::{BoxStream, Stream, StreamExt};
use metrics::counter;
use tokio::sync::{Notify, broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::broker::{Gap, GapReason};
use crate::error::Error;
use crate::graphql::LonglatSchema;
use crate::net::{Pushed, Writer, text_frame};
use crate::stats;

/// Parked sharers from which a result is written by several tasks.
const SPLIT_AT: usize = 128;

/// Distinct operation ids whose `next` message is made once per result;
/// beyond that (every client picking its own id), each is made in a
/// reused buffer.
const FRAMES_PER_RESULT: usize = 8;

/// Results a sharer may fall behind before it is told it lagged.
pub const RING: usize = 1024;

/// What an operation produces, serialised once.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A result: the `payload` of a `next` message, as JSON text.
    Next(Arc<str>),
    /// The operation was refused before it ran: the errors, as JSON text.
    Refused(Arc<str>),
    /// The operation ended.
    Complete,
}

impl Outcome {
    /// The outcome of one response of an execution.
    pub fn of(response: &Response) -> Self {
        let refused = response.data == async_graphql::Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|e| e.path.is_empty());
        let text = if refused {
            serde_json::to_string(&response.errors)
        } else {
            serde_json::to_string(response)
        };
        // A GraphQL response is plain data: serialising it cannot fail.
        let text: Arc<str> = text.unwrap_or_default().into();
        if refused {
            Self::Refused(text)
        } else {
            Self::Next(text)
        }
    }
}

/// The results of one operation, run on its own, ending with `Complete`.
pub fn run_alone(
    schema: &LonglatSchema,
    request: async_graphql::Request,
    data: Arc<async_graphql::Data>,
) -> BoxStream<'static, Outcome> {
    schema
        .execute_stream_with_session_data(request, data)
        .map(|response| Outcome::of(&response))
        .chain(futures::stream::once(async { Outcome::Complete }))
        .boxed()
}

/// Where a sharer's results may be written directly: its connection's
/// socket, and its `next` messages' text up to the payload.
#[derive(Debug, Clone)]
pub struct Direct {
    /// The connection's socket.
    pub socket: Writer,
    /// `{"type":"next","id":…,"payload":`; the message ends after the
    /// payload with `}`.
    pub prefix: Arc<str>,
}

/// One running shared execution; dropping the last sharer stops it.
struct Group {
    /// Never read: new sharers are `resubscribe`d from it. The sender lives in
    /// the task, so every sharer sees the ring close when the execution ends.
    origin: broadcast::Receiver<Outcome>,
    parking: Arc<Mutex<Parking>>,
    task: JoinHandle<()>,
}

/// The sharers the execution writes to itself.
#[derive(Default)]
struct Parking {
    seats: Vec<Arc<Seat>>,
    /// The last outcome is out: nobody parks any more.
    ended: bool,
}

/// A parked sharer.
struct Seat {
    direct: Direct,
    /// Where its connection waits for the ring to read on from. Taken when
    /// the seat is handed back or the sharer leaves; a push happens only
    /// under this lock while it is still here, so none follows a leave.
    back: Mutex<Option<oneshot::Sender<broadcast::Receiver<Outcome>>>>,
}

impl Seat {
    /// Gives the seat back: its sharer reads on from `ring`.
    fn hand_back(&self, ring: broadcast::Receiver<Outcome>) {
        if let Some(back) = lock(&self.back).take() {
            let _ = back.send(ring);
        }
    }
}

/// Takes the seat out of every push when its sharer is dropped.
struct Leave(Arc<Seat>);

impl Drop for Leave {
    fn drop(&mut self) {
        lock(&self.0.back).take();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Group {
    /// Parks a sharer that has read everything from `ring` and whose
    /// socket is drained; `None` (keep reading) otherwise.
    fn park(
        &self,
        ring: &broadcast::Receiver<Outcome>,
        direct: &Direct,
    ) -> Option<(Leave, oneshot::Receiver<broadcast::Receiver<Outcome>>)> {
        if !direct.socket.is_drained() {
            return None;
        }
        let mut parking = lock(&self.parking);
        // Under the lock the execution sends under: a result is either in
        // `ring` already or will be pushed.
        if parking.ended || !ring.is_empty() {
            return None;
        }
        let (back, handed_back) = oneshot::channel();
        let seat = Arc::new(Seat {
            direct: direct.clone(),
            back: Mutex::new(Some(back)),
        });
        parking.seats.push(seat.clone());
        Some((Leave(seat), handed_back))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The running shared executions, by operation.
pub struct SharedExecutions {
    schema: LonglatSchema,
    groups: Mutex<HashMap<String, Weak<Group>>>,
}

impl SharedExecutions {
    /// No shared executions yet, over `schema`.
    pub fn new(schema: LonglatSchema) -> Self {
        Self {
            schema,
            groups: Mutex::default(),
        }
    }

    /// The outcomes of `request` (whose `subscribe` payload was `key`): from
    /// a shared execution when it is a live subscription, else run on its own
    /// with the connection's `data`. With `direct`, a shared execution
    /// writes `next` messages to the socket itself while the sharer keeps up.
    pub fn join(
        &self,
        key: String,
        request: async_graphql::Request,
        data: Arc<async_graphql::Data>,
        direct: Option<Direct>,
    ) -> BoxStream<'static, Outcome> {
        if !is_shareable(&request) {
            return run_alone(&self.schema, request, data);
        }
        let mut groups = self
            .groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(group) = groups.get(&key).and_then(Weak::upgrade)
            && !group.task.is_finished()
        {
            let ring = group.origin.resubscribe();
            return sharer(group, ring, direct).boxed();
        }
        // The first sharer's receiver exists before the execution starts, so
        // it sees every result.
        let (sender, ring) = broadcast::channel(RING);
        let origin = ring.resubscribe();
        // Every sharer's connection was checked at `connection_init`.
        let mut data = async_graphql::Data::default();
        data.insert(crate::access::Caller::connection_checked());
        let outcomes = run_alone(&self.schema, request, Arc::new(data));
        let parking = Arc::new(Mutex::new(Parking::default()));
        let task = tokio::spawn(fan_out(outcomes, sender, parking.clone()));
        let group = Arc::new(Group {
            origin,
            parking,
            task,
        });
        groups.retain(|_, group| group.strong_count() > 0);
        groups.insert(key, Arc::downgrade(&group));
        sharer(group, ring, direct).boxed()
    }
}

async fn fan_out(
    mut outcomes: BoxStream<'static, Outcome>,
    ring: broadcast::Sender<Outcome>,
    parking: Arc<Mutex<Parking>>,
) {
    let delivered = counter!(stats::DELIVERED, "transport" => "graphql");
    let workers = tokio::runtime::Handle::current()
        .metrics()
        .num_workers()
        .max(1);
    while let Some(outcome) = outcomes.next().await {
        let Outcome::Next(payload) = &outcome else {
            // The last outcome: every parked sharer reads it from the ring.
            let mut parking = lock(&parking);
            parking.ended = true;
            for seat in parking.seats.drain(..) {
                seat.hand_back(ring.subscribe());
            }
            let _ = ring.send(outcome);
            continue;
        };
        let seats = {
            let mut parking = lock(&parking);
            // No receivers means every sharer left or is parked.
            let _ = ring.send(outcome.clone());
            std::mem::take(&mut parking.seats)
        };
        // Large groups are written by one task per worker, side by side,
        // taking chunks of seats as they go: a helper that is slow to start
        // leaves its chunks to the others rather than holding the result
        // up. The next result waits for every chunk, so each socket gets
        // its results in order.
        let helpers = if seats.len() >= SPLIT_AT {
            workers - 1
        } else {
            0
        };
        let pass = Arc::new(Pass::new(seats, payload.clone(), ring.clone()));
        for _ in 0..helpers {
            tokio::spawn(pass.clone().work());
        }
        pass.clone().work().await;
        let (mut kept, pushes) = pass.finished().await;
        delivered.increment(pushes);
        // Sharers that parked meanwhile are there already; they had this
        // result from the ring.
        lock(&parking).seats.append(&mut kept);
    }
}

/// Seats taken at a time by one of a pass's tasks.
const CHUNK: usize = 64;

/// Chunks a task writes between two yields to the runtime.
const CHUNKS_PER_YIELD: usize = 4;

/// One result's writes to the parked seats, shared by the tasks doing them.
struct Pass {
    seats: Vec<Arc<Seat>>,
    payload: Arc<str>,
    ring: broadcast::Sender<Outcome>,
    /// The first seat of the next chunk to take.
    next: AtomicUsize,
    chunks: usize,
    done: Mutex<Done>,
    all_done: Notify,
}

/// What a pass's chunks have done so far.
#[derive(Default)]
struct Done {
    /// Seats still parked.
    kept: Vec<Arc<Seat>>,
    /// Writes made.
    pushes: u64,
    chunks: usize,
}

impl Pass {
    fn new(seats: Vec<Arc<Seat>>, payload: Arc<str>, ring: broadcast::Sender<Outcome>) -> Self {
        let chunks = seats.len().div_ceil(CHUNK);
        Self {
            done: Mutex::new(Done {
                kept: Vec::with_capacity(seats.len()),
                ..Done::default()
            }),
            seats,
            payload,
            ring,
            next: AtomicUsize::new(0),
            chunks,
            all_done: Notify::new(),
        }
    }

    /// Takes chunks and writes the result to their seats until none is left.
    async fn work(self: Arc<Self>) {
        let mut frames = Frames::new(self.payload.clone());
        let mut kept = Vec::new();
        for taken in 1.. {
            let start = self.next.fetch_add(CHUNK, Ordering::Relaxed);
            if start >= self.seats.len() {
                return;
            }
            let chunk = &self.seats[start..self.seats.len().min(start + CHUNK)];
            kept.clear();
            let pushes = push_chunk(chunk, &mut frames, &self.ring, &mut kept);
            let last = {
                let mut done = lock(&self.done);
                done.kept.append(&mut kept);
                done.pushes += pushes;
                done.chunks += 1;
                done.chunks == self.chunks
            };
            if last {
                self.all_done.notify_one();
            }
            // A long pass does not hold a worker thread for all of it.
            if taken % CHUNKS_PER_YIELD == 0 {
                tokio::task::yield_now().await;
            }
        }
    }

    /// The seats still parked and the writes made, once every chunk is done.
    async fn finished(&self) -> (Vec<Arc<Seat>>, u64) {
        loop {
            {
                let mut done = lock(&self.done);
                if done.chunks == self.chunks {
                    return (std::mem::take(&mut done.kept), done.pushes);
                }
            }
            self.all_done.notified().await;
        }
    }
}

/// Writes the result's `next` message to each of `seats`, adding those
/// still parked to `kept`; how many were written to.
fn push_chunk(
    seats: &[Arc<Seat>],
    frames: &mut Frames,
    ring: &broadcast::Sender<Outcome>,
    kept: &mut Vec<Arc<Seat>>,
) -> u64 {
    let mut pushes = 0;
    for seat in seats {
        let pushed = {
            let back = lock(&seat.back);
            // None: its sharer left.
            back.is_some()
                .then(|| seat.direct.socket.push(frames.frame(&seat.direct.prefix)))
        };
        let Some(pushed) = pushed else {
            continue;
        };
        pushes += 1;
        if pushed == Pushed::Sent {
            kept.push(seat.clone());
        } else {
            // Queued: the connection drains the rest under its send
            // timeout and reads on after this result. Closed: it finds
            // out as it does so.
            seat.hand_back(ring.subscribe());
        }
    }
    pushes
}

/// The `next` messages of one result, as WebSocket frames, by prefix.
struct Frames {
    payload: Arc<str>,
    made: Vec<(Arc<str>, Vec<u8>)>,
    spare: Vec<u8>,
}

impl Frames {
    fn new(payload: Arc<str>) -> Self {
        Self {
            payload,
            made: Vec::new(),
            spare: Vec::new(),
        }
    }

    fn frame(&mut self, prefix: &Arc<str>) -> &[u8] {
        let payload = &*self.payload;
        let found = self
            .made
            .iter()
            .position(|(made, _)| Arc::ptr_eq(made, prefix) || made == prefix);
        let index = match found {
            Some(index) => index,
            None if self.made.len() < FRAMES_PER_RESULT => {
                let mut frame = Vec::new();
                text_frame(&mut frame, &[prefix.as_bytes(), payload.as_bytes(), b"}"]);
                self.made.push((prefix.clone(), frame));
                self.made.len() - 1
            }
            None => {
                self.spare.clear();
                text_frame(
                    &mut self.spare,
                    &[prefix.as_bytes(), payload.as_bytes(), b"}"],
                );
                return &self.spare;
            }
        };
        &self.made[index].1
    }
}

/// Where a sharer is.
enum Sharer {
    /// Reading results from the ring.
    Reading(broadcast::Receiver<Outcome>),
    /// Parked: results go to its socket until it is handed back.
    Parked(Leave, oneshot::Receiver<broadcast::Receiver<Outcome>>),
}

/// One sharer's view: results until `Complete` or a refusal, or a lag notice
/// and `Complete`. Results pushed while parked are not in it.
fn sharer(
    group: Arc<Group>,
    ring: broadcast::Receiver<Outcome>,
    direct: Option<Direct>,
) -> impl Stream<Item = Outcome> {
    let state = (group, Sharer::Reading(ring), direct);
    futures::stream::unfold(Some(state), |state| async move {
        let (group, mut at, direct) = state?;
        loop {
            at = match at {
                Sharer::Reading(ring) => {
                    match direct.as_ref().and_then(|direct| group.park(&ring, direct)) {
                        Some((leave, handed_back)) => Sharer::Parked(leave, handed_back),
                        None => break Some(read(group, ring, direct).await),
                    }
                }
                Sharer::Parked(leave, handed_back) => match handed_back.await {
                    Ok(ring) => Sharer::Reading(ring),
                    // The execution is gone.
                    Err(_) => {
                        drop(leave);
                        let done = futures::stream::iter(vec![Outcome::Complete]);
                        break Some((done, None));
                    }
                },
            };
        }
    })
    .flatten()
}

type SharerState = (Arc<Group>, Sharer, Option<Direct>);

/// The next outcomes from `ring`, and what follows them.
async fn read(
    group: Arc<Group>,
    mut ring: broadcast::Receiver<Outcome>,
    direct: Option<Direct>,
) -> (
    futures::stream::Iter<std::vec::IntoIter<Outcome>>,
    Option<SharerState>,
) {
    let (outcomes, next) = match ring.recv().await {
        Ok(Outcome::Next(text)) => (
            vec![Outcome::Next(text)],
            Some((group, Sharer::Reading(ring), direct)),
        ),
        Ok(last) => (vec![last], None),
        Err(broadcast::error::RecvError::Lagged(missed)) => {
            (vec![lagged(missed), Outcome::Complete], None)
        }
        Err(broadcast::error::RecvError::Closed) => (vec![Outcome::Complete], None),
    };
    (futures::stream::iter(outcomes), next)
}

/// The `events-lost` notice for a sharer that fell `missed` results behind.
fn lagged(missed: u64) -> Outcome {
    let gap = Gap {
        reason: GapReason::Lagged,
        after: None,
        resumed_from: None,
        missed: Some(missed),
    };
    let error: ServerError = Error::EventsLost(gap)
        .extend()
        .into_server_error(Pos::default())
        .with_path(vec![PathSegment::Field("positions".into())]);
    Outcome::of(&Response::from_errors(vec![error]))
}

/// Whether `request` is one live subscription without `after`.
fn is_shareable(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let DocumentOperations::Single(operation) = &document.operations else {
        return false;
    };
    operation.node.ty == OperationType::Subscription
        && operation
            .node
            .selection_set
            .node
            .items
            .iter()
            .all(|item| match &item.node {
                Selection::Field(field) => field
                    .node
                    .arguments
                    .iter()
                    .all(|(name, _)| name.node != "after"),
                _ => false,
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(ring: &broadcast::Receiver<Outcome>) -> Arc<Group> {
        Arc::new(Group {
            origin: ring.resubscribe(),
            parking: Arc::default(),
            task: tokio::spawn(std::future::pending()),
        })
    }

    #[tokio::test]
    async fn a_sharer_that_falls_behind_the_ring_is_told_and_completes() {
        let (sender, ring) = broadcast::channel(2);
        let group = group(&ring);
        for i in 0..5 {
            sender
                .send(Outcome::Next(format!("{{\"n\":{i}}}").into()))
                .unwrap();
        }
        let seen: Vec<Outcome> = sharer(group, ring, None).collect().await;
        let [Outcome::Next(notice), Outcome::Complete] = &seen[..] else {
            panic!("expected a notice then Complete, got {seen:?}");
        };
        assert!(notice.contains(r#""code":"events-lost""#), "{notice}");
        assert!(notice.contains(r#""reason":"lagged""#), "{notice}");
        assert!(notice.contains(r#""missed":3"#), "{notice}");
    }

    #[tokio::test]
    async fn a_sharer_gets_every_result_then_completes_when_the_execution_ends() {
        let (sender, ring) = broadcast::channel(8);
        let group = group(&ring);
        sender.send(Outcome::Next("1".into())).unwrap();
        sender.send(Outcome::Next("2".into())).unwrap();
        drop(sender);
        let seen: Vec<Outcome> = sharer(group, ring, None).collect().await;
        assert!(
            matches!(&seen[..], [Outcome::Next(a), Outcome::Next(b), Outcome::Complete] if &**a == "1" && &**b == "2"),
            "{seen:?}"
        );
    }

    #[test]
    fn only_live_subscriptions_are_shared() {
        let shareable = |query: &str| is_shareable(&async_graphql::Request::new(query));
        assert!(shareable("subscription { positions { id } }"));
        assert!(shareable(
            "subscription($t: [String!]) { positions(tracker: $t) { id } }"
        ));
        assert!(!shareable(
            "subscription($a: ID) { positions(after: $a) { id } }"
        ));
        assert!(!shareable("{ latest { id } }"));
        assert!(!shareable(
            "mutation { publish(input: {longitude: 0, latitude: 0}) { id } }"
        ));
        assert!(!shareable(
            "subscription { ...F } fragment F on Subscription { positions { id } }"
        ));
        assert!(!shareable("not graphql"));
    }
}
