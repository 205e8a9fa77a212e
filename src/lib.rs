//! longlat: a real-time location push server.
//!
//! A position goes in once, through `POST /longlat`, and comes out live to
//! every subscriber: raw JSON frames on `GET /ws` (the tutorial's page) and
//! GraphQL subscriptions on `/graphql`. The GraphQL mutation publishes too.
//!
//! # Layout
//!
//! - [`model`]: the typed event and its validation, used by every transport.
//! - [`access`]: who may publish and subscribe, which trackers each may read
//!   (its read scope, a [`model::ReadScope`] in its filter), and what one
//!   client may cost.
//! - [`publish`]: the one publish path (authorize, rate, tracker, validate,
//!   broker) that `POST /longlat` (one position or a batch), the GraphQL
//!   mutation and the tracker apps' ingest endpoints all call.
//! - [`ingest`]: tracker apps' own protocols (OwnTracks, OsmAnd / Traccar
//!   Client) read into positions.
//! - [`broker`]: orders, numbers and keeps events (in [`broker::ring`], the
//!   one bounded ring, which also keeps shared GraphQL results) and zones;
//!   [`broker::durable`] is the embedded default, kept on disk;
//!   [`broker::memory`] the same in memory only; [`broker::redis`] serves
//!   several instances.
//! - [`graphql`]: the GraphQL schema over the same model and broker, and
//!   [`graphql::shared`]: one execution for identical subscriptions.
//! - [`http`]: one file per transport or surface (`/ws`, `/events`,
//!   `/graphql`, REST), assembled by [`http::app`]: parse the request,
//!   open a [`delivery::LiveStream`], pick a wire format.
//! - [`delivery`]: the one engine every live subscriber goes through: a
//!   [`delivery::LiveStream`] reads from its own cursor, parks in a shard
//!   that writes each item's ready-made frame to it, is handed back when
//!   it falls behind; fed by the hub's events or a shared GraphQL
//!   execution's results.
//! - [`conn`]: a client connection's socket, and its takeover from hyper
//!   (opted into by the typed [`conn::Connection`]); [`server`]: the
//!   accept loop (HTTP/1.1 and HTTP/2); [`tls`]: built-in TLS, reloaded
//!   when its files change.
//! - [`error`]: the one error type, its HTTP answer and its GraphQL error.
//! - [`stats`]: Prometheus metrics for operators.
//! - [`config`], [`telemetry`], [`shutdown`]: start-up and stopping.
//! - [`fds`]: the open-file limit, raised at start, and the descriptors kept
//!   back from streams for requests.
//! - [`geofence`]: zones trackers enter and leave; [`geofence::index`]
//!   finds the zones near a position, or meeting a box, through an R-tree
//!   of their bounds.
//! - [`zones`]: the zone operations REST and GraphQL share: listing them
//!   by box and page, putting one within `--max-zones`, who is inside one,
//!   and checking the zones a subscriber names.
//! - [`cli`]: the command line, and the `publish`, `watch` and `bench` clients.
//! - [`wire`]: the bytes sent to subscribers, made once per event:
//!   WebSocket frames, SSE frames, HTTP chunks, graphql-ws messages.
//!
//! # How an event travels
//!
//! ```text
//! POST /longlat ─ http::rest::publish (one, or http::batch) ─┐
//! GraphQL publish ─ graphql::Mutation ────────────────────────┤
//! /ingest/* ─ http::ingest (ingest::owntracks, ingest::osmand) ┴─
//!     publish::Publisher (authorize, rate, tracker, validate) ─
//!     Broker::publish_batch (the publishing task finds the zones each
//!     position is in or near: geofence::Geofences::classify; durable: one
//!     writer numbers the batch, each position followed by the zone events
//!     geofence::Geofences::cross decides, appends it to the log and syncs
//!     it; memory: the same under the hub's lock; or redis: one script,
//!     which decides the zone events too, back through the stream reader)
//!     ─ broker::Hub::append_all_with:
//!     numbered, kept in the history ring (broker::ring), subscribers
//!     woken; model::Event holds its wire forms, made once (a zone event's:
//!     model::ZoneEvent)
//!
//! GET /ws ─ http::ws::upgrade ─ Broker::subscribe (a cursor in the ring)
//!     ─ delivery::LiveStream: reads history from its own cursor until
//!       caught up, then parks its delivery::Seat in delivery::Shards
//!       (delivery::fanout: a shard per worker follows the hub) ─ the
//!       shard loop (delivery::shard) writes each event's ready frame
//!       (delivery::events) to every parked socket, one delivery::Batch per
//!       256 sockets (one io_uring submission) ─ conn::Writer::push
//!     ─ a socket that does not take a frame whole is handed back to its
//!       LiveStream, which drains it and reads on from the cursor after
//!       that frame (told of a gap if it fell behind history)
//! GET /events ─ http::sse::events: the same LiveStream and shards, the
//!     frame as an HTTP chunk, written after the takeover from hyper
//!     by http::sse::write_body while the stream is not parked
//! GraphQL subscription ─ http::graphql_ws (or http::graphql_sse, written
//!     by hyper) ─ SharedExecutions::join, keyed by document and read scope: one
//!     execution per distinct subscription, its results in a
//!     broker::ring::Ring; each sharer a LiveStream over it, parked in
//!     the execution's lanes (delivery::Shards over graphql::shared
//!     results), which write each result's `next` message, made once
//! ```

