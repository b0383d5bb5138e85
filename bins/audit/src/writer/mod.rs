//! The write loop: pull events in stream order, write them to PostgreSQL, ack after the commit.
//!
//! - Events arrive from `RH_AUDIT` in `RH_CONV` order (the copy keeps it); each is written at its `RH_CONV` seq,
//!   read from the `Nats-Stream-Source` header.
//! - Events arrive in stream order from one pull stream. Every event that is already delivered when the first one
//!   arrives (up to `--batch-max`) is written in the same transaction; nothing waits for a batch to fill.
//! - Acks are sent only after the commit. An event whose ack is lost is delivered again and skipped as a duplicate
//!   (every write is idempotent, see `rh_store::transcript`).
//! - A database error is never skipped: the same batch is retried with back-off (100 ms doubling to 5 s) while
//!   JetStream is told every 10 s that the batch is still in progress, and readiness is false until a write
//!   succeeds. If PostgreSQL refuses an event's data itself (SQLSTATE class 22/23), the batch is replayed one event
//!   at a time and only that event is logged, counted and acked.
//! - A payload that is not an event (not JSON, unknown type) is logged, counted and acked: it must not block the
//!   stream.
//! - After a batch that asked for or ended an answer, its conversations' participants are told whether each is
//!   still responding ([`crate::activity`]).
//! - On shutdown the current batch is finished (or, if the database is down, left unacked for the next process),
//!   then the loop returns.
//!
//! This module pulls, acks and counts; `write` writes one batch (the transaction, its retries, the one-by-one
//! replay).

mod write;

use crate::metrics::Metrics;
use crate::{activity, consumer};
use async_nats::jetstream::{self, consumer::PullConsumer, consumer::pull};
use futures::{FutureExt, StreamExt};
use rh_protocol::Envelope;
use rh_store::transcript::Applied;
use rh_store::{Db, StoreError};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Messages asked for per pull request.
const PULL_BATCH: usize = 256;
/// Idle heartbeat of the pull stream; two missed heartbeats recreate it. Short, because that is how the writer
/// notices that the consumer's leader died on a JetStream cluster while its own connection stayed up.
const PULL_HEARTBEAT: Duration = Duration::from_secs(3);
/// Expiry of one pull request.
const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// How often the pull stream checks whether the NATS connection was re-established.
const RECONNECT_CHECK: Duration = Duration::from_secs(1);
/// Attempts at the consumer reset after a broken stream (a new consumer leader may still be being elected).
const REWIND_ATTEMPTS: u32 = 10;

/// Writes events from the consumer to PostgreSQL.
pub struct Writer {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub db: Db,
    pub metrics: Metrics,
    pub health: rh_telemetry::Health,
    /// True while the last write failed; the readiness monitor reads it.
    pub db_failing: Arc<AtomicBool>,
    pub batch_max: usize,
}

/// One delivered message.
struct Delivered {
    message: jetstream::Message,
    seq: u64,
    /// `None`: not an event (poison), acked without writing.
    envelope: Option<Envelope>,
}

/// Why a pull stream ended.
enum StreamEnd {
    Shutdown,
    /// Closed or silent: recreate the consumer and the stream.
    Broken,
}

impl Writer {
    /// Runs until `shutdown` is cancelled (then after the current batch).
    pub async fn run(&self, mut consumer: PullConsumer, shutdown: &CancellationToken) {
        let mut delay = Backoff::default();
        loop {
            let stream = consumer
                .stream()
                .max_messages_per_batch(PULL_BATCH)
                .heartbeat(PULL_HEARTBEAT)
                .expires(PULL_EXPIRES)
                .messages()
                .await;
            match stream {
                Ok(mut messages) => match self.consume(&mut messages, shutdown).await {
                    StreamEnd::Shutdown => return,
                    StreamEnd::Broken => tracing::warn!("pull stream ended; recreating it"),
                },
                Err(e) => {
                    self.metrics.errors.with_label_values(&["nats"]).inc();
                    tracing::warn!(error = %e, "could not open the pull stream");
                }
            }
            if sleep_or_shutdown(delay.next(), shutdown).await {
                return;
            }
            // The dropped stream may have held delivered, unprocessed events: get them back first, in order.
            match consumer::ensure(&self.js).await {
                Ok(fresh) => consumer = fresh,
                Err(e) => {
                    tracing::warn!(error = %e, "could not get the consumer");
                    continue;
                }
            }
            let mut attempt = 0;
            while let Err(e) = consumer::rewind_to_ack_floor(&self.client, &self.js).await {
                attempt += 1;
                if attempt >= REWIND_ATTEMPTS {
                    tracing::warn!(error = %e, "could not rewind the consumer; unacked events come back after ack_wait");
                    break;
                }
                if sleep_or_shutdown(delay.next(), shutdown).await {
                    return;
                }
            }
            delay = Backoff::default();
        }
    }

