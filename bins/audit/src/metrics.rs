//! The writer's Prometheus metrics (prefixed `relayhub_audit_`).

use prometheus::{Gauge, Histogram, IntCounter, IntCounterVec, IntGauge};
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
    /// Events in `RH_AUDIT` not yet written.
    pub backlog: IntGauge,
    /// `RH_AUDIT` bytes / max bytes (at 1 the copy from `RH_CONV` pauses).
    pub backlog_fill: Gauge,
    /// Age of the oldest event not yet written, seconds.
    pub oldest_unwritten_seconds: Gauge,
    /// Events of `RH_CONV` not yet copied into `RH_AUDIT`.
    pub uncopied: IntGauge,
    /// Share of `RH_CONV`'s retention (age or bytes) the oldest uncopied event has used up; at 1 it is dropped.
    pub eviction_risk: Gauge,
    /// Times an event was found dropped from `RH_CONV` before it was copied (lost to the transcript).
    pub gaps: IntCounter,
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
            backlog: health.int_gauge("backlog_events", "Events in RH_AUDIT not yet written"),
            backlog_fill: gauge(health, "backlog_fill_ratio", "RH_AUDIT bytes over its max bytes"),
            oldest_unwritten_seconds: gauge(
                health,
                "oldest_unwritten_seconds",
                "Age of the oldest event not yet written to PostgreSQL",
            ),
            uncopied: health.int_gauge("uncopied_events", "Events of RH_CONV not yet copied into RH_AUDIT"),
            eviction_risk: gauge(
                health,
                "eviction_risk_ratio",
                "Share of RH_CONV's retention used up by the oldest event not yet copied into RH_AUDIT (lost at 1)",
            ),
            gaps: health.int_counter("gaps_total", "Events dropped from RH_CONV before the writer could get them"),
        }
    }
}

fn gauge(health: &Health, name: &str, help: &str) -> Gauge {
    health.register(Gauge::new(name, help).expect("valid metric name"))
}
