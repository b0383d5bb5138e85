//! Observability shared by every RelayHub binary.
//!
//! - [`init`]: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), and, when a flag turns it on,
//!   traces across processes ([`trace`]: W3C trace context in NATS headers, OTLP export).
//! - [`Health`]: readiness — the service's own flag and its watched dependencies ([`Health::watch`]: NATS,
//!   PostgreSQL, checked every 250 ms, so `/readyz` follows an outage within a second) — plus the Prometheus
//!   [`prometheus::Registry`] of the process.
//! - [`ops_router`]: `/metrics`, `/healthz` (alive) and `/readyz` (200 only when ready and every dependency is
//!   up; the 503 body names what is down; a ready service that serves with something missing says
//!   `ready, degraded: …`, see [`Health::set_degraded`]) for any axum app.
//! - [`serve`]: binds, prints the one machine-readable stdout line that launchers and tests wait for
//!   (`listening <name> http://<addr>`), and serves until the shutdown future resolves.
//! - [`shutdown_signal`]: resolves on Ctrl-C or SIGTERM.

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often [`Health::watch`] checks a dependency.
pub const DEPENDENCY_CHECK_EVERY: Duration = Duration::from_millis(250);
/// A dependency check that has not answered after this long counts as down.
pub const DEPENDENCY_CHECK_TIMEOUT: Duration = Duration::from_millis(750);

pub mod trace;

pub use trace::{TraceArgs, Tracing, init};
#[doc(hidden)]
pub use tracing as __tracing;

/// Readiness and metrics of one process. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    /// The service's own verdict (started, not shutting down, its own work healthy).
    ready: Arc<AtomicBool>,
    /// Each watched dependency and whether its last check passed.
    dependencies: Arc<Mutex<BTreeMap<&'static str, bool>>>,
    dependency_up: prometheus::IntGaugeVec,
    /// What works less well right now without making the service unready (e.g. the api with no AI worker).
    degraded: Arc<Mutex<BTreeMap<&'static str, String>>>,
    registry: prometheus::Registry,
}

impl Health {
    /// A new, not yet ready, process with its own registry whose metrics are prefixed `relayhub_<service>_`.
    pub fn new(service: &str) -> Self {
        let registry = prometheus::Registry::new_custom(Some(format!("relayhub_{service}")), None).unwrap_or_default();
        let dependency_up = prometheus::IntGaugeVec::new(
            prometheus::Opts::new("dependency_up", "1 while the dependency's last readiness check passed."),
            &["dependency"],
        )
        .expect("valid metric");
        let health = Health {
            ready: Arc::new(AtomicBool::new(false)),
            dependencies: Arc::default(),
            dependency_up,
            degraded: Arc::default(),
            registry,
        };
        health.register(health.dependency_up.clone());
        health
    }

