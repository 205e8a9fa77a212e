//! longlat: a real-time location push server.
//!
//! A position goes in once, through `POST /longlat`, and comes out live to
//! every subscriber: raw JSON frames on `GET /ws` (the tutorial's page) and
//! GraphQL subscriptions on `/graphql`. The GraphQL mutation publishes too.
//!
//! # Layout
//!
//! - [`model`]: the typed event and its validation, used by every transport.
//! - [`broker`]: orders, numbers, keeps and fans out events; [`broker::memory`]
//!   is the embedded default.
//! - [`graphql`]: the GraphQL schema over the same model and broker.
//! - [`http`]: one file per transport or surface, assembled by [`http::app`].
//! - [`error`]: the one error type, its HTTP answer and its GraphQL error.
//! - [`stats`]: Prometheus metrics for operators.
//! - [`config`], [`telemetry`], [`shutdown`]: start-up and stopping.
//! - [`cli`]: the command line, and the `publish`, `watch` and `bench` clients.

pub mod broker;
pub mod cli;
pub mod config;
pub mod error;
pub mod graphql;
pub mod http;
pub mod model;
pub mod shutdown;
pub mod stats;
pub mod telemetry;

use std::future::IntoFuture;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

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
        "unknown broker: use `memory` or `redis://HOST:PORT/DB`".into(),
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
    let grace = config.shutdown_timeout();
    let state = AppState::new(broker, config, shutdown.clone());
    let send_buffer = state.config.socket_send_buffer;
    let listener = listener.tap_io(move |tcp| {
        // Positions are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        if send_buffer > 0 {
            let _ = socket2::SockRef::from(&*tcp).set_send_buffer_size(send_buffer);
        }
    });
    let stopping = shutdown.clone();
    let server = axum::serve(listener, http::app(state))
        .with_graceful_shutdown(async move { stopping.wait().await })
        .into_future();
    let deadline = async {
        shutdown.wait().await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(?grace, "connections still open after the shutdown timeout; closing them");
            Ok(())
        }
    };
    shutdown.trigger();
    if let Some(task) = broker_task {
        let _ = task.await;
    }
    Ok(result?)
}
