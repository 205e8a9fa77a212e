//! The hub's events as a shard's [`Feed`]: what `/ws` and `/events`
//! subscribers are written while they are caught up.
//!
//! A `/ws` seat takes the event's WebSocket frame, made once at publish
//! ([`Event::ws`]); an `/events` seat takes the event's SSE frame as one
//! chunk of its chunked response body, made once per event and shard for
//! the first seat that asks.

use std::sync::Arc;

use metrics::{Counter, Histogram, counter, histogram};
use time::OffsetDateTime;

use super::{Feed, Frames, Next, Shards};
use crate::broker::{Broker, Delivery, Place, Subscription};
use crate::model::{Event, Filter};
use crate::shutdown::Shutdown;
use crate::stats;
use crate::wire;

/// The shards that write the hub's events to parked `/ws` and `/events`
/// sockets.
pub type Fanout = Shards<Events>;

/// How a parked socket takes an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `/ws`: the event's WebSocket text frame.
    WebSocket,
    /// `/events`: the event's SSE frame as one chunk of an HTTP/1.1
    /// chunked response body.
    SseChunk,
}

/// Which events a seat takes, and how.
#[derive(Debug)]
pub struct EventForm {
    /// Events it takes.
    pub filter: Filter,
    /// How it takes them.
    pub framing: Framing,
}

/// A shard's own subscription to the hub.
pub struct Events {
    subscription: Subscription,
    delivered_ws: Counter,
    delivered_sse: Counter,
    pass_seconds: Histogram,
}

/// One shard per runtime worker, each following `broker`'s hub until
/// `shutdown`; sending through io_uring if `io_uring` and the kernel
/// allows it.
pub fn fanout(broker: &Arc<dyn Broker>, shutdown: &Shutdown, io_uring: bool) -> Fanout {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    match io_uring.then(super::Batch::io_uring) {
        Some(Ok(_)) => tracing::info!(
            shards = workers,
            "live fan-out sends through io_uring, one submission per batch"
        ),
        None => tracing::info!("live fan-out sends one `send` per socket (--io-uring off)"),
        Some(Err(err)) => tracing::info!(
            error = %err,
            "io_uring unavailable: live fan-out sends one `send` per socket"
        ),
    }
    let broker = broker.clone();
    Shards::new(workers, 1, io_uring, shutdown.clone(), move || {
        let Ok(subscription) = broker.subscribe(None, Filter::everything()) else {
            unreachable!("only a cursor can be refused, and this asks for none");
        };
        Events {
            subscription,
            delivered_ws: counter!(stats::DELIVERED, "transport" => "ws"),
            delivered_sse: counter!(stats::DELIVERED, "transport" => "sse"),
            pass_seconds: histogram!(stats::FANOUT_SECONDS),
        }
    })
}

impl Feed for Events {
    type Cursor = Place;
    type Item = Arc<Event>;
    type Form = EventForm;
    type Frames = EventFrames;

    fn seq(cursor: &Place) -> u64 {
        cursor.seq
    }

    fn position(&self) -> u64 {
        self.subscription.cursor()
    }

    fn start_at(&mut self, cursor: &Place) {
        if cursor.seq > self.subscription.cursor() {
            self.subscription.resume_at(Place {
                seq: cursor.seq,
                last_id: None,
            });
        }
    }

    fn rest(&mut self) {}

    fn here(&self) -> Place {
        self.subscription.place()
    }

    async fn next(&mut self) -> Next<Arc<Event>, Place> {
        let before = self.subscription.place();
        match self.subscription.recv().await {
            Delivery::Event(event) => Next::Item(event),
            // The shard fell further behind than history: each subscriber
            // reads on from where the shard was, and is told what it
            // missed by its own cursor.
            Delivery::Gap(_) => Next::HandBack {
                from: before,
                ended: false,
            },
        }
    }

    fn frames(event: Arc<Event>) -> EventFrames {
        EventFrames {
            event,
            sse_chunk: None,
            ws: 0,
            sse: 0,
        }
    }

    fn count(&self, frames: &EventFrames, pushes: usize) {
        if pushes > 0 {
            let since = OffsetDateTime::now_utc() - frames.event.position.received_at;
            self.pass_seconds.record(since.as_seconds_f64().max(0.0));
        }
        self.delivered_ws.increment(frames.ws);
        self.delivered_sse.increment(frames.sse);
    }
}

/// One event's frames for a shard's seats.
pub struct EventFrames {
    event: Arc<Event>,
    /// Made for the first SSE seat, shared by the rest.
    sse_chunk: Option<Vec<u8>>,
    ws: u64,
    sse: u64,
}

impl Frames<EventForm> for EventFrames {
    type Made = Framing;

    fn make(&mut self, form: &EventForm) -> Option<Framing> {
        if !form.filter.matches(&self.event) {
            return None;
        }
        match form.framing {
            Framing::WebSocket => self.ws += 1,
            Framing::SseChunk => {
                self.sse += 1;
                if self.sse_chunk.is_none() {
                    self.sse_chunk = Some(wire::chunk(&self.event.sse));
                }
            }
        }
        Some(form.framing)
    }

    fn get(&self, made: &Framing) -> &[u8] {
        match (made, &self.sse_chunk) {
            (Framing::SseChunk, Some(chunk)) => chunk,
            _ => &self.event.ws,
        }
    }
}
