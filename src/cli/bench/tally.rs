//! What each subscriber received, and the sums over all of them.
//!
//! Every subscriber keeps its own tally (no lock on the receiving path);
//! the shared counters only feed the progress line and the settling wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::codec::Codec;

/// The probe's sequence number: published once before measuring, to see
/// that subscriptions are live; never counted as a delivery.
pub const PROBE: u64 = 0;

/// State shared by the publishers and every subscriber.
#[derive(Debug)]
pub struct Shared {
    /// Where this run's positions carry their sequence numbers.
    pub codec: Codec,
    /// The origin of every timestamp.
    pub clock: Instant,
    /// Per sequence number: nanoseconds since `clock` just before its POST,
    /// plus one (0: not sent yet).
    sent_at: Vec<AtomicU64>,
    /// Deliveries received so far, over all subscribers (duplicates excluded).
    pub received: AtomicU64,
    /// Subscribers that received the probe.
    pub probed: AtomicU64,
}

impl Shared {
    /// State for sequence numbers `1..=total`.
    pub fn new(codec: Codec, total: u64) -> Self {
        Self {
            codec,
            clock: Instant::now(),
            sent_at: (0..=total).map(|_| AtomicU64::new(0)).collect(),
            received: AtomicU64::new(0),
            probed: AtomicU64::new(0),
        }
    }

    /// The highest sequence number of the run.
    pub fn total(&self) -> u64 {
        self.sent_at.len() as u64 - 1
    }

    /// Notes that `seq` is being sent now.
    pub fn mark_sent(&self, seq: u64) {
        if let Some(slot) = self.sent_at.get(seq as usize) {
            slot.store(self.nanos() + 1, Ordering::Relaxed);
        }
    }

    fn nanos(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One subscriber's record.
#[derive(Debug, Default)]
pub struct Tally {
    seen: Vec<u64>,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    last: u64,
    probed: bool,
    /// Delivery latencies, microseconds.
    latencies: Vec<u32>,
    /// Notices of lost events the server sent.
    pub notices: u64,
}

impl Tally {
    /// An empty record for a run of `total` sequence numbers.
    pub fn new(total: u64) -> Self {
        Self {
            seen: vec![0; (total as usize + 1).div_ceil(64)],
            ..Self::default()
        }
    }

    /// Records the delivery of a frame carrying `seq`, read just now.
    pub fn record(&mut self, seq: u64, shared: &Shared) {
        if seq == PROBE {
            if !std::mem::replace(&mut self.probed, true) {
                shared.probed.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let Some(sent) = shared.sent_at.get(seq as usize) else {
            return;
        };
        let (word, bit) = (seq as usize / 64, 1u64 << (seq % 64));
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= bit;
        self.received += 1;
        shared.received.fetch_add(1, Ordering::Relaxed);
        if seq < self.last {
            self.out_of_order += 1;
        }
        self.last = seq;
        let sent = sent.load(Ordering::Relaxed);
        if sent > 0 {
            let micros = shared.nanos().saturating_sub(sent - 1) / 1000;
            self.latencies
                .push(u32::try_from(micros).unwrap_or(u32::MAX));
        }
    }
}

/// The sums over every subscriber, latencies sorted.
#[derive(Debug, Default)]
pub struct Totals {
    /// Deliveries, duplicates excluded.
    pub received: u64,
    /// Deliveries of an event the subscriber already had.
    pub duplicates: u64,
    /// Deliveries of an event older than the one before it.
    pub out_of_order: u64,
    /// Notices of lost events.
    pub notices: u64,
    /// Every delivery latency, microseconds, ascending.
    pub latencies: Vec<u32>,
}

impl Totals {
    /// Adds up the tallies.
    pub fn sum(tallies: impl IntoIterator<Item = Tally>) -> Self {
        let mut totals = Totals::default();
        for tally in tallies {
            totals.received += tally.received;
            totals.duplicates += tally.duplicates;
            totals.out_of_order += tally.out_of_order;
            totals.notices += tally.notices;
            totals.latencies.extend(tally.latencies);
        }
        totals.latencies.sort_unstable();
        totals
    }

    /// The `p` quantile (0 to 1) of the latencies in milliseconds, as the
    /// fanout tool computes it: the sample at index `p × n`, capped.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let n = self.latencies.len();
        let index = ((p * n as f64) as usize).min(n.checked_sub(1)?);
        Some(f64::from(self.latencies[index]) / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_reordering_are_counted_apart_from_deliveries() {
        let shared = Shared::new(Codec::new(1), 10);
        let mut tally = Tally::new(10);
        for seq in 1..=3 {
            shared.mark_sent(seq);
        }
        for seq in [PROBE, 1, 3, 2, 3, 99] {
            tally.record(seq, &shared);
        }
        assert_eq!(
            (tally.received, tally.duplicates, tally.out_of_order),
            (3, 1, 1)
        );
        assert_eq!(shared.received.load(Ordering::Relaxed), 3);
        assert_eq!(shared.probed.load(Ordering::Relaxed), 1);
        let totals = Totals::sum([tally, Tally::new(10)]);
        assert_eq!(totals.latencies.len(), 3);
        assert!(totals.percentile_ms(1.0).is_some());
        assert_eq!(Totals::default().percentile_ms(0.5), None);
    }
}
