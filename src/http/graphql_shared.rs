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
//! Results are sent from a bounded ring (`broadcast`): a sharer that falls
//! more than [`RING`] results behind is told `events-lost` (`lagged`) and its
//! subscription completes, as for any lagging subscriber. Connection data from
//! `connection_init` is not part of the key: a connection may only run
//! subscriptions once `connection_init` found it allowed to read, and what a
//! subscription returns does not depend on who asked. If it ever does, the
//! caller must join the key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use async_graphql::{ErrorExtensions, PathSegment, Pos, Response, ServerError};
use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::broker::{Gap, GapReason};
use crate::error::Error;
use crate::graphql::LonglatSchema;

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

/// One running shared execution; dropping the last sharer stops it.
struct Group {
    /// Never read: new sharers are `resubscribe`d from it. The sender lives in
    /// the task, so every sharer sees the ring close when the execution ends.
    origin: broadcast::Receiver<Outcome>,
    task: JoinHandle<()>,
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
    /// with the connection's `data`.
    pub fn join(
        &self,
        key: String,
        request: async_graphql::Request,
        data: Arc<async_graphql::Data>,
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
            return sharer(group, ring).boxed();
        }
        // The first sharer's receiver exists before the execution starts, so
        // it sees every result.
        let (sender, ring) = broadcast::channel(RING);
        let origin = ring.resubscribe();
        // Every sharer's connection was checked at `connection_init`.
        let mut data = async_graphql::Data::default();
        data.insert(crate::access::Caller::connection_checked());
        let outcomes = run_alone(&self.schema, request, Arc::new(data));
        let task = tokio::spawn(fan_out(outcomes, sender));
        let group = Arc::new(Group { origin, task });
        groups.retain(|_, group| group.strong_count() > 0);
        groups.insert(key, Arc::downgrade(&group));
        sharer(group, ring).boxed()
    }
}

async fn fan_out(mut outcomes: BoxStream<'static, Outcome>, ring: broadcast::Sender<Outcome>) {
    while let Some(outcome) = outcomes.next().await {
        // No receivers means every sharer left; the group is being dropped.
        let _ = ring.send(outcome);
    }
}

/// One sharer's view: results until `Complete` or a refusal, or a lag notice
/// and `Complete`.
fn sharer(group: Arc<Group>, ring: broadcast::Receiver<Outcome>) -> impl Stream<Item = Outcome> {
    futures::stream::unfold(Some((group, ring)), |state| async move {
        let (group, mut ring) = state?;
        let (outcomes, next) = match ring.recv().await {
            Ok(Outcome::Next(text)) => (vec![Outcome::Next(text)], Some((group, ring))),
            Ok(last) => (vec![last], None),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                (vec![lagged(missed), Outcome::Complete], None)
            }
            Err(broadcast::error::RecvError::Closed) => (vec![Outcome::Complete], None),
        };
        Some((futures::stream::iter(outcomes), next))
    })
    .flatten()
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
        let seen: Vec<Outcome> = sharer(group, ring).collect().await;
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
        let seen: Vec<Outcome> = sharer(group, ring).collect().await;
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
