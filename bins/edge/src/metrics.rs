//! The edge's Prometheus metrics (prefixed `relayhub_edge_`).

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};
use rh_telemetry::Health;

#[derive(Clone)]
pub struct Metrics {
    /// Open sockets.
    pub connections: IntGauge,
    /// Upgrades refused because `--max-connections` were open.
    pub connections_refused: IntCounter,
    /// Subscriptions (socket × conversation) joined to a feed, replaying or live.
    pub subscriptions: IntGauge,
    /// Conversations followed by this process (each with local subscribers).
    pub feeds: IntGauge,
    /// Frames written to sockets.
    pub frames_out: IntCounter,
    /// Sockets closed because their outbound queue was full.
    pub slow_consumers_dropped: IntCounter,
    /// Client frames refused, by error code.
    pub frames_refused: IntCounterVec,
    /// `rh.api.access` round trips (subscribe → the api's answer), seconds.
    pub access_seconds: Histogram,
    /// From subscribe to live (catch-up of what the client missed), seconds.
    pub catch_up_seconds: Histogram,
    /// Events sent to catching-up subscribers, by source: `memory` (a feed's tail) or `stream` (JetStream).
    pub catch_up_events: IntCounterVec,
    /// Deltas folded into merged deltas for compact subscriptions (frames saved).
    pub deltas_merged: IntCounter,
    /// Events received by the tap (every conversation's, followed here or not).
    pub events_in: IntCounter,
    /// From a followed delta's production (`ts_us`, stamped by the worker) to the tap receiving it: the part of
    /// delivery latency spent before this edge (worker → JetStream → tap), seconds.
    pub tap_lag_seconds: Histogram,
    /// Time the tap spent routing events to feeds (and their sockets' queues): near one second per second means
    /// the tap, one task, is what bounds this edge.
    pub tap_busy_seconds: prometheus::Counter,
}

impl Metrics {
    pub fn new(health: &Health) -> Self {
        let metrics = Metrics {
            connections: health.int_gauge("connections", "Open WebSocket connections"),
            connections_refused: health
                .int_counter("connections_refused_total", "Upgrades refused at the connection limit"),
            subscriptions: health.int_gauge("subscriptions", "Socket subscriptions to conversations"),
            feeds: health.int_gauge("feeds", "Conversations followed by this process"),
            frames_out: health.int_counter("frames_out_total", "Frames written to sockets"),
            slow_consumers_dropped: health
                .int_counter("slow_consumers_dropped_total", "Sockets closed because they fell too far behind"),
            frames_refused: health.int_counter_vec(
                "frames_refused_total",
                "Client frames answered with an error frame",
                &["code"],
            ),
            access_seconds: health.histogram(
                "access_seconds",
                "Time the api took to answer an access check (rh.api.access)",
                vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0],
            ),
            catch_up_seconds: health.histogram(
                "catch_up_seconds",
                "Time from subscribe to live",
                vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            ),
            tap_busy_seconds: health.register(
                prometheus::Counter::new("tap_busy_seconds_total", "Time the tap spent routing events to feeds")
                    .expect("valid metric"),
            ),
            tap_lag_seconds: health.histogram(
                "tap_lag_seconds",
                "Time from a followed delta's production to the tap receiving it (worker -> JetStream -> edge)",
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            ),
            catch_up_events: health.int_counter_vec(
                "catch_up_events_total",
                "Events sent to subscribers catching up, by source (memory: a feed's tail; stream: JetStream)",
                &["source"],
            ),
            deltas_merged: health.int_counter(
                "deltas_merged_total",
                "Deltas folded into merged deltas for compact subscriptions (frames not sent)",
            ),
            events_in: health.int_counter("events_in_total", "Conversation events received by the tap"),
        };
        for source in ["memory", "stream"] {
            metrics.catch_up_events.with_label_values(&[source]);
        }
        metrics
    }
}
