//! Wiring: connect, migrate, ensure the NATS topology, start the responders, serve HTTP.

use crate::config::Settings;
use crate::error::ApiError;
use crate::metrics::{self, Metrics};
use crate::middleware;
use crate::routes;
use crate::service::grants::Grants;
use crate::service::limits::HashSlots;
use crate::state::AppState;
use anyhow::Context as _;
use axum::Router;
use rh_auth::{Secret, TokenKeys};
use rh_protocol::subjects;
use rh_store::Db;
use rh_telemetry::Health;
use std::sync::Arc;
use std::time::Duration;
use tower_http::services::{ServeDir, ServeFile};

/// Connects to PostgreSQL (and migrates) and NATS (and ensures streams and buckets): everything a request needs.
pub async fn build_state(settings: Settings, health: &Health, jwt_secret: &Secret) -> anyhow::Result<AppState> {
    let url = settings.database_url.as_ref().context("--database-url (RH_DATABASE_URL) is required")?;
    let checkout = Duration::from_millis(settings.db_checkout_timeout_ms);
    let tls = &settings.database_tls;
    let db = Db::connect_tls(url.expose(), settings.db_pool_size, checkout, tls).context("database url")?;
    db.migrate().await.context("migrating the database")?;
    let nats = rh_bus::connect(&settings.nats_url, &settings.nats_auth, rh_bus::Role::Api).await;
    let js = async_nats::jetstream::new(nats.clone());
    let topology = rh_bus::Topology { replicas: settings.stream_replicas.into(), ..rh_bus::Topology::default() };
    topology.ensure(&js).await.context("creating the NATS streams and buckets")?;
    let stops = js.get_key_value(subjects::KV_STOPS).await.context("KV rh_stops")?;
    let attachments = js.get_object_store(subjects::OBJECT_ATTACHMENTS).await.context("object store rh_attachments")?;
    let metrics = Metrics::new(health);
    // The grants get connections of their own, so a subscribe never waits in line behind HTTP reads.
    let grants_db =
        Db::connect_tls(url.expose(), crate::service::grants::SLOTS, checkout, tls).context("database url")?;
    let grants = Grants::spawn(grants_db, metrics.grant_batch_size.clone());
    let outbox = crate::relay::Outbox::new(db.clone());
    let hash_slots = Arc::new(HashSlots::new(&settings.limits, metrics.password_hashes_most.clone()));
    let sso_http = crate::service::oidc_http::OidcHttp::new(Duration::from_millis(settings.sso.http_timeout_ms))
        .context("the SSO HTTP client")?;
    Ok(AppState {
        sso_http,
        outbox,
        hash_slots,
        db,
        nats,
        js,
        stops,
        attachments,
        keys: Arc::new(TokenKeys::new(jwt_secret)),
        settings: Arc::new(settings),
        metrics,
        grants,
        erase_wake: Arc::new(tokio::sync::Notify::new()),
        models: Arc::default(),
    })
}

/// The whole HTTP app: `/api/v1/*`, the ops endpoints, and the web client when `--web-dir` is set; every
/// response with the security headers ([`crate::middleware`] has the layers).
pub fn app(state: AppState, health: Health) -> Router {
    use axum::middleware::{from_fn, from_fn_with_state};
    let timeout = Duration::from_millis(state.settings.request_timeout_ms);
    let api = routes::api_router(&state)
        .route_layer(from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(from_fn_with_state(timeout, middleware::request_timeout));
    let mut router = Router::new().nest("/api/v1", api).with_state(state.clone());
    if state.settings.ops_listen.is_none() {
        router = router.merge(rh_telemetry::ops_router(health));
    }
    router = match &state.settings.web_dir {
        // A single-page app: unknown paths get index.html so client-side routes survive a reload.
        Some(dir) => router.fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))),
        None => router.fallback(|| async { ApiError::NotFound("no such endpoint".into()) }),
    };
    router
        .layer(from_fn(middleware::check_uri))
        .layer(from_fn(middleware::json_errors))
        .layer(from_fn(middleware::security_headers))
        .layer(from_fn(middleware::drain_unread_body))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(middleware::request_span))
}

/// Runs the api until SIGTERM / Ctrl-C.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let jwt_secret = settings.jwt_secret.clone().context("--jwt-secret (RH_JWT_SECRET) is required to serve")?;
    let health = Health::new("api");
    let listen = settings.listen;
    let state = build_state(settings, &health, &jwt_secret).await?;
    let _responders = crate::responders::spawn(state.clone()).await?;
    let relay =
        crate::relay::run(state.outbox.clone(), state.nats.clone(), state.settings.clone(), state.metrics.clone());
    tokio::spawn(relay);
    watch_dependencies(&state, &health)?;
    health.set_ready(true);
    crate::service::erase::Eraser::spawn(state.clone(), &health);
    crate::service::retention::spawn(state.clone());
    crate::service::shares::spawn_expiry(state.clone());
    tokio::spawn(crate::waiting::run(state.clone(), health.clone()));
    tracing::info!("api started");
    if let Some(ops) = state.settings.ops_listen {
        let router = rh_telemetry::ops_router(health.clone());
        tokio::spawn(rh_telemetry::serve("api_ops", ops, router, rh_telemetry::shutdown_signal()));
    }
    rh_telemetry::serve("api", listen, app(state, health), rh_telemetry::shutdown_signal()).await
}

/// Ready only while NATS is connected and PostgreSQL answers. The database is asked on a connection of its own,
/// so a pool busy with requests never reads as an outage.
fn watch_dependencies(state: &AppState, health: &Health) -> anyhow::Result<()> {
    health.watch_nats(&state.nats);
    let url = state.settings.database_url.as_ref().context("--database-url (RH_DATABASE_URL) is required")?;
    let tls = &state.settings.database_tls;
    let probe = Db::connect_tls(url.expose(), 1, rh_telemetry::DEPENDENCY_CHECK_TIMEOUT, tls)?;
    health.watch("postgres", move || {
        let probe = probe.clone();
        async move { probe.ping().await }
    });
    Ok(())
}
