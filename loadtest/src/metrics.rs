//! Counters and HDR histograms shared by thousands of viewer tasks.
//!
//! One histogram behind one lock would serialize every delivery of every socket, so latency samples go into
//! [`SHARDS`] histograms (a viewer always uses the same shard) in small batches, and are merged for the report.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Independent latency histograms, merged at the end.
pub const SHARDS: usize = 32;
/// Samples a viewer buffers before taking its shard's lock.
const BATCH: usize = 64;
/// Highest value a histogram tracks (µs): one hour. Larger values are clamped (and stay visible as `max`).
const HIGHEST_US: u64 = 3_600_000_000;

fn new_hist() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts; the fallback is never taken.
    Histogram::new_with_bounds(1, HIGHEST_US, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// A histogram that many tasks record into.
pub struct SharedHist {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for SharedHist {
    fn default() -> Self {
        SharedHist { shards: (0..SHARDS).map(|_| Mutex::new(new_hist())).collect() }
    }
}

impl SharedHist {
    /// Records one value (µs) into shard `shard % SHARDS`.
    pub fn record(&self, shard: usize, v: u64) {
        if let Ok(mut h) = self.shards[shard % SHARDS].lock() {
            h.saturating_record(v.max(1));
        }
    }

    /// Records a batch.
    pub fn record_all(&self, shard: usize, vs: &[u64]) {
        if vs.is_empty() {
            return;
        }
        if let Ok(mut h) = self.shards[shard % SHARDS].lock() {
            for &v in vs {
                h.saturating_record(v.max(1));
            }
        }
    }

    /// All shards merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_hist();
        for s in &self.shards {
            if let Ok(h) = s.lock() {
                let _ = all.add(&*h);
            }
        }
        all
    }

    pub fn summary(&self) -> HistSummary {
        HistSummary::of(&self.merged())
    }
}

/// A viewer's buffer in front of a [`SharedHist`].
pub struct LocalHist {
    shard: usize,
    buf: Vec<u64>,
}

impl LocalHist {
    pub fn new(shard: usize) -> Self {
        LocalHist { shard, buf: Vec::new() }
    }

    pub fn record(&mut self, into: &SharedHist, v: u64) {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(BATCH);
        }
        self.buf.push(v);
        if self.buf.len() >= BATCH {
            self.flush(into);
        }
    }

    pub fn flush(&mut self, into: &SharedHist) {
        into.record_all(self.shard, &self.buf);
        self.buf.clear();
    }
}

/// Percentiles of a histogram, in µs.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HistSummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl HistSummary {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return HistSummary::default();
        }
        HistSummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

/// A correctness violation as printed and reported.
#[derive(Debug, Clone, Serialize)]
pub struct ViolationSample {
    pub kind: &'static str,
    pub viewer: String,
    pub conversation: String,
    pub detail: String,
}

/// Everything one phase (edge or baseline) measures.
pub struct Metrics {
    pub latency: SharedHist,
    pub connect: SharedHist,
    pub subscribe: SharedHist,
    /// Late joiner: subscribe sent → received the event at the live position of the moment it subscribed.
    pub catchup_replay: SharedHist,
    /// Late joiner: subscribe sent → received the first event produced after it subscribed.
    pub catchup_live: SharedHist,
    /// Responder: message sent → its response ended (as the monitor saw it).
    pub response_time: SharedHist,
    /// Delta frames received (a merged delta is one).
    pub deliveries: AtomicU64,
    /// Deltas received, a merged delta counted as the deltas it stands for: what a viewer got, however framed.
    pub deltas: AtomicU64,
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_opened: AtomicU64,
    pub reconnects: AtomicU64,
    pub responses_sent: AtomicU64,
    pub responses_ended: AtomicU64,
    pub viewer_completions: AtomicU64,
    pub viewers_done: AtomicU64,
    /// Responses viewers had to see end (summed over viewers).
    pub completions_expected: AtomicU64,
    /// Expected responses that viewers saw completed (with the monitor's text).
    pub completions_ok: AtomicU64,
    /// Viewers that saw every response they had to see completed.
    pub viewers_all_completed: AtomicU64,
    /// Chaos runs: sockets lost, connects refused and sends retried because a process was killed.
    pub disruptions: AtomicU64,
    /// Connects refused by a baseline's proxy and tried again (Pushpin under a connect burst).
    pub connect_retries: AtomicU64,
    /// Per viewer, the longest time between two events it received.
    pub silence_max: SharedHist,
    /// Summed over viewers, the time spent in silences longer than [`crate::silence::SILENT`].
    pub silent_us: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    violations: Mutex<BTreeMap<&'static str, u64>>,
    violation_total: AtomicU64,
    samples: Mutex<Vec<ViolationSample>>,
    max_samples: usize,
}

