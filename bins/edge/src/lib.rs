//! RelayHub edge: the WebSocket front door. It never touches PostgreSQL; everything comes from NATS.
//!
//! | module | what it does |
//! |---|---|
//! | [`config`] | flags (`--nats-url`, `--listen`, `--jwt-secret`, `--max-connections`, ...), each with its env var |
//! | [`socket`] | the listener (`GET /ws`, ticket or bearer auth through the api before the upgrade, connection limit), one socket's life, its commands |
//! | [`fanout`] | the followed conversations: live subscriptions, feeds, in-memory tails, catch-up, compact delivery |
//! | [`hub`] | what a socket works with: the registry of followed conversations, inboxes, NATS, metrics, shutdown |
//! | [`sessions`] | `rh.ctl.session.ended` → close that session's sockets (sockets also close when their token expires, unless an `auth` frame renewed it) |
//! | [`sidebar`] | `rh.live.user.<id>.inbox` of each connected user (`RH_INBOX`, read back after a loss) → `sidebar` frames of their sockets |
//! | [`presence`] | per-node viewer announcements on `rh.presence.<conv>`, merged across nodes → `presence` frames |
//! | [`metrics`] | Prometheus metrics (`relayhub_edge_*`) |
//!
//! The edge receives from NATS only what its sockets follow ([`fanout`] says how, `docs/edge-fanout.md` why): more
//! edges behind a load balancer add event capacity as well as connection capacity. Any edge can serve any client:
//! no sticky sessions.
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

pub mod config;
pub mod fanout;
pub mod hub;
pub mod metrics;
pub mod presence;
pub mod sessions;
pub mod sidebar;
pub mod socket;

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

/// `RH_CONV` and `RH_INBOX`, once the api has created them. The conversation stream must republish its events on
/// the live subjects the feeds subscribe: one created before that existed would leave every socket without live
/// events, so the edge refuses to start and says what to do. It is checked before the edge waits for `RH_INBOX`,
/// which an api of that older version never creates.
async fn streams(
    js: &async_nats::jetstream::Context,
) -> anyhow::Result<(async_nats::jetstream::stream::Stream, async_nats::jetstream::stream::Stream)> {
    use rh_protocol::subjects::{STREAM_CONV, STREAM_INBOX};
    rh_bus::wait_for_streams(js, &[STREAM_CONV]).await;
    let conv = conversation_stream(js).await?;
    rh_bus::wait_for_streams(js, &[STREAM_INBOX]).await;
    let inbox = js.get_stream(STREAM_INBOX).await.context("looking up the sidebar stream")?;
    Ok((conv, inbox))
}

async fn conversation_stream(
    js: &async_nats::jetstream::Context,
) -> anyhow::Result<async_nats::jetstream::stream::Stream> {
    let stream =
        js.get_stream(rh_protocol::subjects::STREAM_CONV).await.context("looking up the conversation stream")?;
    let republish = stream.cached_info().config.republish.as_ref();
    if republish.is_none_or(|r| r.destination != rh_protocol::subjects::LIVE_CONV_SUBJECTS || r.headers_only) {
        anyhow::bail!(
            "stream {} does not republish its events on {} (it predates live fan-out): run `nats stream edit {} \
             --republish-source '{}' --republish-destination '{}'` (nats/README.md); with scripts/dev, \
             RH_DEV_RESET=1 starts afresh",
            rh_protocol::subjects::STREAM_CONV,
            rh_protocol::subjects::LIVE_CONV_SUBJECTS,
            rh_protocol::subjects::STREAM_CONV,
            rh_protocol::subjects::STREAM_CONV_SUBJECTS,
            rh_protocol::subjects::LIVE_CONV_SUBJECTS,
        );
    }
    Ok(stream)
}

/// Runs the edge until `shutdown` is cancelled (see the crate docs for the shutdown sequence).
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let health = Health::new("edge");
    let metrics = metrics::Metrics::new(&health);
    let keys = TokenKeys::new(&config.jwt_secret);
    let listen = config.listen;
    let ops_listen = config.ops_listen;
    let max_connections = config.max_connections;
    let grace = Duration::from_secs(config.shutdown_grace_secs);

    let nats = tokio::select! {
        c = rh_bus::connect(&config.nats_url, &config.nats_auth, rh_bus::Role::Edge) => c,
        _ = shutdown.cancelled() => return Ok(()),
    };
    health.watch_nats(&nats);
    metrics::NatsMessagesIn::register(&health, &nats);
    let js = async_nats::jetstream::new(nats.clone());
    let (stream, inbox_stream) = tokio::select! {
        r = streams(&js) => r?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let (presence_tx, presence_rx) = tokio::sync::mpsc::unbounded_channel();
    let limits = fanout::tail::TailLimits {
        max_bytes: config.feed_tail_bytes,
        max_age: Duration::from_secs(config.feed_tail_secs),
    };
    let registry = Arc::new(fanout::Registry::new(
        nats.clone(),
        stream,
        metrics.clone(),
        limits,
        config.socket_queue as usize,
        presence_tx,
    ));
    let presence = presence::Presence {
        registry: registry.clone(),
        nats: nats.clone(),
        node_id: uuid::Uuid::new_v4(),
        ttl: Duration::from_millis(config.presence_ttl_ms),
        shutdown: shutdown.clone(),
    };
    let presence = tokio::spawn(presence.run(presence_rx));
    let inboxes = Arc::new(sidebar::Inboxes::new(nats.clone(), inbox_stream, registry.clone(), metrics.clone()));
    let hub = Arc::new(hub::Hub::new(config, nats.clone(), registry, inboxes, metrics, shutdown.clone()));

    let _sessions = sessions::watch(hub.clone()).await.context("subscribing to ended sessions")?;
    let limiter = Arc::new(Semaphore::new(max_connections));
    let app = socket::server::App { hub: hub.clone(), keys, limiter: limiter.clone() };
    // Ready once set up (and while NATS is up: `watch_nats`). Feeds subscribe as sockets follow conversations;
    // after a reconnect the client re-subscribes and the feeds repair what they missed (`fanout::live`).
    if !shutdown.is_cancelled() {
        health.set_ready(true);
    }
    let stop_accepting = {
        let shutdown = shutdown.clone();
        let health = health.clone();
        async move {
            shutdown.cancelled().await;
            health.set_ready(false);
        }
    };
    let public_ops = match ops_listen {
        Some(addr) => {
            let router = rh_telemetry::ops_router(health.clone());
            tokio::spawn(rh_telemetry::serve("edge_ops", addr, router, shutdown.clone().cancelled_owned()));
            None
        }
        None => Some(health.clone()),
    };
    rh_telemetry::serve("edge", listen, socket::server::router(app, public_ops), stop_accepting).await?;

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
