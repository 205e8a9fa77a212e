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
//! byte, parks in one of the execution's lanes (see `results.rs`): shards of
//! the one delivery engine ([`crate::delivery`]), which write each result's
//! `next` message to its socket, made once per operation id, so a result
//! costs each parked sharer one `send` and no task wake-up, as on `/ws`. A
//! socket that does not take a whole message is handed back to its
//! sharer's [`LiveStream`], which drains it under the send timeout, reads on
//! from the ring, and parks again once caught up.
//!
//! Results are kept in a bounded ring (see `ring.rs`): a sharer that falls
//! more than [`RING`] results behind is told `events-lost` (`lagged`) and its
//! subscription completes, as for any lagging subscriber. Of the connection's
//! caller, only its read scope is part of the key ([`SharedKey`]): a
//! connection may only run subscriptions once `connection_init` found it
//! allowed to read, and what a subscription returns depends on who asked
//! only through the trackers the caller may read, so subscribers share an
//! execution only with those whose scope is the same.

mod results;
mod ring;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_graphql::{ErrorExtensions, PathSegment, Response, ServerError};
use futures::stream::{BoxStream, Stream, StreamExt};
use metrics::counter;
use tokio::task::JoinHandle;

use crate::broker::{Gap, GapReason};
use crate::conn::Writer;
use crate::delivery::{Gone, LiveStream, Shards};
use crate::error::Error;
use crate::graphql::LonglatSchema;
use crate::model::ReadScope;
use crate::shutdown::Shutdown;
use crate::stats;

use results::{Results, Sharer};
use ring::{Reader, RecvError, Tap};

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
    /// The sharer's socket took nothing for the send timeout: its
    /// connection is cut.
    Stalled,
}

impl Outcome {
    /// The outcome of one response of an execution.
    pub fn of(response: &Response) -> Self {
        let refused = crate::graphql::is_request_error(response);
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

/// What makes two live subscriptions one execution: the same `subscribe`
/// payload (document, variables, operation name), read within the same
/// scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedKey {
    /// The `subscribe` message's payload, as JSON text.
    pub payload: String,
    /// The subscriber's read scope; `None`: it may read every tracker.
    pub scope: Option<ReadScope>,
}

impl SharedKey {
    /// The key of `payload` sent by `caller`: read within its scope.
    pub fn new(payload: String, caller: &crate::access::Caller) -> Self {
        Self {
            payload,
            scope: caller.read_scope().cloned(),
        }
    }
}

/// One running shared execution; dropping the last sharer stops it.
struct Group {
    /// Where new sharers start reading: only results sent after they join.
    results: Tap<Outcome>,
    /// Where sharers park: a lane for each block of [`LANE_BLOCK`] sharers
    /// in turn, up to one per runtime worker, started as sharers come.
    lanes: Shards<Results>,
    execution: JoinHandle<()>,
}

/// Sharers that keep to one lane before the next lane takes the next
/// ones: a small group (the usual distinct subscription) has one lane, a
/// large one is written by a lane per worker.
const LANE_BLOCK: usize = 64;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How lanes send, and stop.
#[derive(Clone)]
struct LaneSettings {
    io_uring: bool,
    shutdown: Shutdown,
}

impl Group {
    /// Starts `outcomes`; `results` reads from its first result on.
    fn start(
        mut outcomes: BoxStream<'static, Outcome>,
        lanes: &LaneSettings,
    ) -> (Self, Reader<Outcome>) {
        let (sender, results, tap) = ring::channel(RING);
        let execution = tokio::spawn(async move {
            while let Some(outcome) = outcomes.next().await {
                sender.send(outcome);
            }
        });
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        let feed = tap.clone();
        let delivered = counter!(stats::DELIVERED, "transport" => "graphql");
        let lanes = Shards::new(
            workers,
            LANE_BLOCK,
            lanes.io_uring,
            lanes.shutdown.clone(),
            move || Results::new(feed.clone(), delivered.clone()),
        );
        let group = Self {
            results: tap,
            lanes,
            execution,
        };
        (group, results)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.execution.abort();
    }
}

/// The running shared executions, by operation.
pub struct SharedExecutions {
    schema: LonglatSchema,
    groups: Mutex<HashMap<SharedKey, Weak<Group>>>,
    lanes: LaneSettings,
    /// How long a sharer's socket has to take what a lane left pending.
    send_timeout: Duration,
}

impl SharedExecutions {
    /// No shared executions yet, over `schema`; lanes send through io_uring
    /// if `io_uring` and the kernel allows it, and stop on `shutdown`; a
    /// sharer's socket has `send_timeout` to take what a lane left pending.
    pub fn new(
        schema: LonglatSchema,
        io_uring: bool,
        shutdown: Shutdown,
        send_timeout: Duration,
    ) -> Self {
        Self {
            schema,
            groups: Mutex::default(),
            lanes: LaneSettings { io_uring, shutdown },
            send_timeout,
        }
    }

