//! `Subscription`: the live streams of positions and of zone events, from
//! the broker's hub.
//!
//! Lost events are reported in the stream as an error item with
//! `extensions.code` `events-lost`: after `cursor-too-old` the stream goes on
//! from the oldest event kept; after `lagged` the stream completes, and the
//! client resubscribes with `after` set to the last id it received.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, ID, Subscription as GraphQLSubscription};
use futures::{Stream, StreamExt};

use super::{authorize, inside_filter, invalid, reader_filter};
use crate::access::Scope;
use crate::broker::{Broker, Delivery};
use crate::error::Error;
use crate::model::{BoundingBox, Event, Filter, PositionEvent, ZoneEvent, parse_cursor};
use crate::zones::zone_events;

/// Live streams.
pub struct Subscription;

/// Live streams of events.
#[GraphQLSubscription]
impl Subscription {
    /// Every published position, live and in order, optionally filtered.
    /// With `after`, first replays the events after that id that are still
    /// in history, then continues live with no gap and no duplicate.
    async fn positions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only events from one of these trackers.")] tracker: Option<Vec<String>>,
        #[graphql(desc = "Only events inside this box.")] bbox: Option<BoundingBox>,
        #[graphql(
            desc = "Only positions inside this zone (as it is when the subscription starts)."
        )]
        inside: Option<String>,
        #[graphql(desc = "Resume after this event id (the last one received).")] after: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<PositionEvent>> + use<>>
    {
        authorize(ctx, Scope::Subscribe)?;
        let broker = ctx.data::<Arc<dyn Broker>>()?;
        let mut wanted = Filter::checked(tracker, bbox).map_err(invalid)?;
        wanted.inside = inside_filter(&**broker, inside.as_deref())?;
        deliver(ctx, after, wanted, |event| Some(event.position.clone()))
    }

    /// Zone events (a tracker entering or leaving a zone), live and in
    /// order with the positions, of these zones or of every zone. Each
    /// comes right after the position that crossed the border, and is
    /// resumed by `after` like positions. Naming a zone that does not
    /// exist is an error naming it.
    async fn zone_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only these zones; every zone when absent.")] zone: Option<Vec<String>>,
        #[graphql(desc = "Only events of one of these trackers.")] tracker: Option<Vec<String>>,
        #[graphql(desc = "Resume after this event id (the last one received).")] after: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ZoneEvent>> + use<>> {
        authorize(ctx, Scope::Subscribe)?;
        let broker = ctx.data::<Arc<dyn Broker>>()?;
        let mut wanted = Filter::checked(tracker, None).map_err(invalid)?;
        wanted.events = zone_events("zone", zone, &**broker).map_err(invalid)?;
        deliver(ctx, after, wanted, Event::zone_event)
    }
}

/// The events after `after` that `wanted` matches, within what the caller
/// may read, each as `shown` shows it; lost events as an `events-lost`
/// error item, the stream completing when the subscriber lagged. The one
/// path every subscription takes from the broker.
fn deliver<T: Send + 'static>(
    ctx: &Context<'_>,
    after: Option<ID>,
    wanted: Filter,
    shown: fn(&Event) -> Option<T>,
) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<T>> + use<T>> {
    let broker = ctx.data::<Arc<dyn Broker>>()?;
    let after = parse_cursor("after", after.as_deref().map(String::as_str)).map_err(invalid)?;
    let filter = reader_filter(ctx, wanted)?;
    // Subscribed now, before the first item is polled: nothing published
    // from here on can be missed.
    let deliveries = broker
        .subscribe(after, filter)
        .map_err(|e| Error::from(e).extend())?
        .into_stream();
    // The filter lets through only events `shown` shows.
    let items = deliveries.filter_map(move |delivery| {
        futures::future::ready(match delivery {
            Delivery::Event(event) => shown(&event).map(Ok),
            Delivery::Gap(gap) => Some(Err(gap)),
        })
    });
    Ok(items
        .scan(false, |ended, item| {
            let item = (!*ended).then(|| {
                item.map_err(|gap| {
                    *ended = gap.ends_stream();
                    Error::EventsLost(gap).extend()
                })
            });
            futures::future::ready(item)
        })
        .boxed())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::StreamExt;

    use crate::broker::memory::MemoryBroker;
    use crate::broker::{Broker, HubSettings};
    use crate::model::PositionInput;

    async fn publish(broker: &Arc<dyn Broker>, longitude: f64) {
        let input = PositionInput::at(longitude, 0.0);
        let valid = input.validate().expect("a valid position");
        broker.publish(valid).await.expect("published");
    }

    #[tokio::test]
    async fn a_subscriber_that_lagged_is_told_what_it_lost_and_the_stream_completes() {
        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(
            HubSettings {
                capacity: 2,
                max_age: None,
            },
            20.0,
        ));
        let access = crate::access::Access::from_config(&crate::config::Config::defaults())
            .expect("the default access rules");
        let schema = crate::graphql::build(broker.clone(), Arc::new(access), 10);
        let mut stream = schema.execute_stream("subscription { positions { longitude } }");
        publish(&broker, 0.0).await;
        // The first item creates the subscription, then waits for an event.
        let first = tokio::select! {
            response = stream.next() => response,
            () = async {
                loop {
                    tokio::task::yield_now().await;
                    publish(&broker, 1.0).await;
                }
            } => unreachable!(),
        };
        let first = first.expect("a first event");
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        for i in 0..5 {
            publish(&broker, f64::from(i)).await;
        }
        let notice = stream.next().await.expect("a lost-events notice");
        let extensions = notice.errors[0].extensions.as_ref().expect("extensions");
        assert_eq!(
            extensions.get("code"),
            Some(&async_graphql::Value::from("events-lost"))
        );
        assert_eq!(
            extensions.get("reason"),
            Some(&async_graphql::Value::from("lagged"))
        );
        assert!(stream.next().await.is_none(), "the stream completes");
    }
}
