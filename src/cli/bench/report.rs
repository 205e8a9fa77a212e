//! The result of a run: one JSON object (`--json`, field names as the
//! fanout tool prints them, so the two compare line by line) or a table.

use std::fmt;

use serde::Serialize;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `ws`, `sse` or `graphql`.
    pub transport: String,
    /// The server's base URL.
    pub url: String,
    /// Subscribers connected.
    pub subscribers: u64,
    /// Subscribers that could not connect.
    pub connect_failed: u64,
    /// Subscribers whose stream ended before the run did.
    pub disconnected: u64,
    /// The first connection or publish error, if any.
    pub first_error: Option<String>,
    /// Subscribers that received the probe published before measuring.
    pub probed: u64,
    /// Positions the server accepted.
    pub published: u64,
    /// Positions refused or unanswered.
    pub publish_errors: u64,
    /// Accepted positions per second, over the publishing time.
    pub publish_per_s: f64,
    /// Publishing time, seconds.
    pub publish_s: f64,
    /// Settling time after the last publish, seconds.
    pub settle_s: f64,
    /// Whether every expected delivery arrived before the settle timeout.
    pub settled: bool,
    /// `published × subscribers`.
    pub expected: u64,
    /// Distinct deliveries received.
    pub received: u64,
    /// `(expected - received) / expected`, percent.
    pub loss_pct: f64,
    /// Deliveries of an event a subscriber already had.
    pub duplicates: u64,
    /// Deliveries older than the one before them on the same subscriber.
    pub out_of_order: u64,
    /// Notices of lost events (gaps) the server sent.
    pub gap_notices: u64,
    /// Delivery latency percentiles and maximum, milliseconds, from just
    /// before the POST to the frame being read.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// Maximum.
    pub max_ms: Option<f64>,
    /// The server's process, when known (`--pid`, or found listening on
    /// the URL's port on this machine).
    pub server_pid: Option<u32>,
    /// Server RSS before connecting, KiB (with `server_pid`).
    pub rss_before_kib: Option<u64>,
    /// Server RSS once every subscriber connected, KiB.
    pub rss_idle_kib: Option<u64>,
    /// Server RSS at the end, KiB.
    pub rss_end_kib: Option<u64>,
    /// Server peak RSS, KiB.
    pub hwm_kib: Option<u64>,
    /// `(rss_idle - rss_before) / subscribers`, KiB.
    pub kib_per_conn: Option<f64>,
    /// Server user+system CPU while publishing and settling, clock ticks.
    pub server_cpu_ticks: Option<u64>,
    /// The same in seconds.
    pub server_cpu_s: Option<f64>,
    /// Server CPU per delivery received, microseconds.
    pub cpu_us_per_delivery: Option<f64>,
}

/// A number with a fixed count of decimals, or a dash.
fn or_dash(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, value: String| {
            writeln!(f, "{name:<16} {value}")
        };
        row(f, "server", format!("{} over {}", self.url, self.transport))?;
        row(
            f,
            "subscribers",
            format!(
                "{} connected, {} failed, {} disconnected early",
                self.subscribers, self.connect_failed, self.disconnected
            ),
        )?;
        row(
            f,
            "published",
            format!(
                "{} in {:.2} s ({:.1}/s), {} errors",
                self.published, self.publish_s, self.publish_per_s, self.publish_errors
            ),
        )?;
        row(
            f,
            "deliveries",
            format!(
                "{} expected, {} received, loss {:.3} %{}",
                self.expected,
                self.received,
                self.loss_pct,
                if self.settled {
                    ""
                } else {
                    " (settle timed out)"
                }
            ),
        )?;
        row(
            f,
            "anomalies",
            format!(
                "{} duplicates, {} out of order, {} gap notices",
                self.duplicates, self.out_of_order, self.gap_notices
            ),
        )?;
        row(
            f,
            "latency (ms)",
            format!(
                "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                or_dash(self.p50_ms, 2),
                or_dash(self.p90_ms, 2),
                or_dash(self.p99_ms, 2),
                or_dash(self.p999_ms, 2),
                or_dash(self.max_ms, 2)
            ),
        )?;
        if let Some(pid) = self.server_pid {
            row(f, "server process", format!("pid {pid}"))?;
        }
        if let (Some(before), Some(idle)) = (self.rss_before_kib, self.rss_idle_kib) {
            row(
                f,
                "server memory",
                format!(
                    "{before} KiB before, {idle} KiB connected: {} KiB per connection; peak {} KiB",
                    or_dash(self.kib_per_conn, 1),
                    self.hwm_kib.unwrap_or_default()
                ),
            )?;
        }
        if let Some(ticks) = self.server_cpu_ticks {
            row(
                f,
                "server CPU",
                format!(
                    "{ticks} ticks ({} s): {} µs per delivery",
                    or_dash(self.server_cpu_s, 2),
                    or_dash(self.cpu_us_per_delivery, 2)
                ),
            )?;
        }
        if let Some(error) = &self.first_error {
            row(f, "first error", error.clone())?;
        }
        Ok(())
    }
}
