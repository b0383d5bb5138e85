//! Request and response bodies of the conversation tools over REST: export (`GET /conversations/{id}/export`),
//! continue as a copy (`POST /conversations/{id}/copy`) and search (`GET /search`). Shared by the api and
//! `rh-client`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `GET /conversations/{id}/export?format=json`: the conversation's finished history, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationExport {
    pub id: Uuid,
    pub title: String,
    pub owner_name: String,
    pub model: String,
    pub system_prompt: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub exported_at: String,
    pub messages: Vec<ExportedMessage>,
}

/// One message of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportedMessage {
    pub id: Uuid,
    /// `user` or `assistant`.
    pub role: String,
    /// The person who wrote it (`user` messages).
    pub author_name: Option<String>,
    /// The model that wrote it (`assistant` messages).
    pub model: Option<String>,
    /// `complete`, `failed` or `stopped`.
    pub status: String,
    pub text: String,
    /// RFC 3339.
    pub created_at: String,
    /// An answer: the message it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Uuid>,
    /// An edit: the message it is a new version of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_of: Option<Uuid>,
    /// An older version: an edited message, or an answer a later attempt replaced (`docs/protocol.md`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub earlier_attempt: bool,
}

/// `POST /conversations/{id}/copy`: continue a conversation you can see as a new one that you own, unshared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CopyRequest {
    /// The copy's title; default "Copy of <title>".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The last message to copy (a message id of the history); default: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<Uuid>,
    /// Copy the attachments too (default: no).
    #[serde(default)]
    pub attachments: bool,
}

/// `GET /search?q=&limit=&offset=`: the best matches first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    pub results: Vec<SearchHit>,
    /// Pass as `offset` for the next page; null on the last page.
    pub next_offset: Option<u32>,
}

/// One match: a conversation's title, or one of its messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    pub conversation_id: Uuid,
    pub title: String,
    /// The matching message; absent when the title matched.
    pub message_id: Option<Uuid>,
    /// The message's stream position (open the history around it).
    pub seq: Option<i64>,
    /// Where the words matched, with each match between `[[` and `]]`.
    pub snippet: String,
    pub rank: f32,
}
