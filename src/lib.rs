//! longlat: a real-time location push server.
//!
//! A position goes in once, through `POST /longlat`, and comes out live to
//! every subscriber: raw JSON frames on `GET /ws` (the tutorial's page) and
//! GraphQL subscriptions on `/graphql`. The GraphQL mutation publishes too.
//!
//! # Layout
//!
//! - [`model`]: the typed event and its validation, used by every transport.
//! - [`access`]: who may publish and subscribe, and what one client may cost.
//! - [`publish`]: the one publish path (authorize, rate, tracker, validate,
//!   broker) that `POST /longlat` (one position or a batch), the GraphQL
//!   mutation and the tracker apps' ingest endpoints all call.
//! - [`ingest`]: tracker apps' own protocols (OwnTracks, OsmAnd / Traccar
//!   Client) read into positions.
//! - [`broker`]: orders, numbers, keeps and fans out events; [`broker::durable`]
//!   is the embedded default, kept on disk; [`broker::memory`] the same in
//!   memory only; [`broker::redis`] serves several instances.
//! - [`graphql`]: the GraphQL schema over the same model and broker.
//! - [`http`]: one file per transport or surface, assembled by [`http::app`].
//! - [`net`], [`server`]: a client connection's socket, and the accept loop.
//! - [`error`]: the one error type, its HTTP answer and its GraphQL error.
//! - [`stats`]: Prometheus metrics for operators.
//! - [`config`], [`telemetry`], [`shutdown`]: start-up and stopping.
//! - [`fds`]: the open-file limit, raised at start, and the descriptors kept
//!   back from streams for requests.
//! - [`cli`]: the command line, and the `publish`, `watch` and `bench` clients.
//! - [`wire`]: the bytes sent to subscribers, made once per event.
//!
//! # How an event travels
//!
//! ```text
//! POST /longlat ─ http::rest::publish ─┐
//! GraphQL publish ─ graphql::Mutation ─┴─ publish::Publisher (authorize, rate,
//!     tracker, validate) ─ Broker::publish (durable: one writer appends a
//!     batch to the log and syncs it; memory; or redis: XADD, back through
//!     the stream reader) ─ broker::Hub::append_with: numbered, kept
//!     in the history ring, subscribers woken; model::Event holds its
//!     wire forms, made once
//!
//! GET /ws ─ http::ws::upgrade ─ Broker::subscribe (a cursor in the ring)
//!     ─ http::ws::stream_events reads history until caught up, then parks
//!       its socket in http::fanout: a shard per worker follows the hub
//!       and pushes each event's ready frame to every parked socket
//!       (net::Batch: one io_uring submission per batch) ─ net::Writer
//!     ─ a socket that does not take a frame whole is handed back and reads
//!       on from its cursor (told of a gap if it fell behind history)
//! GET /events ─ http::sse::events: the same, the frame as an HTTP chunk
//! GraphQL subscription ─ http::graphql_ws ─ SharedExecutions::join: one
//!     execution per distinct subscription, results kept in a ring, written
//!     by lanes to parked sockets as the fan-out writes events
//! ```

pub mod access;
pub mod broker;
pub mod cli;
pub mod config;
pub mod error;
pub mod fds;
pub mod graphql;
pub mod http;
pub mod ingest;
pub mod model;
pub mod net;
pub mod publish;
pub mod server;
pub mod shutdown;
pub mod stats;
pub mod telemetry;
pub mod wire;

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
        return Ok((Arc::new(MemoryBroker::new(settings)), None));
    }
    if config.broker == "durable" {
        let (broker, task) =
            DurableBroker::open(&config.data_dir, settings, config.sync, shutdown.clone())
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
    let options = server::ServeOptions {
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        socket_send_buffer: config.socket_send_buffer,
        grace: config.shutdown_timeout(),
    };
    let state = AppState::new(broker, config, access.clone(), shutdown.clone());
    let housekeeping = tokio::spawn(forget_idle_callers(access, shutdown.clone()));
    let result = server::serve(listener, http::app(state), options, shutdown.clone()).await;
    shutdown.trigger();
    let _ = housekeeping.await;
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
