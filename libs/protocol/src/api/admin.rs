//! Bodies of `/admin/...`: what an org admin sees — metadata, never message text.

use crate::permission::Permission;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A conversation's owner in the admin view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OwnerRef {
    pub id: Uuid,
    pub name: String,
}

/// A participant in the admin view (no email: admins see who, not how to reach them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminParticipant {
    pub user_id: Uuid,
    pub name: String,
    pub permission: Permission,
}

/// What an org admin sees of a conversation: metadata only, never message text or settings content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminConversation {
    pub id: Uuid,
    pub title: String,
    pub owner: OwnerRef,
    pub participants: Vec<AdminParticipant>,
    pub model: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub message_count: i64,
    pub deleted: bool,
}

/// `GET /admin/conversations` reply: the org's conversations (deleted ones too), newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminConversations {
    pub conversations: Vec<AdminConversation>,
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub action: String,
    /// Depends on `action`.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub detail: serde_json::Value,
    pub seq: Option<i64>,
    pub at: DateTime<Utc>,
}

/// `GET /admin/audit` reply, oldest first (page forward with `since` = the last `at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntries {
    pub entries: Vec<AuditEntry>,
}
