//! Writing a batch: one transaction, retried while PostgreSQL is away (the deliveries kept in progress), and
//! replayed one event at a time when PostgreSQL refuses some event's data.

use super::{Backoff, Delivered, Writer, sleep_or_shutdown};
use async_nats::jetstream::AckKind;
use rh_protocol::Envelope;
use rh_store::StoreError;
use rh_store::transcript::{self, Applied};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A transaction taking longer than this is abandoned and retried.
const DB_TIMEOUT: Duration = Duration::from_secs(30);
/// While retrying, tell JetStream this often that the batch is still being worked on (well inside ack_wait).
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// A write attempt's failure.
enum WriteError {
    /// PostgreSQL refused the data: retrying the same event cannot succeed.
    Rejected(StoreError),
    /// Connection lost, timeout, ...: retry.
    Transient(String),
}

impl Writer {
    /// Writes `events` in one transaction, retrying transient failures until it succeeds. When PostgreSQL refuses
    /// some event's data, writes them one by one so only that event fails. `None` when shutdown interrupted.
    pub(super) async fn write_with_retry(
        &self,
        delivered: &[Delivered],
        events: &[(u64, &Envelope)],
        shutdown: &CancellationToken,
    ) -> Option<Vec<Result<Applied, StoreError>>> {
        let mut keepalive = KeepAlive::new();
        match self.write_until_answered(events, delivered, &mut keepalive, shutdown).await? {
            Ok(applied) => return Some(applied.into_iter().map(Ok).collect()),
            Err(e) => tracing::warn!(error = %e, "batch refused; writing its events one by one"),
        }
        let mut results = Vec::with_capacity(events.len());
        for event in events {
            let one =
                self.write_until_answered(std::slice::from_ref(event), delivered, &mut keepalive, shutdown).await?;
            results.push(one.map(|mut applied| applied.pop().unwrap_or(Applied::Duplicate)));
        }
        Some(results)
    }

    /// Writes `events` in one transaction until PostgreSQL answers: retries transient failures (with backoff,
    /// keeping the deliveries alive) and returns what it applied or why it refused them. `None` on shutdown.
    async fn write_until_answered(
        &self,
        events: &[(u64, &Envelope)],
        delivered: &[Delivered],
        keepalive: &mut KeepAlive,
        shutdown: &CancellationToken,
    ) -> Option<Result<Vec<Applied>, StoreError>> {
        let mut delay = Backoff::default();
        loop {
            match self.write(events).await {
                Ok(applied) => {
                    self.write_succeeded();
                    return Some(Ok(applied));
                }
                Err(WriteError::Rejected(e)) => return Some(Err(e)),
                Err(WriteError::Transient(e)) => {
                    self.write_failed(&e);
                    keepalive.tick(delivered).await;
                    if sleep_or_shutdown(delay.next(), shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    /// One transaction.
    async fn write(&self, events: &[(u64, &Envelope)]) -> Result<Vec<Applied>, WriteError> {
        let attempt = async {
            let mut client = self.db.client().await?;
            match events {
                [(seq, envelope)] => Ok(vec![transcript::apply(&mut client, *seq, envelope).await?]),
                _ => transcript::apply_batch(&mut client, events).await,
            }
        };
        match tokio::time::timeout(DB_TIMEOUT, attempt).await {
            Ok(Ok(applied)) => Ok(applied),
            Ok(Err(e)) if transcript::is_data_error(&e) => Err(WriteError::Rejected(e)),
            Ok(Err(e)) => Err(WriteError::Transient(e.to_string())),
            Err(_) => Err(WriteError::Transient(format!("no answer from PostgreSQL within {DB_TIMEOUT:?}"))),
        }
    }

    fn write_failed(&self, error: &str) {
        self.metrics.errors.with_label_values(&["db"]).inc();
        if !self.db_failing.swap(true, Ordering::AcqRel) {
            tracing::error!(%error, "writing to PostgreSQL failed; retrying the same events until it works");
        } else {
            tracing::debug!(%error, "writing to PostgreSQL still failing");
        }
        self.health.set_ready(false);
    }

    fn write_succeeded(&self) {
        if self.db_failing.swap(false, Ordering::AcqRel) {
            tracing::info!("writing to PostgreSQL works again");
        }
    }
}

/// Sends `+WPI` (in progress) for a batch that is being retried, so JetStream does not deliver it again.
struct KeepAlive {
    last: Instant,
}

impl KeepAlive {
    fn new() -> Self {
        KeepAlive { last: Instant::now() }
    }

    async fn tick(&mut self, delivered: &[Delivered]) {
        if self.last.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last = Instant::now();
        for d in delivered {
            if let Err(e) = d.message.ack_with(AckKind::Progress).await {
                tracing::debug!(seq = d.seq, error = %e, "progress ack failed");
            }
        }
    }
}
