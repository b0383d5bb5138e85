//! Prometheus metrics of the worker (prefixed `relayhub_worker_`).

use prometheus::{Histogram, IntCounter, IntGauge};
use rh_telemetry::Health;

#[derive(Clone)]
pub struct Metrics {
    pub jobs_started: IntCounter,
    pub jobs_completed: IntCounter,
    pub jobs_failed: IntCounter,
    pub jobs_stopped: IntCounter,
    /// Jobs acked without generating because their answer had ended: by the api (stopped while queued), or
    /// already (a delivery after a lost ack).
    pub jobs_dropped: IntCounter,
    /// Attempts that published no end because a later attempt of the same job took the answer over.
    pub jobs_superseded: IntCounter,
    /// Jobs handed back to JetStream (publish failure, shutdown) to be generated again.
    pub jobs_requeued: IntCounter,
    pub jobs_handed_on: IntCounter,
    pub jobs_running: IntGauge,
    pub deltas_published: IntCounter,
    pub tokens_generated: IntCounter,
    /// From picking the job up to the provider's first token.
    pub time_to_first_token: Histogram,
    /// From publishing an event to JetStream's ack (stored), seconds.
    pub publish_ack_seconds: Histogram,
}

impl Metrics {
    pub fn new(health: &Health) -> Self {
        Metrics {
            jobs_started: health.int_counter("jobs_started_total", "Generation jobs started (per attempt)"),
            jobs_completed: health.int_counter("jobs_completed_total", "Responses completed"),
            jobs_failed: health.int_counter("jobs_failed_total", "Responses failed (provider error, bad job)"),
            jobs_stopped: health.int_counter("jobs_stopped_total", "Responses stopped by a person"),
            jobs_dropped: health.int_counter(
                "jobs_dropped_total",
                "Jobs dropped: their answer had ended (stopped by the api before any worker took it, or a delivery after a lost ack)",
            ),
            jobs_superseded: health.int_counter(
                "jobs_superseded_total",
                "Attempts ended without an event: a later delivery of the job took the answer over while they ran",
            ),
            jobs_requeued: health.int_counter("jobs_requeued_total", "Jobs handed back for redelivery"),
            jobs_handed_on: health.int_counter(
                "jobs_handed_on_total",
                "Jobs for a model this worker does not serve, handed back for another worker",
            ),
            jobs_running: health.int_gauge("jobs_running", "Jobs being generated now"),
            deltas_published: health.int_counter("deltas_published_total", "response.delta events published"),
            tokens_generated: health.int_counter("tokens_generated_total", "Tokens (chunks) received from providers"),
            time_to_first_token: health.histogram(
                "time_to_first_token_seconds",
                "From picking a job up to the provider's first token",
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            ),
            publish_ack_seconds: health.histogram(
                "publish_ack_seconds",
                "From publishing an event to JetStream's ack",
                vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            ),
        }
    }
}
