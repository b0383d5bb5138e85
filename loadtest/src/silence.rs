//! The time a viewer spends without events: the longest gap between two events it received, and the total of the
//! gaps longer than [`SILENT`] (a response streams tokens every few tens of milliseconds; a longer gap is a
//! viewer waiting — for a killed worker's job to come back, an edge to restart, NATS to return).

use crate::metrics::Metrics;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A gap longer than this counts as time without events.
pub const SILENT: Duration = Duration::from_millis(500);

/// One viewer's silences.
#[derive(Debug, Default)]
pub struct Silence {
    last: Option<Instant>,
    longest: Duration,
    silent: Duration,
}

impl Silence {
    /// An event arrived at `now`.
    pub fn on_event(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let gap = now.saturating_duration_since(last);
            self.longest = self.longest.max(gap);
            if gap > SILENT {
                self.silent += gap;
            }
        }
        self.last = Some(now);
    }

    /// Adds this viewer's numbers to the phase's metrics (once, when it finishes).
    pub fn flush(&self, shard: usize, metrics: &Metrics) {
        if self.last.is_none() {
            return;
        }
        metrics.silence_max.record(shard, self.longest.as_micros() as u64);
        metrics.silent_us.fetch_add(self.silent.as_micros() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_gaps_longer_than_silent() {
        let t = Instant::now();
        let mut s = Silence::default();
        for ms in [0, 30, 60, 2060, 2090] {
            s.on_event(t + Duration::from_millis(ms));
        }
        assert_eq!(s.longest, Duration::from_secs(2));
        assert_eq!(s.silent, Duration::from_secs(2));
    }
}
