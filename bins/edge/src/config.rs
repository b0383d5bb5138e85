//! Command-line flags; every flag can also be set by its environment variable.

use clap::Parser;
use rh_auth::Secret;
use std::net::SocketAddr;

/// RelayHub edge: the WebSocket front door. Authenticates sockets by JWT, subscribes them to conversations
/// (catch-up from memory or JetStream, then live), fans events out, tracks presence and ends revoked subscriptions.
#[derive(Clone, Debug, Parser)]
#[command(name = "edge", version, about)]
pub struct Config {
    /// NATS server URL.
    #[arg(long, env = "RH_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// NATS credentials and TLS (`--nats-user`, `--nats-password`, `--nats-tls-ca`).
    #[command(flatten)]
    pub nats_auth: rh_bus::NatsAuth,

    /// Traces across NATS (`--otlp-endpoint`, `--trace-log`, `--trace-sample-ratio`); off by default.
    #[command(flatten)]
    pub trace: rh_telemetry::TraceArgs,

    /// Public address: `GET /ws` plus `/metrics`, `/healthz`, `/readyz`. Port 0 picks a free port.
    #[arg(long, env = "RH_EDGE_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// Address of a separate ops listener for /metrics, /healthz, /readyz; when set, the public listener serves
    /// only `GET /ws` (so a load balancer in front of it cannot expose /metrics).
    #[arg(long, env = "RH_EDGE_OPS_LISTEN")]
    pub ops_listen: Option<SocketAddr>,

    /// HS256 key the api signs tokens with, at least 32 bytes. Never printed.
    #[arg(long, env = "RH_JWT_SECRET", hide_env_values = true, value_parser = rh_auth::parse_jwt_secret)]
    pub jwt_secret: Secret,

    /// Most sockets open at once; the next upgrade is refused with 503 so that an overloaded node sheds load
    /// instead of degrading every connection.
    #[arg(long, env = "RH_EDGE_MAX_CONNECTIONS", default_value_t = 100_000)]
    pub max_connections: usize,

    /// Frames one socket may have queued before it counts as too slow and is closed with a `lagged` error
    /// (it resubscribes with its last `seq`). At 50 deltas/s, 512 is about ten seconds of lag.
    #[arg(long, env = "RH_EDGE_SOCKET_QUEUE", default_value_t = 512, value_parser = clap::value_parser!(u32).range(16..=65536))]
    pub socket_queue: u32,

    /// Bytes of recent events each followed conversation keeps in memory, so that subscribers behind the live
    /// position (late joiners, reconnects) catch up from memory instead of from JetStream (see `feed`).
    #[arg(long, env = "RH_EDGE_FEED_TAIL_BYTES", default_value_t = 1 << 20)]
    pub feed_tail_bytes: usize,

    /// Seconds an event stays in a conversation's in-memory tail (older ones are in the api's HTTP history).
    #[arg(long, env = "RH_EDGE_FEED_TAIL_SECS", default_value_t = 300)]
    pub feed_tail_secs: u64,

    /// How long (ms) a presence announcement of this node stays valid; it is repeated every half of it.
    #[arg(long, env = "RH_EDGE_PRESENCE_TTL_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(200..))]
    pub presence_ttl_ms: u64,

    /// How long (ms) to wait for the api to answer `rh.api.*` requests.
    #[arg(long, env = "RH_EDGE_REQUEST_TIMEOUT_MS", default_value_t = 5_000)]
    pub request_timeout_ms: u64,

    /// On SIGTERM, how long (s) to wait for sockets to close after they were told to go away.
    #[arg(long, env = "RH_EDGE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Commands (client frames) one socket may send at once; past it they get `rate_limited`. 0: no limit.
    #[arg(long, env = "RH_EDGE_COMMANDS_BURST", default_value_t = 40)]
    pub commands_burst: u32,

    /// Commands per second one socket gets back after its burst.
    #[arg(long, env = "RH_EDGE_COMMANDS_PER_SEC", default_value_t = 20.0)]
    pub commands_per_sec: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_redaction() {
        let c = Config::try_parse_from(["edge", "--jwt-secret", &"hunter2".repeat(5)]).unwrap();
        assert_eq!(c.listen.port(), 8081);
        assert_eq!(c.max_connections, 100_000);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(Config::try_parse_from(["edge", "--jwt-secret", "hunter2"]).is_err(), "shorter than 32 bytes");
        assert!(Config::try_parse_from(["edge"]).is_err(), "the secret is required");
    }
}
