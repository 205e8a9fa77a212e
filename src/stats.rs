//! What an operator can see: Prometheus metrics, recorded through the
//! `metrics` facade and rendered by `GET /metrics` (`http::operations`):
//! every metric is named here, and nowhere else.
//!
//! The recorder is process-global, so it is installed once; its upkeep runs
//! on a plain thread that outlives any one runtime. Hot paths take their
//! counter handles once per connection, so counting a delivery is one atomic
//! add.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::model::Crossing;

/// Open connections, by `transport` (`ws`, `sse`, `graphql`).
pub const CONNECTIONS: &str = "longlat_connections";
/// Events accepted, by `via` (`rest`, `graphql`, `owntracks`, `osmand`).
pub const PUBLISHED: &str = "longlat_events_published_total";
/// Time to validate and publish one position, by `via`, in seconds.
pub const PUBLISH_SECONDS: &str = "longlat_publish_duration_seconds";
/// Events written to subscribers, by `transport`.
pub const DELIVERED: &str = "longlat_events_delivered_total";
/// Subscribers that fell behind history and were told, by `transport`.
pub const LAGGED: &str = "longlat_subscribers_lagged_total";
/// Subscribers disconnected because they stopped taking frames, by `transport`.
pub const DROPPED: &str = "longlat_subscribers_dropped_total";
/// How long after an event was received one fan-out shard finished
/// writing it to its parked `/ws` and `/events` sockets, in seconds.
pub const FANOUT_SECONDS: &str = "longlat_fanout_pass_duration_seconds";
/// Parked sockets (`/ws`, `/events`, GraphQL subscriptions) handed back
/// to their subscriber because they did not take a frame whole (a slow or
/// stalled reader).
pub const HANDED_BACK: &str = "longlat_fanout_handed_back_total";
/// Bytes of the durable store's log on disk.
pub const STORE_BYTES: &str = "longlat_store_bytes";
/// Events in the durable store's log on disk.
pub const STORE_EVENTS: &str = "longlat_store_events";
/// Time of one sync of the durable store's log (one per batch of
/// publishes with `--sync always`), in seconds.
pub const STORE_SYNC_SECONDS: &str = "longlat_store_sync_duration_seconds";
/// Writes or syncs of the durable store that failed.
pub const STORE_ERRORS: &str = "longlat_store_errors_total";
/// Requests refused, by the problem `code`.
pub const REJECTED: &str = "longlat_rejected_requests_total";
/// Zone events this instance's publishes made, by `type` (`enter`,
/// `leave`).
pub const ZONE_EVENTS: &str = "longlat_zone_events_total";

/// Buckets for [`FANOUT_SECONDS`]: fine where a pass over a thousand
/// sockets lands.
const FANOUT_BUCKETS: [f64; 15] = [
    0.000_5, 0.001, 0.002, 0.003, 0.005, 0.007_5, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// The process's metrics handle, installing the recorder on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 0.5, 1.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(PUBLISH_SECONDS.into()), &buckets)
            .expect("the bucket list is not empty")
            .set_buckets_for_metric(Matcher::Full(FANOUT_SECONDS.into()), &FANOUT_BUCKETS)
            .expect("the bucket list is not empty")
            .set_buckets_for_metric(Matcher::Full(STORE_SYNC_SECONDS.into()), &buckets)
            .expect("the bucket list is not empty");
        let handle = builder
            .install_recorder()
            .expect("no other metrics recorder is installed in this process");
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

/// The publish counter and latency histogram of one path, resolved once.
struct PublishStats {
    accepted: Counter,
    seconds: Histogram,
}

/// The ways in, each with its own `via` label.
const VIAS: [&str; 4] = ["rest", "graphql", "owntracks", "osmand"];

/// Records one publish attempt through `via` (one of `VIAS`) that started
/// at `started` and stored `accepted` positions (0 when it was refused; a
/// batch stores several).
pub fn publish(via: &'static str, started: Instant, accepted: usize) {
    static CELLS: [OnceLock<PublishStats>; VIAS.len()] = [const { OnceLock::new() }; VIAS.len()];
    debug_assert!(VIAS.contains(&via), "an unknown publish path {via}");
    let index = VIAS.iter().position(|known| *known == via).unwrap_or(0);
    let stats = CELLS[index].get_or_init(|| PublishStats {
        accepted: counter!(PUBLISHED, "via" => VIAS[index]),
        seconds: histogram!(PUBLISH_SECONDS, "via" => VIAS[index]),
    });
    if accepted > 0 {
        stats.accepted.increment(accepted as u64);
    }
    stats.seconds.record(started.elapsed().as_secs_f64());
}

/// Counts a failed write or sync of the durable store.
pub fn store_error() {
    counter!(STORE_ERRORS).increment(1);
}

/// Counts a zone event made by a publish, once it is stored.
pub fn zone_event(crossing: Crossing) {
    static CELLS: [OnceLock<Counter>; 2] = [const { OnceLock::new() }; 2];
    CELLS[crossing as usize]
        .get_or_init(|| counter!(ZONE_EVENTS, "type" => crossing.as_str()))
        .increment(1);
}

/// Counts a refused request.
pub fn rejected(code: &'static str) {
    counter!(REJECTED, "code" => code).increment(1);
}

/// One open subscriber connection: counted while it lives, with its
/// counters resolved once.
#[derive(Debug)]
pub struct Connection {
    transport: &'static str,
    /// Events written to this subscriber.
    pub delivered: Counter,
}

impl Connection {
    /// Counts a new connection on `transport`.
    pub fn open(transport: &'static str) -> Self {
        gauge!(CONNECTIONS, "transport" => transport).increment(1.0);
        Self {
            transport,
            delivered: counter!(DELIVERED, "transport" => transport),
        }
    }

    /// The subscriber fell behind history and was told.
    pub fn lagged(&self) {
        counter!(LAGGED, "transport" => self.transport).increment(1);
    }

    /// The subscriber stopped taking frames and was disconnected.
    pub fn dropped(&self) {
        counter!(DROPPED, "transport" => self.transport).increment(1);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        gauge!(CONNECTIONS, "transport" => self.transport).decrement(1.0);
    }
}