    /// The outcomes of `request` (whose `subscribe` payload and caller's
    /// scope are `key`): from a shared execution when it is a live
    /// subscription, else run on its own with the connection's `data`.
    /// With `direct`, a shared execution writes `next` messages to the
    /// socket itself while the sharer keeps up.
    pub fn join(
        &self,
        key: SharedKey,
        request: async_graphql::Request,
        data: Arc<async_graphql::Data>,
        direct: Option<Direct>,
    ) -> BoxStream<'static, Outcome> {
        let Some(field) = shared_field(&request) else {
            return run_alone(&self.schema, request, data);
        };
        let mut groups = lock(&self.groups);
        if let Some(group) = groups.get(&key).and_then(Weak::upgrade)
            && !group.execution.is_finished()
        {
            let results = group.results.reader_at_head();
            return sharer(group, results, direct, self.send_timeout, field).boxed();
        }
        // Every sharer's connection was checked at `connection_init`, and
        // reads within the scope of the key.
        let mut data = async_graphql::Data::default();
        data.insert(crate::access::Caller::connection_checked(key.scope.clone()));
        let outcomes = run_alone(&self.schema, request, Arc::new(data));
        // The first sharer reads from the execution's first result.
        let (group, results) = Group::start(outcomes, &self.lanes);
        let group = Arc::new(group);
        groups.retain(|_, group| group.strong_count() > 0);
        groups.insert(key, Arc::downgrade(&group));
        sharer(group, results, direct, self.send_timeout, field).boxed()
    }
}

/// One sharer's view: results until `Complete` or a refusal, or a lag notice
/// (about `field`, the subscription's) and `Complete`. Results pushed while
/// parked are not in it.
fn sharer(
    group: Arc<Group>,
    results: Reader<Outcome>,
    direct: Option<Direct>,
    send_timeout: Duration,
    field: String,
) -> impl Stream<Item = Outcome> {
    let seat = direct.map(|direct| group.lanes.seat(direct.socket, direct.prefix));
    let live = LiveStream::new(Sharer::new(results), seat, send_timeout);
    futures::stream::unfold(Some((group, live, field)), |state| async move {
        // The group lives as long as its sharers.
        let (group, mut live, field) = state?;
        let outcomes = match live.next().await {
            Ok(Ok(Outcome::Next(text))) => {
                return Some((vec![Outcome::Next(text)], Some((group, live, field))));
            }
            Ok(Ok(last)) => vec![last],
            Ok(Err(RecvError::Lagged(missed))) => {
                vec![lagged(missed, &field), Outcome::Complete]
            }
            Ok(Err(RecvError::Closed)) => vec![Outcome::Complete],
            Err(Gone::Stalled) => vec![Outcome::Stalled],
            Err(Gone::Broken) => vec![Outcome::Complete],
        };
        Some((outcomes, None))
    })
    .flat_map(futures::stream::iter)
}

