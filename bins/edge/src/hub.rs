//! What a socket works with: the registry of followed conversations, the user inboxes, the NATS client for
//! requests to the api, the metrics and the shutdown signal.

use crate::Config;
use crate::fanout::Registry;
use crate::metrics::Metrics;
use crate::sidebar::Inboxes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Shared state of the process, as the sockets see it.
pub struct Hub {
    config: Config,
    /// Verifies subscribe grants (same secret as the access tokens).
    keys: rh_auth::TokenKeys,
    nats: async_nats::Client,
    registry: Arc<Registry>,
    inboxes: Arc<Inboxes>,
    metrics: Metrics,
    shutdown: CancellationToken,
    next_id: AtomicU64,
}

impl Hub {
    pub fn new(
        config: Config,
        nats: async_nats::Client,
        registry: Arc<Registry>,
        inboxes: Arc<Inboxes>,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        let keys = rh_auth::TokenKeys::new(&config.jwt_secret);
        Hub { config, keys, nats, registry, inboxes, metrics, shutdown, next_id: AtomicU64::new(1) }
    }

    pub fn keys(&self) -> &rh_auth::TokenKeys {
        &self.keys
    }

    /// A process-unique number (socket ids, subscription generations).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn inboxes(&self) -> &Arc<Inboxes> {
        &self.inboxes
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Cancelled on SIGTERM: sockets say goodbye and close.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }
}
