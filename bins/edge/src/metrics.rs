//! The edge's Prometheus metrics (prefixed `relayhub_edge_`).

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};
use rh_telemetry::Health;
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[derive(Clone)]
pub struct Metrics {
    /// Open sockets.
    pub connections: IntGauge,
    /// Upgrades refused because `--max-connections` were open.
    pub connections_refused: IntCounter,
    /// Sockets closed by the session rules, by reason (`token_expired`, `session_ended`).
    pub sockets_ended: prometheus::IntCounterVec,
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
    /// Subscribes granted by the client's signed grant from its history request (no `rh.api.access` round trip).
    pub signed_grants: IntCounter,
    /// From subscribe to live (catch-up of what the client missed), seconds.
    pub catch_up_seconds: Histogram,
    /// Events sent to catching-up subscribers, by source: `memory` (a feed's tail) or `stream` (JetStream).
    pub catch_up_events: IntCounterVec,
    /// Deltas folded into merged deltas for compact subscriptions (frames saved).
    pub deltas_merged: IntCounter,
    /// Conversation events received by the feeds' live subscriptions (only followed conversations').
    pub events_in: IntCounter,
    /// Repairs of a feed's live subscription from the stream (a gap, a reconnect, a trailing loss).
    pub live_repairs: IntCounter,
    /// Events delivered by those repairs.
    pub events_repaired: IntCounter,
    pub sidebar_repaired: IntCounter,
    /// From a followed delta's production (`ts_us`, stamped by the worker) to its feed receiving it: the part of
    /// delivery latency spent before this edge (worker → JetStream → republish → edge), seconds.
    pub live_lag_seconds: Histogram,
    /// From JetStream storing a followed delta (the republish's `Nats-Time-Stamp`) to its feed receiving it: the
    /// part of [`Self::live_lag_seconds`] after the broker stored it (republish → this edge's client → its feed).
    pub broker_lag_seconds: Histogram,
}

/// Buckets of the live lags, seconds: fine below a second, where the load tests' targets are.
const LAG_BUCKETS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0];

impl Metrics {
    pub fn new(health: &Health) -> Self {
        let metrics = Metrics {
            connections: health.int_gauge("connections", "Open WebSocket connections"),
            connections_refused: health
                .int_counter("connections_refused_total", "Upgrades refused at the connection limit"),
            sockets_ended: health.int_counter_vec(
                "sockets_ended_total",
                "Sockets closed because their token expired or their session ended",
                &["reason"],
            ),
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
            signed_grants: health.int_counter(
                "signed_grants_total",
                "Subscribes granted by the signed grant of the client's history request (no access round trip)",
            ),
            catch_up_seconds: health.histogram(
                "catch_up_seconds",
                "Time from subscribe to live",
                vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            ),
            live_lag_seconds: health.histogram(
                "live_lag_seconds",
                "Time from a followed delta's production to its feed receiving it (worker -> JetStream -> edge)",
                LAG_BUCKETS.to_vec(),
            ),
            broker_lag_seconds: health.histogram(
                "broker_lag_seconds",
                "Time from JetStream storing a followed delta to its feed receiving it (republish -> edge)",
                LAG_BUCKETS.to_vec(),
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
            events_in: health.int_counter("events_in_total", "Conversation events received by live subscriptions"),
            live_repairs: health
                .int_counter("live_repairs_total", "Live subscriptions repaired from the stream (gap, reconnect)"),
            events_repaired: health.int_counter("events_repaired_total", "Events delivered by live repairs"),
            sidebar_repaired: health.int_counter(
                "sidebar_repaired_total",
                "Sidebar messages read back from RH_INBOX after a loss or a reconnect",
            ),
        };
        for source in ["memory", "stream"] {
            metrics.catch_up_events.with_label_values(&[source]);
        }
        metrics
    }
}

/// `relayhub_edge_nats_messages_in_total`: every message this process's NATS connection received (events, inboxes,
/// presence, replies), read from the client's statistics when scraped.
#[derive(Clone)]
pub struct NatsMessagesIn {
    counter: IntCounter,
    stats: Arc<async_nats::Statistics>,
}

impl NatsMessagesIn {
    pub fn register(health: &Health, nats: &async_nats::Client) -> Self {
        let counter = IntCounter::new("nats_messages_in_total", "Messages received from NATS by this process")
            .expect("valid metric");
        health.register(NatsMessagesIn { counter, stats: nats.statistics() })
    }
}

impl Collector for NatsMessagesIn {
    fn desc(&self) -> Vec<&Desc> {
        self.counter.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let now = self.stats.in_messages.load(Ordering::Relaxed);
        let have = self.counter.get();
        if now > have {
            self.counter.inc_by(now - have);
        }
        self.counter.collect()
    }
}
