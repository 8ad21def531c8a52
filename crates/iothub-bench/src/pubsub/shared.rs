//! What the tasks of a message run share: the schedule, one `Flow` per topic group (sent and
//! received counts that drive the closed loop), run-wide totals, and the latency histogram.
//!
//! Everything here is an atomic counter, a `Notify` or a briefly held `Mutex`; no lock is ever
//! held across an `.await`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::stats::Histogram;

/// Longest the end of a run waits for outstanding acknowledgements and deliveries.
pub const DRAIN: Duration = Duration::from_secs(2);

/// The instants that divide a run.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Publishing starts; payload timestamps count nanoseconds from here.
    pub start: Instant,
    /// End of the warm-up: the measurement window opens.
    pub warmup_end: Instant,
    /// Publishing stops and the measurement window closes.
    pub run_end: Instant,
    /// Waiting for acknowledgements and deliveries gives up.
    pub drain_end: Instant,
}

impl Schedule {
    /// A schedule starting now.
    pub fn starting_now(warmup: Duration, duration: Duration) -> Schedule {
        let start = Instant::now();
        let run_end = start + duration;
        Schedule { start, warmup_end: start + warmup.min(duration), run_end, drain_end: run_end + DRAIN }
    }

    /// Nanoseconds from `start` to `at` (0 before the start).
    pub fn nanos_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The measurement window as nanoseconds since `start`: `[open, close)`.
    pub fn window_nanos(&self) -> (u64, u64) {
        (self.nanos_at(self.warmup_end), self.nanos_at(self.run_end))
    }

    /// Length of the measurement window.
    pub fn window(&self) -> Duration {
        self.run_end.saturating_duration_since(self.warmup_end)
    }
}

/// One topic group: the publishers that feed it and the subscribers that each receive all of it.
#[derive(Debug)]
pub struct Flow {
    /// Messages published into the group.
    pub sent: AtomicU64,
    /// Messages received, per subscriber of the group.
    pub received: Box<[AtomicU64]>,
    /// Messages the closed loop stopped waiting for (QoS 0 losses); see `write_off_lag`.
    pub written_off: AtomicU64,
    /// Woken when a subscriber of the group has received more.
    pub progress: Notify,
}

impl Flow {
    /// A group with `subscribers` subscribers.
    pub fn new(subscribers: usize) -> Flow {
        Flow {
            sent: AtomicU64::new(0),
            written_off: AtomicU64::new(0),
            received: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
            progress: Notify::new(),
        }
    }

    /// Fewest messages any subscriber of the group has received.
    pub fn min_received(&self) -> u64 {
        self.received.iter().map(|r| r.load(Ordering::Acquire)).min().unwrap_or(0)
    }

    /// Messages the slowest subscriber is behind, less those written off.
    fn lag(&self, sent: u64, floor: u64) -> u64 {
        sent.saturating_sub(self.written_off.load(Ordering::Acquire)).saturating_sub(floor)
    }

    /// Reserves up to `wanted` sends such that no subscriber falls more than `limit` messages
    /// behind; returns how many were reserved. Returns 0 while the room left is less than
    /// `min(wanted, limit / 4)`: a publisher resumes once a quarter of the allowance is free, so
    /// its writes stay large instead of trickling out as each delivery frees one slot.
    pub fn reserve_within(&self, wanted: u64, limit: u64) -> u64 {
        let floor = self.min_received();
        let mut sent = self.sent.load(Ordering::Acquire);
        loop {
            let granted = wanted.min(limit.saturating_sub(self.lag(sent, floor)));
            if granted == 0 || granted < wanted.min(limit.div_ceil(4)) {
                return 0;
            }
            match self.sent.compare_exchange_weak(sent, sent + granted, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return granted,
                Err(actual) => sent = actual,
            }
        }
    }

    /// Stops waiting for the messages the slowest subscriber is missing: a message the broker
    /// dropped never arrives and would hold the closed loop shut for good.
    /// Of publishers sharing the group, one wins and the others find nothing left to write off.
    pub fn write_off_lag(&self) -> u64 {
        let floor = self.min_received();
        let sent = self.sent.load(Ordering::Acquire);
        let written_off = self.written_off.load(Ordering::Acquire);
        let lag = sent.saturating_sub(written_off).saturating_sub(floor);
        match self.written_off.compare_exchange(
            written_off,
            written_off + lag,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => lag,
            Err(_) => 0,
        }
    }
}

