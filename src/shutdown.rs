//! Shutdown: Ctrl-C or SIGTERM trips one token that every long-lived task
//! holds and selects on. Upgraded WebSockets are outside axum's graceful
//! shutdown, so each stream watches the token and closes itself politely.
//! Event streams that run in tasks of their own (see `http::sse`)
//! are spawned through the handle, so the server waits for them to end as
//! it waits for requests in flight.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A cloneable handle: trip it once, and every holder sees it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tasks: TaskTracker,
}

impl Shutdown {
    /// A handle that has not been tripped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts shutdown for every holder.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has started.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// Runs `task` as a stream that ends itself on shutdown and that
    /// [`tasks_ended`](Self::tasks_ended) waits for.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Resolves once every task [spawned](Self::spawn) through any clone of
    /// the handle has ended: for when no more are spawned.
    pub async fn tasks_ended(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Resolves on Ctrl-C or SIGTERM, then trips the handle.
    pub async fn trigger_on_signal(self) {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut sig) => {
                    sig.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
            () = terminate => tracing::info!("SIGTERM received, shutting down"),
            () = self.wait() => {}
        }
        self.trigger();
    }
}
