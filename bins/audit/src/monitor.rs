//! Readiness and lag: once a second, ready = NATS connected ∧ PostgreSQL answers ∧ the last write did not fail;
//! the consumer's pending counts go to the lag gauges.

use crate::metrics::Metrics;
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

pub struct Monitor {
    pub health: Health,
    pub metrics: Metrics,
    pub client: async_nats::Client,
    pub consumer: PullConsumer,
    pub db: Db,
    pub db_failing: Arc<AtomicBool>,
}

impl Monitor {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let nats_ok = self.client.connection_state() == State::Connected;
            let db_ok = tokio::time::timeout(CHECK_TIMEOUT, self.db.ping()).await.unwrap_or(false);
            let writing = !self.db_failing.load(Ordering::Acquire);
            let ready = nats_ok && db_ok && writing;
            if ready != self.health.is_ready() {
                tracing::info!(ready, nats_ok, db_ok, writing, "readiness changed");
            }
            self.health.set_ready(ready);
            if nats_ok && let Ok(Ok(info)) = tokio::time::timeout(CHECK_TIMEOUT, self.consumer.info()).await {
                self.metrics.pending.set(i64::try_from(info.num_pending).unwrap_or(i64::MAX));
                self.metrics.ack_pending.set(i64::try_from(info.num_ack_pending).unwrap_or(i64::MAX));
            }
        }
        self.health.set_ready(false);
    }
}
