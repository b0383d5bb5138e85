//! One event off the socket: the [`Checker`](crate::check::Checker), latency, the late joiner's catch-up, what
//! the monitor tells the others, and where a churning viewer leaves.

use super::{End, Next, Role, Viewer};
use crate::check::{EndKind, Seen, WireEvent};
use crate::metrics::Metrics;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

impl Viewer {
    /// One event envelope at `seq`.
    pub(super) fn on_envelope(&mut self, seq: Option<u64>, json: &[u8]) -> Next {
        let now_us = rh_protocol::now_us();
        self.silence.on_event(Instant::now().into_std());
        let ev: WireEvent = match serde_json::from_slice(json) {
            Ok(e) => e,
            Err(e) => {
                self.violation(
                    "malformed_event",
                    format!("{e}: {}", String::from_utf8_lossy(&json[..json.len().min(200)])),
                );
                return Next::Continue;
            }
        };
        let metrics = self.ctx.metrics.clone();
        Metrics::inc(&metrics.events);
        if ev.kind != "response.delta" {
            // Rare events get the full contract check.
            if let Err(e) = serde_json::from_slice::<rh_protocol::Envelope>(json) {
                self.violation("malformed_event", format!("{} does not match the protocol: {e}", ev.kind));
            }
        }
        let seen = self.checker.on_event(seq, &ev);
        for (kind, detail) in std::mem::take(&mut self.checker.violations) {
            self.violation(kind, detail);
        }
        if let Some(c) = &mut self.catchup {
            if let Some(seq) = seq
                && !c.replay_done
                && seq >= c.live_seq
            {
                c.replay_done = true;
                metrics.catchup_replay.record(self.spec.index, c.sent.elapsed().as_micros() as u64);
            }
            if !c.live_done && ev.ts_us >= c.sent_us {
                c.live_done = true;
                metrics.catchup_live.record(self.spec.index, c.sent.elapsed().as_micros() as u64);
            }
            if c.replay_done && c.live_done {
                self.catchup = None;
            }
        }
        if let Role::Monitor(state) = &self.spec.role
            && let Some(seq) = seq
        {
            state.last_seq.fetch_max(seq, Ordering::AcqRel);
        }
        match seen {
            Seen::Delta => {
                Metrics::inc(&metrics.deliveries);
                let index = ev.index.unwrap_or(0);
                let folded = index.saturating_sub(ev.from_index.unwrap_or(index)) + 1;
                metrics.deltas.fetch_add(u64::from(folded), Ordering::Relaxed);
                self.lat.record(&metrics.latency, (now_us - ev.ts_us).max(0) as u64);
                Next::Continue
            }
            Seen::Started { response_id, first } => {
                if let Role::Monitor(state) = &self.spec.role {
                    let now = Instant::now();
                    state.first_started.send_if_modified(|s| {
                        if s.is_none() {
                            *s = Some(now);
                            true
                        } else {
                            false
                        }
                    });
                }
                if first && matches!(self.spec.role, Role::Initial { churn: true }) && self.churned.insert(response_id)
                {
                    // Leave at a random point in the first 10–60 % of the response.
                    let r = mix(self.spec.index as u64 ^ response_id.as_u64_pair().0) % 1000;
                    let frac = 0.1 + 0.5 * (r as f64 / 1000.0);
                    self.churn_at = Some(Instant::now() + self.ctx.response_time.mul_f64(frac));
                }
                Next::Continue
            }
            Seen::Ended { response_id, kind, text_hash } => {
                if kind == EndKind::Completed {
                    Metrics::inc(&metrics.viewer_completions);
                }
                if let Role::Monitor(state) = &self.spec.role {
                    let end = End { kind, text_hash, at: Instant::now() };
                    state.ends.send_modify(|m| {
                        m.insert(response_id, end);
                    });
                }
                if self.plan.is_some() && self.expected.remove(&response_id) {
                    self.remaining = self.expected.len();
                    if self.remaining == 0 {
                        return Next::Done;
                    }
                }
                Next::Continue
            }
            Seen::Rejected | Seen::Other => Next::Continue,
        }
    }

    /// The plan arrived: which responses this viewer must see end. Returns true if it already has.
    pub(super) fn on_plan(&mut self) -> bool {
        let Some(plan) = self.plan.clone() else { return false };
        let baseline = self.ctx.transport.is_baseline();
        let after = self.initial_after.unwrap_or(0);
        self.expected = plan
            .responses
            .get(&self.spec.conversation)
            .map(|rs| {
                rs.iter()
                    .filter(|p| baseline || p.msg_seq > after || self.checker.was_started(&p.response_id))
                    .filter(|p| self.checker.ended(&p.response_id).is_none())
                    .map(|p| p.response_id)
                    .collect()
            })
            .unwrap_or_default();
        self.remaining = self.expected.len();
        self.remaining == 0
    }
}

/// splitmix64: cheap deterministic randomness (churn points) without a dependency.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