    /// Processes a pull stream until it breaks or shutdown.
    ///
    /// A reconnect to NATS (another server of a cluster, or the same one restarted) breaks the stream too: pull
    /// requests and deliveries in flight on the old connection are lost, or sit with a consumer leader that died,
    /// and would only come back after `ACK_WAIT` and after newer events. Recreating the stream rewinds to the ack
    /// floor at once.
    async fn consume(&self, messages: &mut pull::Stream, shutdown: &CancellationToken) -> StreamEnd {
        let connects = || self.client.statistics().connects.load(std::sync::atomic::Ordering::Relaxed);
        let connected = connects();
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return StreamEnd::Shutdown,
                next = messages.next() => next,
                _ = tokio::time::sleep(RECONNECT_CHECK) => {
                    if connects() != connected {
                        tracing::info!("reconnected to NATS; recreating the pull stream");
                        return StreamEnd::Broken;
                    }
                    continue;
                }
            };
            let first = match next {
                None => return StreamEnd::Broken,
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    self.metrics.errors.with_label_values(&["nats"]).inc();
                    tracing::warn!(error = %e, "pull stream error");
                    if e.kind() == pull::MessagesErrorKind::MissingHeartbeat {
                        return StreamEnd::Broken;
                    }
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < self.batch_max {
                match messages.next().now_or_never() {
                    Some(Some(Ok(message))) => batch.push(message),
                    Some(Some(Err(e))) => {
                        tracing::warn!(error = %e, "pull stream error");
                        break;
                    }
                    _ => break,
                }
            }
            if !self.process(batch, shutdown).await {
                return StreamEnd::Shutdown;
            }
        }
    }

    /// Writes one batch and acks it. False when shutdown interrupted a retry (nothing acked).
    async fn process(&self, batch: Vec<jetstream::Message>, shutdown: &CancellationToken) -> bool {
        let mut delivered = Vec::with_capacity(batch.len());
        for message in batch {
            let pending = match message.info() {
                Ok(info) => info.pending,
                Err(e) => {
                    // Not a JetStream delivery: nothing to ack.
                    self.metrics.errors.with_label_values(&["poison"]).inc();
                    tracing::error!(subject = %message.subject, error = %e, "message without JetStream metadata");
                    continue;
                }
            };
            self.metrics.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
            // The event's position is its seq in RH_CONV (what the edge and `applied_seq` use), not in RH_AUDIT.
            let Some(seq) = rh_bus::source_seq(message.headers.as_ref()) else {
                self.metrics.errors.with_label_values(&["poison"]).inc();
                tracing::error!(subject = %message.subject, "not copied from RH_CONV; acked without writing");
                delivered.push(Delivered { message, seq: 0, envelope: None });
                continue;
            };
            let envelope = match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(envelope) => Some(envelope),
                Err(e) => {
                    self.metrics.errors.with_label_values(&["poison"]).inc();
                    tracing::error!(seq, subject = %message.subject, error = %e, "not an event; acked without writing");
                    None
                }
            };
            delivered.push(Delivered { message, seq, envelope });
        }

        let events: Vec<(u64, &Envelope)> =
            delivered.iter().filter_map(|d| d.envelope.as_ref().map(|e| (d.seq, e))).collect();
        if !events.is_empty() {
            let started = Instant::now();
            let Some(results) = self.write_with_retry(&delivered, &events, shutdown).await else {
                return false;
            };
            self.metrics.apply_seconds.observe(started.elapsed().as_secs_f64());
            self.metrics.batch_size.observe(events.len() as f64);
            let now_us = rh_protocol::now_us();
            let mut active = Vec::new();
            for ((seq, envelope), result) in events.iter().zip(results) {
                if result.is_ok() && activity::changes_activity(envelope) && !active.contains(&envelope.conversation_id)
                {
                    active.push(envelope.conversation_id);
                }
                self.record(*seq, envelope, result, now_us);
            }
            activity::announce(&self.db, &self.client, &active).await;
        }

        for d in &delivered {
            // With tracing on, the event's trace (the api's request, the worker's job) ends with its storing.
            let span = rh_telemetry::hop_span!("audit_stored", seq = d.seq);
            rh_telemetry::trace::follow_nats(&span, d.message.headers.as_ref());
            if let Err(e) = d.message.ack().instrument(span).await {
                self.metrics.errors.with_label_values(&["ack"]).inc();
                tracing::warn!(seq = d.seq, error = %e, "ack failed; the event will come again and be skipped");
            }
        }
        true
    }

    fn record(&self, seq: u64, envelope: &Envelope, result: Result<Applied, StoreError>, now_us: i64) {
        match result {
            Ok(Applied::Written) => self.metrics.applied.inc(),
            Ok(Applied::Duplicate) => self.metrics.duplicates.inc(),
            Ok(Applied::UnknownConversation) => self.metrics.skipped.with_label_values(&["unknown_conversation"]).inc(),
            Ok(Applied::Ignored) => self.metrics.skipped.with_label_values(&["delta"]).inc(),
            Err(e) => {
                self.metrics.errors.with_label_values(&["rejected"]).inc();
                tracing::error!(
                    seq,
                    event_id = %envelope.event_id,
                    conversation_id = %envelope.conversation_id,
                    kind = envelope.event.kind(),
                    error = %e,
                    "PostgreSQL refused the event; acked without writing"
                );
                return;
            }
        }
        self.metrics.last_seq.set(i64::try_from(seq).unwrap_or(i64::MAX));
        let delay_us = now_us.saturating_sub(envelope.ts_us).max(0);
        self.metrics.delay_seconds.observe(delay_us as f64 / 1e6);
    }
}

/// 100 ms doubling up to 5 s.
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Duration::from_millis(100) }
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        now
    }
}

/// Sleeps for `delay`; true if shutdown came first.
pub(crate) async fn sleep_or_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_seconds() {
        let mut b = Backoff::default();
        let steps: Vec<u64> = (0..8).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(steps, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