pub mod access;
pub mod broker;
pub mod cli;
pub mod config;
pub mod conn;
pub mod delivery;
pub mod error;
pub mod fds;
pub mod geofence;
pub mod graphql;
pub mod http;
pub mod ingest;
pub mod model;
pub mod publish;
pub mod server;
pub mod shutdown;
pub mod stats;
pub mod telemetry;
pub mod tls;
pub mod wire;
pub mod zones;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::broker::durable::DurableBroker;
use crate::broker::memory::MemoryBroker;
use crate::broker::{Broker, BrokerError, HubSettings};
use crate::config::Config;
use crate::http::AppState;
use crate::shutdown::Shutdown;
use tokio::task::JoinHandle;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configured broker could not be started.
    #[error("cannot start the broker {broker:?}: {source}")]
    Broker {
        /// The `--broker` setting.
        broker: String,
        /// What went wrong.
        source: BrokerError,
    },
    /// A credential file, key or access setting cannot be used.
    #[error(transparent)]
    Access(#[from] access::AccessConfigError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Serving failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The broker the configuration asks for, and its background task if any.
async fn start_broker(
    config: &Config,
    shutdown: &Shutdown,
) -> Result<(Arc<dyn Broker>, Option<JoinHandle<()>>), BrokerError> {
    let settings = HubSettings {
        capacity: usize::try_from(config.history_size).unwrap_or(usize::MAX),
        max_age: config.history_max_age(),
    };
    if config.broker == "memory" {
        return Ok((
            Arc::new(MemoryBroker::new(settings, config.zone_hysteresis)),
            None,
        ));
    }
    if config.broker == "durable" {
        let (broker, task) = DurableBroker::open(
            &config.data_dir,
            settings,
            config.sync,
            config.zone_hysteresis,
            shutdown.clone(),
        )
        .await
        .map_err(|err| BrokerError::Unavailable(err.to_string()))?;
        return Ok((broker, Some(task)));
    }
    #[cfg(feature = "redis")]
    if config.broker.starts_with("redis://") || config.broker.starts_with("rediss://") {
        let (broker, task) = broker::redis::RedisBroker::connect(
            &config.broker,
            &config.redis_stream,
            settings,
            config.zone_hysteresis,
            shutdown.clone(),
        )
        .await?;
        return Ok((broker, Some(task)));
    }
    let _ = shutdown;
    Err(BrokerError::Unavailable(
        "unknown broker: use `durable`, `memory` or `redis://HOST:PORT/DB`".into(),
    ))
}

/// Serves longlat on `listener` until `shutdown` is triggered, then lets
/// requests and streams finish for at most the configured shutdown timeout.
/// Fails at once when the broker cannot be started (Redis unreachable).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: Shutdown,
) -> Result<(), RunError> {
    let (broker, broker_task) =
        start_broker(&config, &shutdown)
            .await
            .map_err(|source| RunError::Broker {
                broker: config.broker.clone(),
                source,
            })?;
    stats::handle();
    let mut access = access::Access::from_config(&config)?;
    // Measured once the broker holds its connections.
    if let Some(streams) = fds::stream_capacity() {
        access.cap_streams(streams);
    }
    let access = Arc::new(access);
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(tls::Tls::load(cert, key)?)),
        _ => None,
    };
    let tls_watch = tls
        .clone()
        .map(|tls| tokio::spawn(tls.watch(shutdown.clone())));
    let options = server::ServeOptions {
        tls,
        ping_interval: config.ping_interval(),
        send_timeout: config.send_timeout(),
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        socket_send_buffer: config.socket_send_buffer,
        grace: config.shutdown_timeout(),
    };
    let state = AppState::new(broker, config, access.clone(), shutdown.clone());
    let housekeeping = tokio::spawn(forget_idle_callers(access, shutdown.clone()));
    let result = server::serve(listener, http::app(state), options, shutdown.clone()).await;
    shutdown.trigger();
    let _ = housekeeping.await;
    if let Some(task) = tls_watch {
        let _ = task.await;
    }
    if let Some(task) = broker_task {
        let _ = task.await;
    }
    Ok(result?)
}

/// Now and then, forgets rate-limit state of callers gone quiet, so memory
/// follows the callers of the last minute rather than every caller ever.
async fn forget_idle_callers(access: Arc<access::Access>, shutdown: Shutdown) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = every.tick() => access.housekeeping(),
        }
    }
}