    /// Makes readiness depend on `name`: `check` runs every [`DEPENDENCY_CHECK_EVERY`] (one at a time, each
    /// bounded by [`DEPENDENCY_CHECK_TIMEOUT`]) on a task of its own, for the life of the process, and `/readyz`
    /// answers 503 from its first failure to its next success. Down until the first check passes.
    pub fn watch<F, Fut>(&self, name: &'static str, mut check: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = bool> + Send,
    {
        self.set_dependency(name, false);
        let health = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(DEPENDENCY_CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let up = tokio::time::timeout(DEPENDENCY_CHECK_TIMEOUT, check()).await.unwrap_or(false);
                health.set_dependency(name, up);
            }
        });
    }

    /// [`Health::watch`] of the NATS connection: up while the client is connected (a server that goes away
    /// closes the socket, which the client notices at once).
    pub fn watch_nats(&self, client: &async_nats::Client) {
        let client = client.clone();
        self.watch("nats", move || {
            let up = client.connection_state() == async_nats::connection::State::Connected;
            async move { up }
        });
    }

    fn set_dependency(&self, name: &'static str, up: bool) {
        let mut deps = self.dependencies.lock().unwrap_or_else(|e| e.into_inner());
        if deps.insert(name, up) != Some(up) {
            if up {
                tracing::info!(dependency = name, "dependency up");
            } else {
                tracing::warn!(dependency = name, "dependency down: not ready");
            }
        }
        self.dependency_up.with_label_values(&[name]).set(i64::from(up));
    }

    /// The watched dependencies that are down now.
    pub fn down(&self) -> Vec<&'static str> {
        let deps = self.dependencies.lock().unwrap_or_else(|e| e.into_inner());
        deps.iter().filter(|(_, up)| !**up).map(|(name, _)| *name).collect()
    }

    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Sets the service's own verdict; `/readyz` also needs every watched dependency up.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// The service's own verdict and every watched dependency up.
    /// Notes (or with `None` clears) that `what` is degraded: `/readyz` stays 200 — the service can still serve,
    /// so a load balancer must keep it — and its body says `ready, degraded: <what>: <why>`.
    pub fn set_degraded(&self, what: &'static str, why: Option<String>) {
        let mut degraded = self.degraded.lock().unwrap_or_else(|e| e.into_inner());
        match why {
            Some(why) => degraded.insert(what, why),
            None => degraded.remove(what),
        };
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.down().is_empty()
    }

    /// Registers a collector, logging (not failing) on a duplicate name.
    pub fn register<C: prometheus::core::Collector + Clone + 'static>(&self, c: C) -> C {
        if let Err(e) = self.registry.register(Box::new(c.clone())) {
            tracing::warn!(error = %e, "metric registration failed");
        }
        c
    }

    pub fn int_counter(&self, name: &str, help: &str) -> prometheus::IntCounter {
        self.register(prometheus::IntCounter::new(name, help).expect("valid metric name"))
    }

    pub fn int_gauge(&self, name: &str, help: &str) -> prometheus::IntGauge {
        self.register(prometheus::IntGauge::new(name, help).expect("valid metric name"))
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: Vec<f64>) -> prometheus::Histogram {
        let opts = prometheus::HistogramOpts::new(name, help).buckets(buckets);
        self.register(prometheus::Histogram::with_opts(opts).expect("valid metric name"))
    }

    pub fn int_counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::IntCounterVec {
        self.register(prometheus::IntCounterVec::new(prometheus::Opts::new(name, help), labels).expect("valid metric"))
    }
}

/// `/metrics`, `/healthz` and `/readyz`. Merge into a binary's own router or serve alone.
pub fn ops_router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    let mut families = health.registry.gather();
    families.extend(prometheus::gather());
    match encoder.encode(&families, &mut buf) {
        Ok(()) => (StatusCode::OK, [("content-type", encoder.format_type().to_owned())], buf).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    let down = health.down();
    if !down.is_empty() {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {} down", down.join(", ")))
    } else if health.ready.load(Ordering::Acquire) {
        let degraded = health.degraded.lock().unwrap_or_else(|e| e.into_inner());
        let notes: Vec<String> = degraded.iter().map(|(what, why)| format!("{what}: {why}")).collect();
        if notes.is_empty() {
            (StatusCode::OK, "ready".to_owned())
        } else {
            (StatusCode::OK, format!("ready, degraded: {}", notes.join("; ")))
        }
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_owned())
    }
}

/// Binds `addr` (port 0 picks a free port), prints `listening <name> http://<bound addr>` on stdout, and serves
/// `app` until `shutdown` resolves; in-flight requests finish first (axum's graceful shutdown).
pub async fn serve(
    name: &str,
    addr: SocketAddr,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    announce(name, bound);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Prints the line launchers and tests wait for: `listening <name> http://<addr>`.
pub fn announce(name: &str, addr: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening {name} http://{addr}");
    let _ = out.flush();
    tracing::info!(%addr, "{name} listening");
}

/// A token cancelled on Ctrl-C or SIGTERM: the one shutdown signal a binary hands to all its tasks.
pub fn shutdown_token() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        cancel.cancel();
    });
    token
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received");
}
