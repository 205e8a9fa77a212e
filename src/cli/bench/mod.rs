//! `longlat bench`: a load tool for longlat and any server with the
//! tutorial's contract (`POST /longlat` with `{"longitude","latitude"}`,
//! `GET /ws` frames as JSON objects or `"%f %f"` text).
//!
//! A run: raise the open-file limit; connect `--subs` subscribers at most
//! `--connect-concurrency` at a time; publish one probe and wait until every
//! subscriber has it (or `--warmup` passes), so subscriptions are live
//! before measuring; publish `--rate` positions a second for `--duration`
//! seconds from `--publishers` keep-alive connections; wait until every
//! expected delivery arrived (or `--settle` passes); report. Each position
//! carries its sequence number in its coordinates (see `codec`), so each
//! delivery is matched to the instant just before its POST.

mod codec;
mod listener;
mod progress;
mod publishers;
mod report;
mod server;
mod subscribers;
mod tally;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::codec::Codec;
use self::progress::{Phase, Progress};
use self::publishers::{Published, Publisher, publish_all};
use self::report::Report;
use self::server::{ServerProcess, TICKS_PER_SECOND};
use self::subscribers::{Connecting, connect_all};
use self::tally::{PROBE, Shared, Totals};
use super::endpoint::{ClientError, Endpoint};
use super::feed::Transport;
use crate::shutdown::Shutdown;

/// Options of `longlat bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// How the subscribers subscribe.
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,

    /// Subscribers.
    #[arg(long, default_value_t = 100)]
    pub subs: u64,

    /// Handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_concurrency: u64,

    /// Positions published per second, over all publishers.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,

    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Publishing connections (out-of-order counts mean something only with 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub publishers: u64,

    /// Longest wait for the probe to reach every subscriber, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,

    /// Longest wait for the last deliveries after the last publish, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub settle: f64,

    /// The server's process id, to report its memory per connection and CPU
    /// per delivery from /proc (same machine only). Several ids (as
    /// `"$(pidof longlat)"` gives with a `watch` running beside the server):
    /// the one listening on the URL's port. Not given: the process
    /// listening on the URL's port, when the URL names this machine.
    #[arg(long, value_parser = parse_pids)]
    pub pid: Option<Pids>,

    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,

    /// The tracker every published position names (none when absent): with
    /// `--sub-token`, positions a scoped subscriber may read.
    #[arg(long)]
    pub tracker: Option<String>,

    /// Bearer token the subscribers send instead of `--token` (which the
    /// publishers send): a token with a read scope measures what a scoped
    /// subscriber costs next to a run without it.
    #[arg(long, env = "LONGLAT_SUB_TOKEN")]
    pub sub_token: Option<String>,

    /// The server.
    #[command(flatten)]
    pub endpoint: Endpoint,
}

/// The process ids given to `--pid`.
#[derive(Debug, Clone)]
pub struct Pids(Vec<u32>);

/// Parses `--pid`: one or more process ids, separated by spaces or commas.
fn parse_pids(text: &str) -> Result<Pids, String> {
    let pids = text
        .split([' ', ','])
        .filter(|word| !word.is_empty())
        .map(|word| {
            word.parse()
                .map_err(|_| format!("{word:?} is not a process id"))
        })
        .collect::<Result<Vec<u32>, String>>()?;
    if pids.is_empty() {
        return Err("give the server's process id".into());
    }
    Ok(Pids(pids))
}

impl BenchArgs {
    /// The server process to read memory and CPU from: see `--pid`.
    fn server(&self) -> Result<Option<ServerProcess>, ClientError> {
        let port = listener::local_port(&self.endpoint.url);
        let pid = match (&self.pid, port) {
            (Some(Pids(pids)), _) if pids.len() == 1 => Some(pids[0]),
            (Some(Pids(pids)), Some(port)) => {
                Some(listener::listening_pid(port, Some(pids)).ok_or_else(|| {
                    ClientError::Local(format!(
                        "none of the processes {pids:?} given to --pid listens on port {port}"
                    ))
                })?)
            }
            (Some(_), None) => {
                return Err(ClientError::Local(
                    "several processes given to --pid, and the server is not on this machine \
                     to tell which: give its pid alone"
                        .into(),
                ));
            }
            (None, Some(port)) => listener::listening_pid(port, None),
            (None, None) => None,
        };
        Ok(pid.map(ServerProcess::new))
    }