impl Metrics {
    pub fn new(max_samples: usize) -> Self {
        Metrics {
            latency: SharedHist::default(),
            connect: SharedHist::default(),
            subscribe: SharedHist::default(),
            catchup_replay: SharedHist::default(),
            catchup_live: SharedHist::default(),
            response_time: SharedHist::default(),
            deliveries: AtomicU64::new(0),
            deltas: AtomicU64::new(0),
            events: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_opened: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            responses_sent: AtomicU64::new(0),
            responses_ended: AtomicU64::new(0),
            viewer_completions: AtomicU64::new(0),
            viewers_done: AtomicU64::new(0),
            completions_expected: AtomicU64::new(0),
            viewers_all_completed: AtomicU64::new(0),
            completions_ok: AtomicU64::new(0),
            disruptions: AtomicU64::new(0),
            connect_retries: AtomicU64::new(0),
            silence_max: SharedHist::default(),
            silent_us: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            violations: Mutex::new(BTreeMap::new()),
            violation_total: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
            max_samples,
        }
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an error of `kind` (a connect that failed, a refused subscribe, an HTTP failure, ...).
    pub fn error(&self, kind: impl Into<String>) {
        let kind = kind.into();
        tracing::debug!(kind, "error");
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }

    /// Counts a correctness violation; the first ones are kept in full and logged.
    pub fn violation(&self, kind: &'static str, viewer: &str, conversation: uuid::Uuid, detail: String) {
        self.violation_total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.violations.lock() {
            *m.entry(kind).or_default() += 1;
        }
        if let Ok(mut s) = self.samples.lock()
            && s.len() < self.max_samples
        {
            tracing::warn!(kind, viewer, %conversation, detail, "violation");
            s.push(ViolationSample { kind, viewer: viewer.to_owned(), conversation: conversation.to_string(), detail });
        }
    }

    pub fn violation_count(&self) -> u64 {
        self.violation_total.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn error_count(&self) -> u64 {
        self.errors().values().sum()
    }

    pub fn violations(&self) -> BTreeMap<&'static str, u64> {
        self.violations.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn violation_samples(&self) -> Vec<ViolationSample> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_and_batches_flush() {
        let h = SharedHist::default();
        let mut a = LocalHist::new(0);
        let mut b = LocalHist::new(7);
        for v in 1..=1000u64 {
            a.record(&h, v);
            b.record(&h, v * 10);
        }
        a.flush(&h);
        b.flush(&h);
        let s = h.summary();
        assert_eq!(s.count, 2000);
        assert!(s.max_us >= 9990 && s.max_us <= 10010, "{s:?}");
        assert!(s.p50_us >= 900 && s.p50_us <= 1100, "{s:?}");
    }

    #[test]
    fn violations_are_counted_beyond_the_samples() {
        let m = Metrics::new(2);
        for _ in 0..5 {
            m.violation("gap", "v1", uuid::Uuid::nil(), "x".into());
        }
        assert_eq!(m.violation_count(), 5);
        assert_eq!(m.violation_samples().len(), 2);
        assert_eq!(m.violations()["gap"], 5);
    }
}
