//! Observability shared by every RelayHub binary.
//!
//! - [`init_tracing`]: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//! - [`Health`]: a readiness flag plus the Prometheus [`prometheus::Registry`] of the process.
//! - [`ops_router`]: `/metrics`, `/healthz` (alive) and `/readyz` (dependencies connected) for any axum app.
//! - [`serve`]: binds, prints the one machine-readable stdout line that launchers and tests wait for
//!   (`listening <name> http://<addr>`), and serves until the shutdown future resolves.
//! - [`shutdown_signal`]: resolves on Ctrl-C or SIGTERM.

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Sets up `tracing` to stderr. Safe to call once per process.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Readiness and metrics of one process. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    ready: Arc<AtomicBool>,
    registry: prometheus::Registry,
}

impl Health {
    /// A new, not yet ready, process with its own registry whose metrics are prefixed `relayhub_<service>_`.
    pub fn new(service: &str) -> Self {
        let registry = prometheus::Registry::new_custom(Some(format!("relayhub_{service}")), None).unwrap_or_default();
        Health { ready: Arc::new(AtomicBool::new(false)), registry }
    }

    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
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
    if health.is_ready() { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready") }
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
