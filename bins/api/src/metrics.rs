//! Prometheus metrics (`relayhub_api_*`) and the middleware that counts and times every request by its route
//! template (`/api/v1/conversations/{id}`, never the concrete id, so the label set stays small).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use rh_telemetry::Health;
use std::time::Instant;

#[derive(Clone)]
pub struct Metrics {
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    /// Messages accepted (REST and socket), the api's business throughput.
    pub messages_accepted: prometheus::IntCounter,
    /// `rh.api.*` requests answered, by subject and outcome (`ok` or an error code).
    pub rpc_requests: IntCounterVec,
    /// `rh.api.*` time from receipt to reply, by subject.
    pub rpc_latency: HistogramVec,
    /// Requests refused by a limit ([`crate::service::limits`]), by limit.
    pub limit_refusals: IntCounterVec,
    /// The most password hashes this process has run at once (bounded by `--max-concurrent-hashes`).
    pub password_hashes_most: prometheus::IntGauge,
    /// Answers no worker has started within `--ai-wait-secs` ([`crate::waiting`]).
    pub responses_waiting_for_worker: prometheus::IntGauge,
    /// Answers the api ended itself because no worker held them when they were stopped.
    pub responses_stopped_unclaimed: prometheus::IntCounter,
    /// Requests answered together per batch of `rh.api.access` ([`crate::service::grants`]).
    pub grant_batch_size: prometheus::Histogram,
    /// Outbox rows waiting to be published ([`crate::relay`]; set by the leading replica).
    pub outbox_backlog: prometheus::IntGauge,
    /// Age of the oldest waiting outbox row, in seconds (0 when none).
    pub outbox_oldest_seconds: prometheus::Gauge,
    /// Outbox rows published.
    pub outbox_published: prometheus::IntCounter,
    /// Outbox publishes NATS refused or did not ack in time (each is retried).
    pub outbox_publish_failures: prometheus::IntCounter,
    pub outbox_found_in_stream: prometheus::IntCounter,
    /// Sessions ended, by reason (`logout`, `refresh_reuse`, `member_removed`, `password_reset`).
    pub sessions_ended: IntCounterVec,
    /// Conversation access queries ([`crate::service::access::check`]): one per conversation request.
    pub access_checks: prometheus::IntCounter,
}

impl Metrics {
    pub fn new(health: &Health) -> Self {
        let http_requests = health.register(
            IntCounterVec::new(
                Opts::new("http_requests_total", "HTTP requests by method, route template and status."),
                &["method", "route", "status"],
            )
            .expect("valid metric"),
        );
        let http_latency = health.register(
            HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "HTTP request latency by method and route template.",
                )
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
                &["method", "route"],
            )
            .expect("valid metric"),
        );
        let messages_accepted = health.int_counter("messages_accepted_total", "Messages accepted (REST and socket).");
        let rpc_requests = health.int_counter_vec(
            "rpc_requests_total",
            "rh.api.* requests by subject and outcome.",
            &["subject", "outcome"],
        );
        let rpc_latency = health.register(
            HistogramVec::new(
                HistogramOpts::new("rpc_duration_seconds", "rh.api.* time from receipt to reply, by subject.")
                    .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
                &["subject"],
            )
            .expect("valid metric"),
        );
        let grant_batch_size = health.histogram(
            "grant_batch_size",
            "rh.api.access requests answered together in one batch.",
            vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0],
        );
        let outbox_backlog = health.int_gauge("outbox_backlog", "Outbox rows waiting to be published.");
        let outbox_oldest_seconds = health.register(
            prometheus::Gauge::new("outbox_oldest_seconds", "Age of the oldest waiting outbox row, in seconds.")
                .expect("valid metric"),
        );
        let outbox_published = health.int_counter("outbox_published_total", "Outbox rows published.");
        let outbox_publish_failures = health
            .int_counter("outbox_publish_failures_total", "Outbox publishes NATS refused or did not ack in time.");
        let outbox_found_in_stream = health.int_counter(
            "outbox_found_in_stream_total",
            "Outbox rows retried after the duplicate window and found already stored (not published again).",
        );
        let sessions_ended = health.int_counter_vec("sessions_ended_total", "Sessions ended, by reason.", &["reason"]);
        let limit_refusals =
            health.int_counter_vec("limit_refusals_total", "Requests refused by a limit (429), by limit.", &["limit"]);
        let password_hashes_most =
            health.int_gauge("password_hashes_most", "The most password hashes this process has run at once.");
        let responses_waiting_for_worker = health.int_gauge(
            "responses_waiting_for_worker",
            "Answers queued longer than --ai-wait-secs with no worker starting them (the AI is unavailable).",
        );
        let responses_stopped_unclaimed =
            health.int_counter("responses_stopped_unclaimed_total", "Answers stopped before any worker started them.");
        let access_checks = health.int_counter(
            "conversation_access_checks_total",
            "Conversation access queries (one per conversation request, REST or rh.api.*).",
        );
        Metrics {
            access_checks,
            http_requests,
            http_latency,
            messages_accepted,
            rpc_requests,
            rpc_latency,
            grant_batch_size,
            outbox_backlog,
            outbox_oldest_seconds,
            outbox_published,
            outbox_publish_failures,
            outbox_found_in_stream,
            sessions_ended,
            limit_refusals,
            password_hashes_most,
            responses_waiting_for_worker,
            responses_stopped_unclaimed,
        }
    }
}

/// Middleware (added with `route_layer`, so [`MatchedPath`] is known) recording count and latency per route.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    metrics.http_latency.with_label_values(&[&method, &route]).observe(start.elapsed().as_secs_f64());
    metrics.http_requests.with_label_values(&[&method, &route, response.status().as_str()]).inc();
    response
}