/// Run-wide counters, read by the coordinator for progress and the measurement window.
#[derive(Debug, Default)]
pub struct Totals {
    /// PUBLISH packets encoded for sending.
    pub published: AtomicU64,
    /// PUBLISH packets received by subscribers.
    pub received: AtomicU64,
    /// QoS 1/2 publications fully acknowledged (PUBACK or PUBCOMP).
    pub acknowledged: AtomicU64,
    /// 5.0 only: QoS 1/2 publications the broker answered with an error reason code (0x80 or
    /// more in PUBACK or PUBREC): it did not take them over, and the exchange ended there.
    pub refused: AtomicU64,
    /// Connections that failed during the run.
    pub errors: AtomicU64,
    /// Times a closed loop saw no delivery for a second and wrote the missing messages off.
    pub stalls: AtomicU64,
    /// The first failure, for the report.
    pub first_error: Mutex<Option<String>>,
}

impl Totals {
    /// Counts a failed connection and keeps its message if it is the first.
    pub fn fail(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(message);
        }
    }

    /// The first failure's message, if any.
    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|first| first.clone())
    }
}

/// Latencies of one subscriber, buffered locally and merged into the run's histogram in batches,
/// so thousands of subscribers neither contend on a lock nor each hold a histogram.
#[derive(Debug)]
pub struct LatencySink {
    /// The run's histogram.
    shared: Arc<Mutex<Histogram>>,
    /// Samples not yet merged.
    pending: Vec<u64>,
}

/// Samples a `LatencySink` buffers before it takes the lock.
const SINK_BATCH: usize = 512;

impl LatencySink {
    /// A sink that feeds `shared`.
    pub fn new(shared: Arc<Mutex<Histogram>>) -> LatencySink {
        LatencySink { shared, pending: Vec::new() }
    }

    /// Records one latency in nanoseconds.
    pub fn record(&mut self, nanos: u64) {
        self.pending.push(nanos);
        if self.pending.len() >= SINK_BATCH {
            self.flush();
        }
    }

    /// Merges the buffered samples into the shared histogram.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Ok(mut histogram) = self.shared.lock() {
            for &nanos in &self.pending {
                histogram.record(nanos);
            }
        }
        self.pending.clear();
    }
}

impl Drop for LatencySink {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_keep_the_slowest_subscriber_within_the_limit() {
        let flow = Flow::new(2);
        assert_eq!(flow.reserve_within(300, 500), 300);
        assert_eq!(flow.reserve_within(300, 500), 200);
        assert_eq!(flow.reserve_within(1, 500), 0);
        flow.received[0].store(500, Ordering::Release);
        assert_eq!(flow.reserve_within(1, 500), 0, "the other subscriber is still 500 behind");
        flow.received[1].store(100, Ordering::Release);
        assert_eq!(flow.reserve_within(1000, 500), 0, "100 free is less than a quarter of 500");
        assert_eq!(flow.reserve_within(50, 500), 50, "a small request needs only its own room");
        flow.received[1].store(200, Ordering::Release);
        assert_eq!(flow.reserve_within(1000, 500), 150);
        assert_eq!(flow.sent.load(Ordering::Acquire), 700);
    }

    #[test]
    fn writing_off_reopens_a_loop_held_shut_by_losses() {
        let flow = Flow::new(1);
        assert_eq!(flow.reserve_within(10, 10), 10);
        flow.received[0].store(7, Ordering::Release);
        assert_eq!(flow.reserve_within(10, 10), 7);
        flow.received[0].store(8, Ordering::Release);
        assert_eq!(flow.reserve_within(10, 10), 0);
        assert_eq!(flow.write_off_lag(), 9);
        assert_eq!(flow.write_off_lag(), 0);
        assert_eq!(flow.reserve_within(20, 10), 10);
    }

    #[test]
    fn the_window_excludes_the_warm_up() {
        let schedule = Schedule::starting_now(Duration::from_secs(1), Duration::from_secs(3));
        assert_eq!(schedule.window_nanos(), (1_000_000_000, 3_000_000_000));
        assert_eq!(schedule.window(), Duration::from_secs(2));
        assert_eq!(schedule.drain_end - schedule.run_end, DRAIN);
        let short = Schedule::starting_now(Duration::from_secs(5), Duration::from_secs(3));
        assert_eq!(short.window(), Duration::ZERO);
    }

    #[test]
    fn latency_sinks_merge_on_flush_and_drop() {
        let shared = Arc::new(Mutex::new(Histogram::new()));
        let mut sink = LatencySink::new(Arc::clone(&shared));
        for nanos in 0..(SINK_BATCH as u64 + 10) {
            sink.record(nanos);
        }
        assert_eq!(shared.lock().unwrap().len(), SINK_BATCH as u64);
        drop(sink);
        assert_eq!(shared.lock().unwrap().len(), SINK_BATCH as u64 + 10);
    }

    #[test]
    fn the_first_error_is_kept() {
        let totals = Totals::default();
        totals.fail("first".to_owned());
        totals.fail("second".to_owned());
        assert_eq!(totals.errors.load(Ordering::Relaxed), 2);
        assert_eq!(totals.first_error().as_deref(), Some("first"));
    }
}
