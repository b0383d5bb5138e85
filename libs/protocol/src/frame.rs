//! WebSocket frames between a client and the edge (`GET /ws`): JSON text frames with a `type`.

use crate::event::Envelope;
use crate::permission::Permission;
use crate::rpc::ConversationSummary;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Largest text frame the edge accepts; a larger one gets an `error` frame (`frame_too_large`) and is dropped,
/// the connection and its subscriptions stay.
pub const MAX_CLIENT_FRAME_BYTES: usize = 64 * 1024;

/// Client → edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Follow a conversation: replay everything after `after_seq`, then live. Without `after_seq`, replay starts
    /// after the `seq` that the conversation's HTTP history covers.
    ///
    /// With `compact: true` each run of consecutive deltas of a response that is queued on the socket at once is
    /// sent as ONE merged delta (see `response.delta`'s `from_index`): a late joiner gets a response that is 2,000
    /// tokens in as a few frames instead of hundreds, and a socket that fell behind catches up in fewer frames. A
    /// socket that keeps up gets every delta as stored.
    ///
    /// `grant`: the `grant` of the `GET /conversations/{id}` just made; with it (and `after_seq` at or before its
    /// position, as the history's `seq` is) the edge subscribes without asking the api again. Optional: without
    /// it, or when it does not fit (expired, another person or conversation), the edge asks the api.
    Subscribe {
        conversation_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_seq: Option<u64>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        compact: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grant: Option<String>,
    },
    Unsubscribe {
        conversation_id: Uuid,
    },
    /// A message; with `edit_of` (the conversation's last message, the sender's own) a new version of that one,
    /// with a new answer. Answered with `message_accepted`.
    SendMessage {
        conversation_id: Uuid,
        text: String,
        client_msg_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edit_of: Option<Uuid>,
    },
    /// Another answer to the conversation's last message (`message_id`: the one the client sees as last; 409-like
    /// `conflict` when it is not). Answered with `message_accepted` (its `client_msg_id` echoed, `message_id` the
    /// message answered again); `response.requested` follows on the subscription.
    Regenerate {
        conversation_id: Uuid,
        client_msg_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<Uuid>,
    },
    Stop {
        conversation_id: Uuid,
        /// The answer to stop; without it, every answer of the conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response_id: Option<Uuid>,
    },
    /// "I am composing a message here" (`typing: true`, repeated every few seconds while it lasts) or "I
    /// stopped" (`false`: the draft was sent, cleared or left). Shown to the conversation's viewers in `presence`
    /// until it is withdrawn, a message is sent, the socket goes, or [`TYPING_TTL_MS`] pass without a repeat. Only
    /// for a subscribed conversation the socket may respond in: View Only people are refused (`forbidden`).
    Typing {
        conversation_id: Uuid,
        typing: bool,
    },
    /// Re-authenticate the socket with a fresh access token of the same session before the current one expires
    /// (otherwise the edge closes it with `token_expired`). Answered with `authenticated`.
    Auth {
        token: String,
    },
    Ping,
}

/// How long a `typing` frame holds without a repeat, in milliseconds (clients repeat well within it).
pub const TYPING_TTL_MS: u64 = 6000;

/// One person watching a conversation right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    pub user_id: Uuid,
    pub name: String,
    /// Composing a message right now (see the client frame `typing`); never true for View Only people.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub typing: bool,
}

/// What changed in a sidebar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SidebarAction {
    /// Shared with you (or created by you on another device).
    Added,
    /// Your permission, the title or the model changed.
    Changed,
    /// Your access was revoked (or you left).
    Removed,
    /// The owner deleted the conversation.
    Deleted,
    /// An AI answer started or every answer ended: `responding` says whether one is being generated now (the
    /// sidebar's "responding…" marker). Sent to the owner and everyone the conversation is shared with.
    Activity,
}

/// Why a subscription ended with `access_revoked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// Your access was removed (or you left).
    Removed,
    /// The owner deleted the conversation.
    Deleted,
}

