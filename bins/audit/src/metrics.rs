//! The writer's Prometheus metrics (prefixed `relayhub_audit_`).

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};
use rh_telemetry::Health;

#[derive(Clone)]
pub struct Metrics {
    /// Events written for the first time.
    pub applied: IntCounter,
    /// Events seen again (redelivery, re-publication) and left as they were.
    pub duplicates: IntCounter,
    /// Events acked without writing, by reason: `unknown_conversation`, `delta`.
    pub skipped: IntCounterVec,
    /// Errors by kind: `db` (retried), `nats`, `ack`, `poison` (not an event; acked), `rejected` (PostgreSQL
    /// refused the event's data; acked).
    pub errors: IntCounterVec,
    /// Messages of the consumer not delivered yet (the lag).
    pub pending: IntGauge,
    /// Messages delivered and not acked yet.
    pub ack_pending: IntGauge,
    /// Stream seq of the last committed event.
    pub last_seq: IntGauge,
    /// Time to write one batch (one transaction), seconds.
    pub apply_seconds: Histogram,
    /// Events per transaction.
    pub batch_size: Histogram,
    /// From the producer's timestamp to the commit, seconds.
    pub delay_seconds: Histogram,
}

impl Metrics {
    pub fn new(health: &Health) -> Self {
        Metrics {
            applied: health.int_counter("events_applied_total", "Events written to PostgreSQL"),
            duplicates: health.int_counter("events_duplicate_total", "Events already applied, skipped"),
            skipped: health.int_counter_vec("events_skipped_total", "Events acked without writing", &["reason"]),
            errors: health.int_counter_vec("errors_total", "Errors by kind", &["kind"]),
            pending: health.int_gauge("consumer_pending", "Events in the stream not yet delivered to the writer"),
            ack_pending: health.int_gauge("consumer_ack_pending", "Events delivered and not yet acked"),
            last_seq: health.int_gauge("last_applied_seq", "Stream seq of the last committed event"),
            apply_seconds: health.histogram(
                "apply_seconds",
                "Time to write one batch of events in one transaction",
                vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            ),
            batch_size: health.histogram(
                "batch_size",
                "Events per transaction",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            ),
            delay_seconds: health.histogram(
                "event_delay_seconds",
                "From the producer's timestamp to the commit",
                vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0],
            ),
        }
    }
}