/// The `events-lost` notice for a sharer of subscription `field` (its
/// response key) that fell `missed` results behind.
fn lagged(missed: u64, field: &str) -> Outcome {
    let gap = Gap {
        reason: GapReason::Lagged,
        after: None,
        resumed_from: None,
        missed: Some(missed),
    };
    // About the stream, not a place in the document: no `locations`.
    let extended = Error::EventsLost(gap).extend();
    let mut error = ServerError::new(extended.message, None);
    error.extensions = extended.extensions;
    error.path = vec![PathSegment::Field(field.into())];
    Outcome::of(&Response::from_errors(vec![error]))
}

/// When `request` is one live subscription without `after`: its field's
/// response key (its alias, else its name), where a notice about the
/// stream is placed.
fn shared_field(request: &async_graphql::Request) -> Option<String> {
    use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
    let document = async_graphql::parser::parse_query(&request.query).ok()?;
    let DocumentOperations::Single(operation) = &document.operations else {
        return None;
    };
    if operation.node.ty != OperationType::Subscription {
        return None;
    }
    let items = &operation.node.selection_set.node.items;
    let fields = items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => Some(&field.node),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    if fields
        .iter()
        .any(|field| field.arguments.iter().any(|(name, _)| name.node == "after"))
    {
        return None;
    }
    let first = fields.first()?;
    Some(first.response_key().node.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group around `results`, its sharers reading for themselves.
    fn group(results: Tap<Outcome>) -> Arc<Group> {
        let feed = results.clone();
        Arc::new(Group {
            results,
            lanes: Shards::new(1, 1, true, Shutdown::new(), move || {
                Results::new(feed.clone(), metrics::Counter::noop())
            }),
            execution: tokio::spawn(std::future::pending()),
        })
    }

    const SEND_TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_sharer_that_falls_behind_the_ring_is_told_and_completes() {
        let (sender, ring, tap) = ring::channel(2);
        let group = group(tap);
        for i in 0..5 {
            sender.send(Outcome::Next(format!("{{\"n\":{i}}}").into()));
        }
        let seen: Vec<Outcome> = sharer(group, ring, None, SEND_TIMEOUT, "positions".into())
            .collect()
            .await;
        let [Outcome::Next(notice), Outcome::Complete] = &seen[..] else {
            panic!("expected a notice then Complete, got {seen:?}");
        };
        assert!(notice.contains(r#""code":"events-lost""#), "{notice}");
        assert!(notice.contains(r#""reason":"lagged""#), "{notice}");
        assert!(notice.contains(r#""missed":3"#), "{notice}");
    }

    #[tokio::test]
    async fn a_sharer_gets_every_result_then_completes_when_the_execution_ends() {
        let (sender, ring, tap) = ring::channel(8);
        let group = group(tap);
        sender.send(Outcome::Next("1".into()));
        sender.send(Outcome::Next("2".into()));
        drop(sender);
        let seen: Vec<Outcome> = sharer(group, ring, None, SEND_TIMEOUT, "positions".into())
            .collect()
            .await;
        assert!(
            matches!(&seen[..], [Outcome::Next(a), Outcome::Next(b), Outcome::Complete] if &**a == "1" && &**b == "2"),
            "{seen:?}"
        );
    }

    #[test]
    fn only_live_subscriptions_are_shared() {
        let shareable = |query: &str| shared_field(&async_graphql::Request::new(query)).is_some();
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

    #[test]
    fn a_shared_subscription_is_known_by_its_response_key() {
        let field = |query: &str| shared_field(&async_graphql::Request::new(query));
        assert_eq!(
            field("subscription { zoneEvents { id } }").as_deref(),
            Some("zoneEvents")
        );
        assert_eq!(
            field("subscription { moves: positions { id } }").as_deref(),
            Some("moves")
        );
    }
}