/// Edge → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The subscription is live; replay covers everything after `seq`.
    Subscribed {
        conversation_id: Uuid,
        permission: Permission,
        seq: u64,
    },
    /// One conversation event at stream position `seq`.
    Event {
        conversation_id: Uuid,
        seq: u64,
        event: Envelope,
    },
    /// Who is watching now (everyone subscribed on any edge node).
    Presence {
        conversation_id: Uuid,
        viewers: Vec<Viewer>,
    },
    /// Your access was revoked (or the conversation deleted): the subscription has ended.
    AccessRevoked {
        conversation_id: Uuid,
        /// Why, so a deletion is never announced as a removed access (absent from older edges).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<RevokeReason>,
    },
    /// Your permission on a subscribed conversation changed (takes effect at once).
    PermissionChanged {
        conversation_id: Uuid,
        permission: Permission,
    },
    /// Your sidebar changed. `conversation` is present for `added` and `changed`, `responding` for `activity`.
    Sidebar {
        action: SidebarAction,
        conversation_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationSummary>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        responding: Option<bool>,
    },
    /// A `send_message` was accepted; its `message.created` event follows on the subscription.
    MessageAccepted {
        conversation_id: Uuid,
        client_msg_id: String,
        message_id: Uuid,
        response_id: Uuid,
    },
    /// Something a client sent was refused. `ref` names what it was about (a conversation id or client_msg_id).
    Error {
        code: String,
        message: String,
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// With `rate_limited`: how long to wait before trying again, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// The socket is authenticated until `expires_at` (seconds since the Unix epoch): send `auth` before then.
    Authenticated {
        expires_at: u64,
    },
    Pong,
}

impl ServerFrame {
    pub fn error(code: ErrorCode, message: impl Into<String>, reference: Option<String>) -> Self {
        ServerFrame::Error { code: code.as_str().to_owned(), message: message.into(), reference, retry_after_ms: None }
    }

    /// A `rate_limited` error frame: the client may try again after `retry_after_ms`.
    pub fn rate_limited(message: impl Into<String>, retry_after_ms: u64, reference: Option<String>) -> Self {
        ServerFrame::Error {
            code: ErrorCode::RateLimited.as_str().to_owned(),
            message: message.into(),
            reference,
            retry_after_ms: Some(retry_after_ms),
        }
    }