    /// How many positions the run publishes, once the options are checked.
    fn total(&self) -> Result<u64, ClientError> {
        let positive = |name: &str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(value)
            } else {
                Err(ClientError::Local(format!(
                    "--{name} must be a positive number"
                )))
            }
        };
        let total = (positive("rate", self.rate)? * positive("duration", self.duration)?).round();
        if !(1.0..=codec::MAX_SEQ as f64).contains(&total) {
            return Err(ClientError::Local(format!(
                "--rate × --duration must be from 1 to {}",
                codec::MAX_SEQ
            )));
        }
        for (name, value) in [("warmup", self.warmup), ("settle", self.settle)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ClientError::Local(format!("--{name} must be 0 or more")));
            }
        }
        Ok(total as u64)
    }
}

/// Runs the benchmark and prints its report.
pub async fn run(args: BenchArgs) -> Result<(), ClientError> {
    let total = args.total()?;
    let shutdown = Shutdown::new();
    let signals = tokio::spawn(shutdown.clone().trigger_on_signal());
    let result = tokio::select! {
        report = bench(&args, total) => report,
        () = shutdown.wait() => Err(ClientError::Local("interrupted".into())),
    };
    shutdown.trigger();
    let _ = signals.await;
    let report = result?;
    if args.json {
        let json = serde_json::to_string(&report).map_err(|e| ClientError::Local(e.to_string()))?;
        println!("{json}");
    } else {
        print!("{report}");
    }
    Ok(())
}

/// Server memory and CPU readings, when the server's process is known.
#[derive(Debug, Default)]
struct Readings {
    pid: Option<u32>,
    rss_before: Option<u64>,
    rss_idle: Option<u64>,
    cpu_before: Option<u64>,
    cpu_after: Option<u64>,
    rss_end: Option<u64>,
    hwm: Option<u64>,
}

impl Readings {
    /// Before connecting.
    fn before(server: Option<ServerProcess>) -> Self {
        Self {
            pid: server.map(|s| s.pid()),
            rss_before: server.and_then(|s| s.rss_kib()),
            ..Self::default()
        }
    }

    /// Once every subscriber is connected, before publishing.
    fn connected(&mut self, server: Option<ServerProcess>) {
        self.rss_idle = server.and_then(|s| s.rss_kib());
        self.cpu_before = server.and_then(|s| s.cpu_ticks());
    }

    /// After settling.
    fn end(&mut self, server: Option<ServerProcess>) {
        self.cpu_after = server.and_then(|s| s.cpu_ticks());
        self.rss_end = server.and_then(|s| s.rss_kib());
        self.hwm = server.and_then(|s| s.peak_rss_kib());
    }
}

async fn bench(args: &BenchArgs, total: u64) -> Result<Report, ClientError> {
    raise_open_file_limit(args.subs + args.publishers);
    let server = args.server()?;
    let mut readings = Readings::before(server);
    let shared = Arc::new(Shared::new(Codec::new(run_tag()), total));
    let progress = Arc::new(Progress::new(shared.clone(), args.subs));
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    let ticker = tokio::spawn(progress.clone().report_until(stop.clone()));

    let mut subscribing = args.endpoint.clone();
    if let Some(token) = &args.sub_token {
        subscribing.token = Some(token.clone());
    }
    let how = Connecting {
        endpoint: subscribing,
        transport: args.transport,
        count: args.subs,
        concurrency: usize::try_from(args.connect_concurrency).unwrap_or(usize::MAX),
    };
    let subscribers = connect_all(
        how,
        shared.clone(),
        progress.subscribers.clone(),
        stop.clone(),
    )
    .await;
    let connected = progress.subscribers.connected.load(Ordering::Relaxed);
    progress.enter(Phase::Probing);
    let publisher = Publisher::new(&args.endpoint, args.tracker.as_deref())?;
    probe(&publisher, &shared, connected, secs(args.warmup)).await?;
    readings.connected(server);

    let run = publish_and_settle(args, &progress, connected).await?;
    readings.end(server);
    stop.cancel();
    let _ = ticker.await;
    let mut tasks = subscribers.tasks;
    let mut tallies = Vec::new();
    while let Some(tally) = tasks.join_next().await {
        tallies.push(tally.map_err(|e| ClientError::Local(format!("a subscriber failed: {e}")))?);
    }
    let first_error = subscribers
        .first_error
        .or(run.published.first_error.clone());
    Ok(run.report(&Totals::sum(tallies), &readings, first_error))
}

