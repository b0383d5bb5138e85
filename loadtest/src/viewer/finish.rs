//! The final checks of a viewer, once its plan is fulfilled or the drain deadline passed.

use super::Viewer;
use crate::check::EndKind;
use crate::metrics::Metrics;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use uuid::Uuid;

impl Viewer {
    /// Final checks: every expected response ended here, with the monitor's text.
    pub(super) fn finish(&mut self) {
        self.lat.flush(&self.ctx.metrics.latency);
        self.silence.flush(self.spec.index, &self.ctx.metrics);
        let metrics = self.ctx.metrics.clone();
        Metrics::inc(&metrics.viewers_done);
        let Some(plan) = self.plan.clone() else {
            self.violation("no_plan", "the run ended before the responders finished".into());
            return;
        };
        let baseline = self.ctx.transport.is_baseline();
        let after = self.initial_after.unwrap_or(0);
        let mut all = true;
        for p in plan.responses.get(&self.spec.conversation).into_iter().flatten() {
            // Responses whose message is covered by this viewer's first position came with the HTTP history,
            // unless the response was still streaming then (the edge replays it: it started here).
            if !baseline && p.msg_seq <= after && !self.checker.was_started(&p.response_id) {
                continue;
            }
            metrics.completions_expected.fetch_add(1, Ordering::Relaxed);
            match self.checker.ended(&p.response_id) {
                Some((EndKind::Completed, hash)) => {
                    if p.reference.is_some_and(|r| r != hash) {
                        all = false;
                        self.violation(
                            "text_differs",
                            format!("response {}: final text differs from the monitor's", p.response_id),
                        );
                    } else {
                        Metrics::inc(&metrics.completions_ok);
                    }
                }
                Some(_) => all = false, // failed/stopped: counted when it happened
                None if self.checker.was_started(&p.response_id) => {
                    all = false;
                    self.violation(
                        "response_unfinished",
                        format!("response {} started but never ended here", p.response_id),
                    );
                }
                None => {
                    all = false;
                    self.violation("response_missing", format!("response {} never arrived", p.response_id));
                }
            }
        }
        let planned: HashSet<Uuid> =
            plan.responses.get(&self.spec.conversation).into_iter().flatten().map(|p| p.response_id).collect();
        let stray: Vec<(Uuid, u32)> =
            self.checker.unfinished().filter(|(id, _)| !planned.contains(id)).map(|(id, n)| (*id, n)).collect();
        for (id, n) in stray {
            all = false;
            self.violation("response_unfinished", format!("response {id} started ({n} deltas) but never ended"));
        }
        if all {
            Metrics::inc(&metrics.viewers_all_completed);
        }
    }
}
