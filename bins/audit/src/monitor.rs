//! Readiness and lag: once a second, ready = NATS connected ∧ PostgreSQL answers ∧ the last write did not fail ∧
//! the transcript is not at risk (`RH_AUDIT` under [`FILL_ALARM`], no uncopied event past [`RISK_ALARM`] of
//! `RH_CONV`'s retention, no gap found since start); the consumer's pending counts and the [`RetentionWatch`]
//! readings go to the gauges.

use crate::metrics::Metrics;
use crate::retention::{Reading, RetentionWatch};
use async_nats::connection::State;
use async_nats::jetstream::consumer::PullConsumer;
use rh_store::Db;
use rh_telemetry::Health;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(1);
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// `RH_AUDIT` this full (of its max bytes) is an alarm: when full, events wait in `RH_CONV`, where they can age out.
pub const FILL_ALARM: f64 = 0.8;
/// An uncopied event that has used up this much of `RH_CONV`'s retention is an alarm, well before it is dropped.
pub const RISK_ALARM: f64 = 0.5;

pub struct Monitor {
    pub health: Health,
    pub metrics: Metrics,
    pub client: async_nats::Client,
    pub consumer: PullConsumer,
    pub db: Db,
    pub db_failing: Arc<AtomicBool>,
    pub js: async_nats::jetstream::Context,
}

impl Monitor {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch = None;
        let mut gap_seen = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let nats_ok = self.client.connection_state() == State::Connected;
            let db_ok = tokio::time::timeout(CHECK_TIMEOUT, self.db.ping()).await.unwrap_or(false);
            let writing = !self.db_failing.load(Ordering::Acquire);
            let reading = if nats_ok { self.read_retention(&mut watch).await } else { None };
            if let Some(r) = &reading
                && r.new_gaps > 0
            {
                gap_seen = true;
                tracing::error!(
                    "an event was dropped from RH_CONV before it was copied into RH_AUDIT: the transcript has a gap"
                );
            }
            let at_risk = reading.as_ref().is_some_and(|r| r.fill >= FILL_ALARM || r.risk >= RISK_ALARM);
            let ready = nats_ok && db_ok && writing && !at_risk && !gap_seen;
            if ready != self.health.is_ready() {
                tracing::info!(ready, nats_ok, db_ok, writing, at_risk, gap_seen, ?reading, "readiness changed");
            }
            self.health.set_ready(ready);
            if nats_ok && let Ok(Ok(info)) = tokio::time::timeout(CHECK_TIMEOUT, self.consumer.info()).await {
                self.metrics.pending.set(i64::try_from(info.num_pending).unwrap_or(i64::MAX));
                self.metrics.ack_pending.set(i64::try_from(info.num_ack_pending).unwrap_or(i64::MAX));
            }
        }
        self.health.set_ready(false);
    }

    /// One [`RetentionWatch`] reading, recorded in the gauges; `None` when the streams did not answer.
    async fn read_retention(&self, watch: &mut Option<RetentionWatch>) -> Option<Reading> {
        if watch.is_none() {
            *watch = RetentionWatch::new(&self.js)
                .await
                .inspect_err(|e| tracing::warn!(error = format!("{e:#}"), "cannot watch the streams"))
                .ok();
        }
        let last_written = u64::try_from(self.metrics.last_seq.get()).unwrap_or(0);
        let reading = match tokio::time::timeout(CHECK_TIMEOUT, watch.as_mut()?.read(last_written)).await {
            Ok(Ok(reading)) => reading,
            Ok(Err(e)) => {
                tracing::warn!(error = format!("{e:#}"), "could not read the streams' state");
                return None;
            }
            Err(_) => return None,
        };
        let m = &self.metrics;
        m.backlog.set(i64::try_from(reading.backlog).unwrap_or(i64::MAX));
        m.backlog_fill.set(reading.fill);
        m.oldest_unwritten_seconds.set(reading.oldest_unwritten_secs);
        m.uncopied.set(i64::try_from(reading.uncopied).unwrap_or(i64::MAX));
        m.eviction_risk.set(reading.risk);
        m.gaps.inc_by(reading.new_gaps);
        Some(reading)
    }
}
