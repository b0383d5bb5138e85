//! RelayHub edge: the WebSocket front door. It never touches PostgreSQL; everything comes from NATS.
//!
//! | module | what it does |
//! |---|---|
//! | [`config`] | flags (`--nats-url`, `--listen`, `--jwt-secret`, `--max-connections`, ...), each with its env var |
//! | [`server`] | the listener: `GET /ws` (JWT auth before the upgrade, connection limit) + `/metrics` `/healthz` `/readyz` |
//! | [`connection`] | one socket: a reader task applying commands and a writer task draining its bounded queue |
//! | [`conn`] | a socket's shared handle: user, outbound queue (overflow closes it as `lagged`), subscriptions |
//! | [`cmd`] | one file per client command: `subscribe`, `unsubscribe`, `send_message`, `stop`, `ping` |
//! | [`tap`] | ONE JetStream ordered consumer per process over every conversation, routing events to feeds |
//! | [`hub`] | the followed conversations and their subscriptions: join, catch-up → live hand-off, revocation |
//! | [`feed`] | one followed conversation: fan-out (an event's frame built once for all sockets), in-memory tail |
//! | [`compact`] | merging runs of queued deltas into one for subscriptions that ask for it (catch-up, slow sockets) |
//! | [`catch_up`] | a subscriber behind the live position: from the tail, or JetStream for what is older |
//! | [`sidebar`] | `rh.user.*.inbox` (one wildcard subscription per process) → `sidebar` frames of local users |
//! | [`presence`] | per-node viewer announcements on `rh.presence.<conv>`, merged across nodes → `presence` frames |
//! | [`metrics`] | Prometheus metrics (`relayhub_edge_*`) |
//!
//! ## Connection limit
//! `--max-connections` permits of a semaphore; a socket holds one for its whole life. When none is left the
//! upgrade is refused with 503, so an overloaded node sheds new load instead of slowing every open socket.
//!
//! ## Graceful shutdown
//! On SIGTERM / Ctrl-C: (1) `/readyz` turns 503 so load balancers stop sending new sockets, and the listener stops
//! accepting; (2) every socket's writer sends close code 1001 ("going away"; clients reconnect elsewhere and
//! resubscribe with their last `seq`, losing nothing because the events are in JetStream); (3) presence
//! withdraws this node's viewers; (4) we wait up to `--shutdown-grace-secs` for all sockets to close (their
//! connection permits to come back), then drain the NATS connection and exit.

pub mod catch_up;
pub mod cmd;
pub mod compact;
pub mod config;
pub mod conn;
pub mod connection;
pub mod feed;
pub mod hub;
pub mod metrics;
pub mod presence;
pub mod server;
pub mod sidebar;
pub mod tap;

pub use config::Config;

use anyhow::Context as _;
use rh_auth::TokenKeys;
use rh_telemetry::Health;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Locks a mutex, ignoring poisoning: our critical sections leave the data consistent even if one panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The conversation stream (created if this is the first binary up) and its last seq, where the tap starts (the
/// lookup answers with the stream's state).
async fn conversation_stream(
    js: &async_nats::jetstream::Context,
) -> anyhow::Result<(async_nats::jetstream::stream::Stream, u64)> {
    rh_bus::Topology::default().ensure(js).await.context("creating the NATS streams")?;
    let stream =
        js.get_stream(rh_protocol::subjects::STREAM_CONV).await.context("looking up the conversation stream")?;
    let position = stream.cached_info().state.last_sequence;
    Ok((stream, position))
}

/// Runs the edge until `shutdown` is cancelled (see the crate docs for the shutdown sequence).
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let health = Health::new("edge");
    let metrics = metrics::Metrics::new(&health);
    let keys = TokenKeys::new(&config.jwt_secret);
    let listen = config.listen;
    let max_connections = config.max_connections;
    let grace = Duration::from_secs(config.shutdown_grace_secs);

    let nats = tokio::select! {
        c = rh_bus::connect(&config.nats_url, "edge") => c,
        _ = shutdown.cancelled() => return Ok(()),
    };
    health.watch_nats(&nats);
    let js = async_nats::jetstream::new(nats.clone());
    let (stream, position) = tokio::select! {
        r = conversation_stream(&js) => r?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let (presence_tx, presence_rx) = tokio::sync::mpsc::unbounded_channel();
    let hub = Arc::new(hub::Hub::new(config, nats.clone(), stream, position, metrics, shutdown.clone(), presence_tx));
    tokio::spawn(tap::run(hub.clone(), health.clone()));
    let presence = presence::start(hub.clone(), presence_rx).await.context("subscribing to presence")?;
    let presence = tokio::spawn(presence);
    let inboxes = sidebar::start(hub.clone()).await.context("subscribing to the user inboxes")?;
    tokio::spawn(inboxes);
    // Both subscriptions are registered once the server answered something sent after them: a request nobody
    // listens to comes back at once as "no responders".
    let probe = format!("rh.edge.probe.{}", hub.node_id.simple());
    let _ = tokio::time::timeout(Duration::from_secs(5), nats.request(probe, bytes::Bytes::new())).await;

    let limiter = Arc::new(Semaphore::new(max_connections));
    let app = server::App { hub: hub.clone(), keys, limiter: limiter.clone() };
    // Ready once the tap's consumer exists (the tap sets it, and clears it while it cannot follow the stream).
    let stop_accepting = {
        let shutdown = shutdown.clone();
        let health = health.clone();
        async move {
            shutdown.cancelled().await;
            health.set_ready(false);
        }
    };
    rh_telemetry::serve("edge", listen, server::router(app, health), stop_accepting).await?;

    // The listener has stopped; sockets were told to go away when `shutdown` was cancelled.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, limiter.acquire_many(all)).await.is_err() {
        tracing::warn!(
            open = max_connections - limiter.available_permits(),
            "sockets still open after the grace period"
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), presence).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), nats.drain()).await;
    tracing::info!("edge stopped");
    Ok(())
}
