//! The command line: `longlat` alone runs the server; `longlat publish`,
//! `longlat watch` and `longlat bench` are clients of a running server.
//!
//! The clients speak only the public HTTP, WebSocket, Server-Sent Events and
//! GraphQL protocols, so they work against any longlat instance, and the load
//! tool also against other servers with the tutorial's contract.

pub mod bench;
pub mod endpoint;
pub mod feed;
pub mod publish;
pub mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// longlat: a real-time location push server, and clients for it.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The server's settings, used when no command is given.
    #[command(flatten)]
    pub server: Config,

    /// A client command; none runs the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The client commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish one position and print the stored event as a JSON line.
    Publish(publish::PublishArgs),
    /// Subscribe and print every event as a JSON line, reconnecting as needed.
    Watch(watch::WatchArgs),
    /// Measure delivery: many subscribers, a fixed publish rate, a report.
    Bench(bench::BenchArgs),
}

/// Runs a client command to its end and says how it went.
pub async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Publish(args) => publish::run(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::Bench(args) => bench::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