/// Publishes at the fixed rate, then waits for the deliveries.
async fn publish_and_settle<'a>(
    args: &'a BenchArgs,
    progress: &'a Progress,
    connected: u64,
) -> Result<Run<'a>, ClientError> {
    progress.enter(Phase::Publishing);
    let shared = progress.shared.clone();
    let published = publish_all(
        &args.endpoint,
        args.tracker.as_deref(),
        args.publishers,
        args.rate,
        shared.clone(),
        progress.publishing.clone(),
    )
    .await?;
    progress.enter(Phase::Settling);
    let expected = published.ok * connected;
    progress.expected.store(expected, Ordering::Relaxed);
    let settling = Instant::now();
    let settled = wait_for(
        || shared.received.load(Ordering::Relaxed) >= expected,
        secs(args.settle),
    )
    .await;
    Ok(Run {
        args,
        progress,
        published,
        expected,
        settled,
        settle_s: settling.elapsed().as_secs_f64(),
    })
}

/// Publishes the probe and waits until `connected` subscribers have it, or
/// `patience` passed (a server that does not fan out never gets there).
async fn probe(
    publisher: &Publisher,
    shared: &Shared,
    connected: u64,
    patience: Duration,
) -> Result<(), ClientError> {
    publisher
        .publish(PROBE, shared)
        .await
        .map_err(|e| ClientError::Local(format!("cannot publish: {e}")))?;
    wait_for(
        || shared.probed.load(Ordering::Relaxed) >= connected,
        patience,
    )
    .await;
    Ok(())
}

/// Waits until `done()` or `patience` passed; says whether `done()`.
async fn wait_for(done: impl Fn() -> bool, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn secs(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

/// A tag that tells this run's positions from another's.
fn run_tag() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    u64::from(nanos / 1000) ^ u64::from(std::process::id())
}

/// Raises the soft open-file limit to the hard one, and warns when even
/// that is too low for `connections`.
fn raise_open_file_limit(connections: u64) {
    if let Some(soft) = crate::fds::raise_limit()
        && soft < connections + 32
    {
        eprintln!("warning: the open-file limit is {soft}, too low for {connections} connections");
    }
}

/// What [`bench`] gathered, before it becomes a [`Report`].
struct Run<'a> {
    args: &'a BenchArgs,
    progress: &'a Progress,
    published: Published,
    expected: u64,
    settled: bool,
    settle_s: f64,
}

impl Run<'_> {
    fn report(self, totals: &Totals, readings: &Readings, first_error: Option<String>) -> Report {
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        let subscribers = load(&self.progress.subscribers.connected);
        let publish_s = self.published.elapsed.as_secs_f64();
        let cpu_ticks = readings
            .cpu_after
            .zip(readings.cpu_before)
            .map(|(a, b)| a.saturating_sub(b));
        let kib_per_conn = readings
            .rss_idle
            .zip(readings.rss_before)
            .filter(|_| subscribers > 0)
            .map(|(idle, before)| (idle as f64 - before as f64) / subscribers as f64);
        Report {
            transport: self.args.transport.to_string(),
            url: self.args.endpoint.url.to_string(),
            subscribers,
            connect_failed: load(&self.progress.subscribers.failed),
            disconnected: load(&self.progress.subscribers.disconnected),
            first_error,
            probed: load(&self.progress.shared.probed),
            published: self.published.ok,
            publish_errors: self.published.errors,
            publish_per_s: self.published.ok as f64 / publish_s.max(f64::EPSILON),
            publish_s,
            settle_s: self.settle_s,
            settled: self.settled,
            expected: self.expected,
            received: totals.received,
            loss_pct: 100.0 * self.expected.saturating_sub(totals.received) as f64
                / self.expected.max(1) as f64,
            duplicates: totals.duplicates,
            out_of_order: totals.out_of_order,
            gap_notices: totals.notices,
            p50_ms: totals.percentile_ms(0.5),
            p90_ms: totals.percentile_ms(0.9),
            p99_ms: totals.percentile_ms(0.99),
            p999_ms: totals.percentile_ms(0.999),
            max_ms: totals.percentile_ms(1.0),
            server_pid: readings.pid,
            rss_before_kib: readings.rss_before,
            rss_idle_kib: readings.rss_idle,
            rss_end_kib: readings.rss_end,
            hwm_kib: readings.hwm,
            kib_per_conn,
            server_cpu_ticks: cpu_ticks,
            server_cpu_s: cpu_ticks.map(|t| t as f64 / TICKS_PER_SECOND),
            cpu_us_per_delivery: cpu_ticks
                .filter(|_| totals.received > 0)
                .map(|t| t as f64 / TICKS_PER_SECOND * 1e6 / totals.received as f64),
        }
    }
}
