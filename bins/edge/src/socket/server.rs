//! The listener: `GET /ws` (JWT auth, connection limit, upgrade) merged with the ops endpoints.

use super::conn::{Conn, User};
use crate::hub::Hub;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rh_auth::{Claims, TokenKeys};
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Largest message the WebSocket layer reads. Well above [`rh_protocol::frame::MAX_CLIENT_FRAME_BYTES`] so an
/// oversized frame is read and answered with `frame_too_large` instead of killing the connection; beyond this
/// the connection is closed.
pub const WS_MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;
/// Per-socket read buffer. Small on purpose: it is allocated for every connection (the default is 128 KiB).
const WS_READ_BUFFER_BYTES: usize = 4 * 1024;
/// Frames are buffered up to this size between flushes (the writer flushes after each batch anyway).
const WS_WRITE_BUFFER_BYTES: usize = 8 * 1024;

#[derive(Clone)]
pub struct App {
    pub hub: Arc<Hub>,
    pub keys: TokenKeys,
    /// One permit per open socket (`--max-connections`).
    pub limiter: Arc<Semaphore>,
}

pub fn router(app: App, health: rh_telemetry::Health) -> Router {
    Router::new().route("/ws", get(upgrade)).with_state(app).merge(rh_telemetry::ops_router(health))
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({"error": {"code": code, "message": message}}))).into_response()
}

/// The bearer token from `Authorization: Bearer ...`, else from `?token=` (browsers cannot set headers on a
/// WebSocket).
fn token<'a>(headers: &'a HeaderMap, query: &'a WsQuery) -> Option<&'a str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .or(query.token.as_deref())
        .filter(|t| !t.is_empty())
}

/// Authenticates BEFORE upgrading (a bad or missing token is a plain 401), then takes a connection slot, then
/// attaches the user's inbox: once the client sees the socket open, its sidebar is live.
async fn upgrade(
    State(app): State<App>,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let query = query.map(|q| q.0).unwrap_or(WsQuery { token: None });
    let Some(token) = token(&headers, &query) else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "missing token (?token= or Authorization: Bearer)");
    };
    let claims: Claims = match app.keys.verify(token) {
        Ok(c) => c,
        Err(_) => return error(StatusCode::UNAUTHORIZED, "unauthorized", "invalid or expired token"),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    if app.hub.shutdown().is_cancelled() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "shutting down");
    }
    let Ok(permit) = app.limiter.clone().try_acquire_owned() else {
        app.hub.metrics().connections_refused.inc();
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "this edge is at its connection limit");
    };
    let hub = app.hub.clone();
    let user = User { id: claims.sub, name: claims.name };
    let conn = Arc::new(Conn::new(hub.next_id(), user, hub.config().socket_queue as usize));
    // Detached when dropped: at the socket's end, or with the upgrade callback if the upgrade fails.
    let inbox = hub.inboxes().attach(&conn).await;
    ws.max_message_size(WS_MAX_MESSAGE_BYTES)
        .max_frame_size(WS_MAX_MESSAGE_BYTES)
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .write_buffer_size(WS_WRITE_BUFFER_BYTES)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| super::connection::run(hub, socket, conn, inbox, permit))
}
