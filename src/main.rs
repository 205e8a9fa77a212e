//! The `longlat` binary: read configuration, set up logging, run the library.

use std::process::ExitCode;

use clap::Parser;
use longlat::config::Config;
use longlat::shutdown::Shutdown;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    longlat::telemetry::init(config.log_format == "json");
    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(listen = %config.listen, %err, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "longlat listening");
    }
    let shutdown = Shutdown::new();
    let signals = tokio::spawn(shutdown.clone().trigger_on_signal());
    let result = longlat::run(listener, config, shutdown.clone()).await;
    shutdown.trigger();
    let _ = signals.await;
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(%err, "server failed");
            ExitCode::FAILURE
        }
    }
}
