//! Steps 4–5: the plan goes out (every response, with the text its monitor saw), the viewers finish, and the
//! phase's counters become its report.

use super::Phase;
use super::load::Loaded;
use super::open::Sockets;
use crate::metrics::Metrics;
use crate::report::PhaseReport;
use crate::viewer::{Plan, Planned};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;
use uuid::Uuid;

impl Phase<'_> {
    pub(super) async fn finish(self, mut s: Sockets, l: Loaded) -> PhaseReport {
        let _ = self.plan.send(Some(Arc::new(Plan {
            responses: self.planned(&l),
            deadline: Instant::now() + self.cfg.drain_timeout,
        })));
        s.bar.set_message("draining");
        while s.tasks.join_next().await.is_some() {}
        for mut set in l.late_sets {
            while set.join_next().await.is_some() {}
        }
        let cpu_after = crate::cpu::snapshot(&self.cfg.cpu_pid);
        let mut mem = s.mem;
        mem.rss_end_kib = self.rss();
        self.cancel.cancel();
        while s.idle_tasks.join_next().await.is_some() {}
        l.ticker.abort();
        s.bar.finish_and_clear();

        mem.rss_peak_kib = l.rss_peak.load(Ordering::Relaxed).max(mem.rss_end_kib);
        let per = |delta_kib: i64, n: usize| (n > 0).then(|| delta_kib as f64 * 1024.0 / n as f64);
        let mut counts = s.counts;
        mem.per_idle_connection_bytes = per(mem.rss_after_idle_kib as i64 - mem.rss_before_kib as i64, counts.idle);
        mem.per_viewer_connection_bytes =
            per(mem.rss_after_viewers_kib as i64 - mem.rss_after_idle_kib as i64, counts.initial + counts.monitors);
        let metrics = &self.metrics;
        counts.reconnects = Metrics::get(&metrics.reconnects);
        counts.connect_retries = Metrics::get(&metrics.connect_retries);

        let errors = metrics.errors();
        PhaseReport {
            transport: self.name(),
            sockets: counts,
            load_secs: l.load_secs,
            connect_phase_secs: s.connect_phase_secs,
            responses_sent: Metrics::get(&metrics.responses_sent),
            responses_ended: Metrics::get(&metrics.responses_ended),
            deliveries: Metrics::get(&metrics.deliveries),
            deliveries_per_sec: l.deliveries_at_end as f64 / l.load_secs,
            // A load shorter than the ticker's first second has no sampled peak: its average is the best estimate.
            peak_deliveries_per_sec: (l.peak.load(Ordering::Relaxed) as f64)
                .max(l.deliveries_at_end as f64 / l.load_secs),
            deltas: Metrics::get(&metrics.deltas),
            deltas_per_sec: l.deltas_at_end as f64 / l.load_secs,
            cpu: crate::cpu::PhaseCpu::between(
                &l.cpu_before,
                &cpu_after,
                self.transport.server_process(),
                Metrics::get(&metrics.deltas),
            ),
            events: Metrics::get(&metrics.events),
            bytes_received: Metrics::get(&metrics.bytes),
            latency_us: metrics.latency.summary(),
            connect_us: metrics.connect.summary(),
            subscribe_us: metrics.subscribe.summary(),
            catchup_replay_us: metrics.catchup_replay.summary(),
            catchup_live_us: metrics.catchup_live.summary(),
            response_time_us: metrics.response_time.summary(),
            silence_max_us: metrics.silence_max.summary(),
            silent_secs: Metrics::get(&metrics.silent_us) as f64 / 1e6,
            disruptions: Metrics::get(&metrics.disruptions),
            viewers_checked: Metrics::get(&metrics.viewers_done),
            viewers_all_completed: Metrics::get(&metrics.viewers_all_completed),
            completions_expected: Metrics::get(&metrics.completions_expected),
            completions_ok: Metrics::get(&metrics.completions_ok),
            error_total: errors.values().sum(),
            errors,
            violation_total: metrics.violation_count(),
            violations: metrics.violations(),
            violation_samples: metrics.violation_samples(),
            memory: (!self.pids.is_empty()).then_some(mem),
        }
    }

    /// Every accepted response per conversation, with the hash of the text its monitor saw end.
    fn planned(&self, l: &Loaded) -> HashMap<Uuid, Vec<Planned>> {
        let mut responses = HashMap::new();
        for st in &self.states {
            let ends = st.ends.borrow();
            let list = l
                .accepted
                .get(&st.id)
                .into_iter()
                .flatten()
                .map(|a| Planned {
                    response_id: a.response_id,
                    msg_seq: a.seq,
                    reference: ends.get(&a.response_id).map(|e| e.text_hash),
                })
                .collect();
            responses.insert(st.id, list);
        }
        responses
    }
}
