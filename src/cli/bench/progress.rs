//! The progress line: once a second on stderr, what the run is doing and how
//! far it got, so a long run can be watched and a stuck one noticed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::publishers::PublishProgress;
use super::subscribers::SubscriberProgress;
use super::tally::Shared;

/// The stages of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Opening the subscribers' connections.
    Connecting,
    /// Waiting for the probe to reach every subscriber.
    Probing,
    /// Publishing at the fixed rate.
    Publishing,
    /// Waiting for the last deliveries.
    Settling,
}

/// Everything the progress line reads.
pub struct Progress {
    phase: AtomicU8,
    /// Deliveries expected once publishing ended.
    pub expected: AtomicU64,
    /// The subscribers' counters.
    pub subscribers: Arc<SubscriberProgress>,
    /// The publishers' counters.
    pub publishing: Arc<PublishProgress>,
    /// Deliveries and probes.
    pub shared: Arc<Shared>,
    /// Subscribers asked for.
    pub subs: u64,
}

impl Progress {
    /// Counters at zero, in the connecting phase.
    pub fn new(shared: Arc<Shared>, subs: u64) -> Self {
        Self {
            phase: AtomicU8::new(Phase::Connecting as u8),
            expected: AtomicU64::new(0),
            subscribers: Arc::default(),
            publishing: Arc::default(),
            shared,
            subs,
        }
    }

    /// Moves to `phase`.
    pub fn enter(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// The line for now.
    fn line(&self, elapsed: Duration) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let connected = load(&self.subscribers.connected);
        let received = load(&self.shared.received);
        let what = match self.phase.load(Ordering::Relaxed) {
            p if p == Phase::Connecting as u8 => format!(
                "connecting: {connected}/{} connected, {} failed",
                self.subs,
                load(&self.subscribers.failed)
            ),
            p if p == Phase::Probing as u8 => format!(
                "waiting for the probe: {}/{connected} subscribers have it",
                load(&self.shared.probed)
            ),
            p if p == Phase::Publishing as u8 => format!(
                "publishing: {}/{} accepted, {} errors; {received} deliveries",
                load(&self.publishing.ok),
                self.shared.total(),
                load(&self.publishing.errors)
            ),
            _ => format!("settling: {received}/{} deliveries", load(&self.expected)),
        };
        format!("[{:>4.0}s] {what}", elapsed.as_secs_f64())
    }

    /// Prints the line once a second until `stop`.
    pub async fn report_until(self: Arc<Self>, stop: CancellationToken) {
        let started = Instant::now();
        let mut ticks =
            tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => eprintln!("{}", self.line(started.elapsed())),
            }
        }
    }
}
