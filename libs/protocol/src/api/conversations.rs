//! Bodies of `/conversations/...`.

use crate::permission::Permission;
use crate::rpc::ConversationSummary;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// `POST /conversations` body (optional: none, or `{}`, is an untitled conversation with the default model).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateConversation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^\\s*[A-Za-z0-9._:/@-]{1,100}\\s*$"))]
    pub model: Option<String>,
}

/// `GET /conversations` reply: own and shared, newest first. `next_before` is null on the last page; otherwise
/// pass it as `before` for the next, older page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationList {
    pub conversations: Vec<ConversationSummary>,
    pub next_before: Option<String>,
}

/// One turn of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryMessage {
    pub id: Uuid,
    /// `user` or `assistant`.
    pub role: String,
    pub author_id: Option<Uuid>,
    pub author_name: Option<String>,
    pub text: String,
    /// `complete`, `failed` or `stopped` (turns still streaming are never part of history).
    pub status: String,
    /// Why a `failed` answer failed (the `error` of its `response.failed`, at most 300 characters); null otherwise.
    #[serde(default)]
    pub error: Option<String>,
    pub model: Option<String>,
    pub reply_to: Option<Uuid>,
    /// A user message that is an edit: the message it is a new version of. A message that a later one edits, and
    /// every answer to it, is an older version; of the answers to one message, the last is the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_of: Option<Uuid>,
    /// Stream position of the turn's first event.
    pub seq: u64,
    pub created_at: DateTime<Utc>,
}

/// Someone a conversation is shared with (the sharing panel, and `participants` of a conversation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Participant {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    pub permission: Permission,
    /// The share ends by itself at this time; null: until revoked.
    pub expires_at: Option<DateTime<Utc>>,
}

/// One attachment's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub uploaded_by: Uuid,
    pub filename: String,
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    pub created_at: DateTime<Utc>,
}

/// `GET /conversations/{id}` (and the 201 of `POST /conversations`): settings, the caller's permission,
/// participants, attachments, and one page of the history up to `seq` (subscribe with `after_seq = seq`).
/// `has_more` says older turns exist: `before` = `next_before` gets the page before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationDetail {
    pub id: Uuid,
    pub title: String,
    pub owner_id: Uuid,
    pub owner_name: String,
    pub model: String,
    pub temperature: Option<f32>,
    pub system_prompt: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The caller's permission.
    pub permission: Permission,
    /// The stream position the history covers.
    pub seq: u64,
    pub messages: Vec<HistoryMessage>,
    pub has_more: bool,
    pub next_before: Option<u64>,
    pub participants: Vec<Participant>,
    pub attachments: Vec<Attachment>,
    /// A signed, short-lived (60 s) subscribe grant for this person and conversation: `subscribe {grant}` with
    /// `after_seq = seq` then needs no second access check (`ClientFrame::Subscribe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// `PATCH /conversations/{id}` body (owner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenameRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S", max_length = 200))]
    pub title: String,
}

/// `PATCH /conversations/{id}` reply: `seq` of `conversation.renamed`, null when the title was already that.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Renamed {
    pub id: Uuid,
    pub title: String,
    pub seq: Option<u64>,
}

/// `POST /conversations/{id}/messages` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S", max_length = 32000))]
    pub text: String,
    /// The client's own correlation id (at most 128 characters), echoed in `message.created`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub client_msg_id: Option<String>,
    /// Longest reply in tokens (default and bound: the api's `--default-max-tokens`, `--max-tokens-limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_tokens: Option<u32>,
    /// Edit instead of a new message: the id of the conversation's last message, which must be the caller's. The
    /// message becomes a new version of it, with a new answer (409 `response_in_progress` while one streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_of: Option<Uuid>,
}

/// `POST /conversations/{id}/regenerate` body (optional): another answer to the conversation's last message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegenerateRequest {
    /// The message the caller sees as the last; when it is not (any more), 409 `conflict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
    /// Longest reply in tokens, as for a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_tokens: Option<u32>,
}

/// `POST /conversations/{id}/stop` body (optional): without `response_id`, every answer of the conversation stops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StopBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<Uuid>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// `PATCH /conversations/{id}/settings` body (Can Respond or owner). An absent field is unchanged; `null` clears
/// `temperature` / `system_prompt`. Unknown fields are refused, so a typo is not silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsPatchRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^\\s*[A-Za-z0-9._:/@-]{1,100}\\s*$"))]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>, minimum = 0, maximum = 2))]
    pub temperature: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 16000))]
    pub system_prompt: Option<Option<String>>,
}

/// `PATCH /conversations/{id}/settings` reply: the settings now, which fields changed, and the `seq` of
/// `settings.changed` (null when nothing changed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsChanged {
    pub model: String,
    pub temperature: Option<f32>,
    pub system_prompt: Option<String>,
    /// `model`, `temperature`, `system_prompt`.
    pub changed: Vec<String>,
    pub seq: Option<u64>,
}

/// One person to share with: `permission` is `view` or `respond`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareGrant {
    pub user_id: Uuid,
    /// `view` or `respond`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(view|respond)$"))]
    pub permission: String,
    /// RFC 3339, in the future: the share ends by itself then, like a revoke. Absent or null: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /conversations/{id}/shares` body (owner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareRequest {
    pub shares: Vec<ShareGrant>,
}

/// `PATCH /conversations/{id}/shares/{user_id}` body (owner): `view` or `respond`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareChange {
    /// `view` or `respond`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(view|respond)$"))]
    pub permission: String,
}

/// `GET`/`POST /conversations/{id}/shares` reply: every participant (the owner is not one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareList {
    pub shares: Vec<Participant>,
}

/// `POST /conversations/{id}/attachments` body: multipart with the file in field `file`.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
pub struct AttachmentUpload {
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    pub file: Vec<u8>,
}