    /// The JSON text of this frame.
    pub fn to_json(&self) -> String {
        // Serializing these plain data types cannot fail.
        serde_json::to_string(self)
            .unwrap_or_else(|_| String::from(r#"{"type":"error","code":"internal","message":"serialize"}"#))
    }
}

/// Builds an `event` frame around an event payload that is already JSON (the bytes from the stream), so the edge
/// serializes each event once for all its sockets without decoding and re-encoding it.
pub fn event_frame_json(conversation_id: Uuid, seq: u64, envelope_json: &str) -> String {
    let mut s = String::with_capacity(envelope_json.len() + 96);
    s.push_str(r#"{"type":"event","conversation_id":""#);
    s.push_str(&conversation_id.to_string());
    s.push_str(r#"","seq":"#);
    s.push_str(&seq.to_string());
    s.push_str(r#","event":"#);
    s.push_str(envelope_json);
    s.push('}');
    s
}

/// Codes of `error` frames and of REST errors (`{"error":{"code","message"}}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ErrorCode {
    /// Not JSON, or JSON that is not a frame / request body of the expected shape.
    BadRequest,
    /// A frame `type` the server does not know.
    UnknownType,
    /// A frame larger than [`MAX_CLIENT_FRAME_BYTES`].
    FrameTooLarge,
    /// Missing or invalid token, or its session ended.
    Unauthorized,
    /// The socket's access token expired without an `auth` frame: the socket is closed.
    TokenExpired,
    /// Authenticated, but not allowed to do this.
    Forbidden,
    /// No such thing, or not visible to you (a foreign conversation is `not_found`, never `forbidden`).
    NotFound,
    /// Already exists (e.g. email taken), or the request no longer fits (e.g. the message to edit is not the last).
    Conflict,
    /// An answer is being generated in the conversation: edit or regenerate once it has ended (or stop it).
    ResponseInProgress,
    /// The requested position is older than the broker keeps: reload history over HTTP, then subscribe again.
    CannotRecover,
    /// The socket could not keep up and was dropped from a live stream; resubscribe with the last `seq`.
    Lagged,
    /// Too big (attachments).
    PayloadTooLarge,
    /// A type of file that is not accepted.
    UnsupportedMediaType,
    /// A dependency did not answer in time.
    Unavailable,
    /// An HTTP method the endpoint does not answer (the response's `Allow` header lists those it does).
    MethodNotAllowed,
    /// A model no AI worker serves: pick one of `GET /models`.
    UnknownModel,
    /// Over a limit (AI replies, commands per second, sign-in attempts, storage...): try again after the
    /// `Retry-After` header (REST) or `retry_after_ms` (socket).
    RateLimited,
    /// An organization's storage quota (attachment bytes) would be exceeded: waiting does not help; deleting
    /// conversations with attachments does.
    QuotaExceeded,
    /// The organization signs in with its provider only (`GET /auth/sso?email=`): no password sign-in or sign-up.
    PasswordsOff,
    /// An SSO sign-in's state is unknown, used, expired, altered, or from another browser: start again.
    SsoStateInvalid,
    /// The provider refused the authorization code (used before, expired, or not for this sign-in).
    SsoCodeRejected,
    /// The ID token is for another client (its `aud`).
    SsoTokenAudience,
    /// The ID token has expired.
    SsoTokenExpired,
    /// The ID token was used to sign in before.
    SsoTokenReplayed,
    /// The ID token failed another check: signature (the provider's JWKS), issuer or nonce.
    SsoTokenInvalid,
    /// The provider does not say the email is verified.
    SsoEmailUnverified,
    /// The email's domain is not one of the organization's, and no invite names it.
    SsoDomainNotAllowed,
    /// The account this email names is bound to another identity (`sub`) at the provider: an email reassigned
    /// there does not take the account over.
    SsoAccountBound,
    /// The provider could not be reached or answered something that is not OpenID Connect.
    SsoProviderUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::ResponseInProgress => "response_in_progress",
            ErrorCode::CannotRecover => "cannot_recover",
            ErrorCode::Lagged => "lagged",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnknownModel => "unknown_model",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::PasswordsOff => "passwords_off",
            ErrorCode::SsoStateInvalid => "sso_state_invalid",
            ErrorCode::SsoCodeRejected => "sso_code_rejected",
            ErrorCode::SsoTokenAudience => "sso_token_audience",
            ErrorCode::SsoTokenExpired => "sso_token_expired",
            ErrorCode::SsoTokenReplayed => "sso_token_replayed",
            ErrorCode::SsoTokenInvalid => "sso_token_invalid",
            ErrorCode::SsoEmailUnverified => "sso_email_unverified",
            ErrorCode::SsoDomainNotAllowed => "sso_domain_not_allowed",
            ErrorCode::SsoAccountBound => "sso_account_bound",
            ErrorCode::SsoProviderUnavailable => "sso_provider_unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    #[test]
    fn client_frames_parse() {
        let id = Uuid::new_v4();
        let f: ClientFrame =
            serde_json::from_str(&format!(r#"{{"type":"subscribe","conversation_id":"{id}","after_seq":7}}"#)).unwrap();
        assert_eq!(f, ClientFrame::Subscribe { conversation_id: id, after_seq: Some(7), compact: false, grant: None });
        let f: ClientFrame = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(f, ClientFrame::Ping);
    }

    #[test]
    fn spliced_event_frame_equals_serialized_frame() {
        let env = Envelope::new(Uuid::new_v4(), None, Event::ConversationDeleted {});
        let raw = serde_json::to_string(&env).unwrap();
        let spliced = event_frame_json(env.conversation_id, 42, &raw);
        let parsed: ServerFrame = serde_json::from_str(&spliced).unwrap();
        assert_eq!(parsed, ServerFrame::Event { conversation_id: env.conversation_id, seq: 42, event: env });
    }

    #[test]
    fn error_frame_has_ref() {
        let f = ServerFrame::error(ErrorCode::NotFound, "no such conversation", Some("x".into()));
        let v: serde_json::Value = serde_json::from_str(&f.to_json()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "not_found");
        assert_eq!(v["ref"], "x");
    }
}
