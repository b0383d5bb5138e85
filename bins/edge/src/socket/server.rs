//! The listener: `GET /ws` (auth, connection limit, upgrade) merged with the ops endpoints.
//!
//! A socket opens with a one-time ticket (`?ticket=`, from the api's `POST /auth/ticket`; browsers cannot set
//! headers on a WebSocket) or `Authorization: Bearer <token>` (programmatic clients). Never a token in the URL:
//! proxies and load balancers log URLs. Either way the api checks it (`rh.api.socket_auth`): a ticket works once,
//! and only while its session is open. `?sidebar=off` opens a socket without sidebar frames (docs/protocol.md).

use super::conn::{Conn, User};
use crate::hub::Hub;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rh_auth::TokenKeys;
use rh_protocol::rpc::{SocketCredential, SocketGrant};
use rh_protocol::subjects;
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

/// `GET /ws`, plus the ops endpoints when `health` is given (no separate ops listener).
pub fn router(app: App, health: Option<rh_telemetry::Health>) -> Router {
    let router = Router::new().route("/ws", get(upgrade)).with_state(app);
    match health {
        Some(health) => router.merge(rh_telemetry::ops_router(health)),
        None => router,
    }
}

#[derive(Deserialize)]
struct WsQuery {
    ticket: Option<String>,
    /// `off` (or `false`, `0`): no `sidebar` frames on this socket; `on` (the default) otherwise.
    sidebar: Option<String>,
}

/// `?sidebar=`: `None` when the value is not one of on/off/true/false/1/0.
fn wants_sidebar(value: Option<&str>) -> Option<bool> {
    match value {
        None | Some("on" | "true" | "1") => Some(true),
        Some("off" | "false" | "0") => Some(false),
        Some(_) => None,
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({"error": {"code": code, "message": message}}))).into_response()
}

/// The socket's credential: `Authorization: Bearer ...`, else `?ticket=`.
fn credential(headers: &HeaderMap, query: &WsQuery) -> Option<SocketCredential> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match (bearer, &query.ticket) {
        (Some(token), _) => Some(SocketCredential::Token(token.to_owned())),
        (None, Some(ticket)) if !ticket.is_empty() => Some(SocketCredential::Ticket(ticket.clone())),
        _ => None,
    }
}

/// Asks the api who the credential belongs to. A forged bearer token is refused here without asking.
async fn authenticate(app: &App, credential: SocketCredential) -> Result<SocketGrant, Response> {
    if let SocketCredential::Token(t) = &credential
        && app.keys.verify(t).is_err()
    {
        return Err(error(StatusCode::UNAUTHORIZED, "unauthorized", "invalid or expired token"));
    }
    let hub = &app.hub;
    rh_bus::request(hub.nats(), subjects::API_SOCKET_AUTH, &credential, hub.request_timeout()).await.map_err(
        |e| match e.rejection {
            Some(_) => error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "invalid, used or expired ticket or token, or the session ended",
            ),
            None => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the api did not answer; try again"),
        },
    )
}

/// Authenticates BEFORE upgrading (a bad or missing token is a plain 401), then takes a connection slot, then
/// attaches the user's inbox: once the client sees the socket open, its sidebar is live.
async fn upgrade(
    State(app): State<App>,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let query = query.map(|q| q.0).unwrap_or(WsQuery { ticket: None, sidebar: None });
    let Some(sidebar) = wants_sidebar(query.sidebar.as_deref()) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "sidebar must be on or off");
    };
    let Some(credential) = credential(&headers, &query) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing credential (?ticket= from POST /api/v1/auth/ticket, or Authorization: Bearer)",
        );
    };
    let grant = match authenticate(&app, credential).await {
        Ok(g) => g,
        Err(refusal) => return refusal,
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
    let user = User { id: grant.user_id, name: grant.name, session: grant.session_id, sidebar };
    let conn = Arc::new(Conn::new(hub.next_id(), user, hub.config().socket_queue as usize, grant.expires_at));
    // Detached when dropped: at the socket's end, or with the upgrade callback if the upgrade fails.
    let inbox = hub.inboxes().attach(&conn).await;
    ws.max_message_size(WS_MAX_MESSAGE_BYTES)
        .max_frame_size(WS_MAX_MESSAGE_BYTES)
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .write_buffer_size(WS_WRITE_BUFFER_BYTES)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| super::connection::run(hub, socket, conn, inbox, permit))
}
