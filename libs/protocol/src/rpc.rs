//! Payloads that travel between services: `rh.api.*` request/reply (edge → api), generation jobs
//! (`rh.jobs.generate`, api → worker), stop control (`rh.ctl.<id>.stop`) and user inbox messages
//! (`rh.user.<id>.inbox`, api → edge).

use crate::frame::{ErrorCode, SidebarAction};
use crate::permission::Permission;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A reply on `rh.api.*`: `{"ok": T}` or `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    Ok(T),
    Error(RpcError),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RpcError {
    pub code: ErrorCode,
    pub message: String,
    /// With [`ErrorCode::RateLimited`]: how long to wait before trying again, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl RpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), retry_after_ms: None }
    }
}

/// `rh.api.access` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub user_id: Uuid,
    pub conversation_id: Uuid,
}

/// `rh.api.socket_auth` request: who opens a socket (a one-time ticket from `POST /auth/ticket`, or a bearer
/// token from a programmatic client), or re-authenticates one (an `auth` frame's token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketCredential {
    Ticket(String),
    Token(String),
}

/// `rh.api.socket_auth` reply: the person, their open session, and when the socket must re-authenticate (the
/// access token's expiry, seconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocketGrant {
    pub user_id: Uuid,
    pub name: String,
    pub session_id: Uuid,
    pub expires_at: u64,
}

/// `rh.api.access` reply: the caller's permission and the `seq` its HTTP history covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessGrant {
    pub permission: Permission,
    pub history_seq: u64,
}

/// `rh.api.send_message` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessageRequest {
    pub user_id: Uuid,
    pub conversation_id: Uuid,
    pub text: String,
    pub client_msg_id: Option<String>,
    /// Longest reply in tokens; `None`: the api's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// An edit: the message this one is a new version of (see `SendRequest::edit_of`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_of: Option<Uuid>,
}

/// `rh.api.regenerate` request: another answer to the last message (reply: [`MessageAccepted`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegenerateRpc {
    pub user_id: Uuid,
    pub conversation_id: Uuid,
    /// The message the caller sees as the last (see `RegenerateRequest::message_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
}

/// `rh.api.send_message` and `rh.api.regenerate` reply (also the body of the 202 of `POST
/// /conversations/{id}/messages` and `/regenerate`; for a regenerate, `message_id` is the message answered again
/// and `seq` the position of `response.requested`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageAccepted {
    pub message_id: Uuid,
    pub response_id: Uuid,
    /// Stream position of the `message.created` event.
    pub seq: u64,
}

/// `rh.api.stop` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopRequest {
    pub user_id: Uuid,
    pub conversation_id: Uuid,
    /// The answer to stop; `None` stops every answer of the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<Uuid>,
}

/// `rh.api.stop` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StopAccepted {}

/// Published on `rh.ctl.<conversation_id>.stop` (core NATS) and recorded in KV `rh_stops`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopControl {
    pub conversation_id: Uuid,
    pub requested_by: Uuid,
    pub at_us: i64,
    /// The answer to stop; `None` stops every answer of the conversation requested before `at_us`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<Uuid>,
}

/// Who holds one response, in KV `rh_stops` under [`crate::subjects::response_claim`]. Every change is a
/// compare-and-set on the key's revision, so exactly one of the api (stopping a response no worker holds) and a
/// worker (picking the job up) wins, and a response is ended by exactly one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ResponseClaim {
    /// Queued by the api at `queued_at_us`; no worker has picked it up yet.
    Queued { queued_at_us: i64 },
    /// A worker generates it (delivery `attempt`).
    Running { attempt: u32 },
    /// Stopped before any worker took it: the api published `response.stopped`. A worker that picks the job up
    /// later drops it without a word.
    Stopped { by: Uuid },
    /// Stopped while a worker held it (as `attempt`, copied from `running`): the holder ends it (a worker that
    /// picks the job up again after a crash holds it as the next attempt and ends it as stopped without
    /// generating). `attempt` 0: recorded before the holder was named here.
    StopRequested {
        by: Uuid,
        #[serde(default)]
        attempt: u32,
    },
}

/// One message of the context sent to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// One AI turn, on `rh.jobs.generate`. The worker never reads PostgreSQL: everything it needs is here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateJob {
    pub conversation_id: Uuid,
    pub response_id: Uuid,
    /// The user message that asked for this response.
    pub message_id: Uuid,
    pub model: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// The context, oldest first, ending with the new user message (system prompt first if any).
    pub messages: Vec<ChatMessage>,
    pub requested_by: Uuid,
    /// When the job was created (µs); a stop recorded after this time cancels it.
    pub requested_at_us: i64,
}

/// A conversation as one person's sidebar shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationSummary {
    pub id: Uuid,
    pub title: String,
    pub owner_id: Uuid,
    pub owner_name: String,
    /// The viewer's permission.
    pub permission: Permission,
    /// True when the viewer is not the owner (it was shared with them).
    pub shared: bool,
    pub model: String,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
    /// An AI answer is being generated in it now (the "responding…" marker). Present in `GET /conversations`;
    /// absent from sidebar `added`/`changed` messages, which leave the marker as it is (`activity` messages
    /// change it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responding: Option<bool>,
    /// For the owner: how many people it is shared with now (so their sidebar marks which are shared). Present in
    /// `GET /conversations` for the conversations the caller owns; absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_with: Option<u32>,
}

/// Published on `rh.user.<id>.inbox` (by the api; `activity` by the audit writer); the edge forwards it to every
/// socket of that user as a `sidebar` frame, and on `removed` ends that user's subscription to the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxMessage {
    pub user_id: Uuid,
    pub action: SidebarAction,
    pub conversation_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationSummary>,
    /// With `activity`: an AI answer is being generated now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responding: Option<bool>,
}

/// Published on [`crate::subjects::SESSION_ENDED`]: the sockets of `user_id` opened with session `session_id`
/// (every session of theirs when `None`) must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnded {
    pub user_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
}

/// A model the worker pool serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelInfo {
    pub id: String,
    /// `simulated` or `openai`.
    pub provider: String,
}

/// Request of `rh.worker.models` (`{}`: no fields yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelsQuery {}

/// Reply of `rh.worker.models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub models: Vec<ModelInfo>,
}

/// Published on `rh.presence.<conversation_id>` by each edge node: who is watching on that node right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceAnnounce {
    /// A random id of the edge process.
    pub node_id: Uuid,
    pub conversation_id: Uuid,
    pub viewers: Vec<crate::frame::Viewer>,
    /// How long (ms) this announcement stays valid without a refresh.
    pub ttl_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_shape() {
        let ok: Reply<StopAccepted> = Reply::Ok(StopAccepted {});
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"ok":{}}"#);
        let err: Reply<StopAccepted> = Reply::Error(RpcError::new(ErrorCode::Forbidden, "view only"));
        let v: serde_json::Value = serde_json::to_value(&err).unwrap();
        assert_eq!(v["error"]["code"], "forbidden");
    }
}
