//! Shutdown: Ctrl-C or SIGTERM trips one token that every long-lived task
//! holds and selects on. Upgraded WebSockets are outside axum's graceful
//! shutdown, so each stream watches the token and closes itself politely.

use tokio_util::sync::CancellationToken;

/// A cloneable handle: trip it once, and every holder sees it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    /// A handle that has not been tripped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts shutdown for every holder.
    pub fn trigger(&self) {
        self.0.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once shutdown has started.
    pub async fn wait(&self) {
        self.0.cancelled().await;
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
