//! Org admin views: conversation metadata and the audit log of the admin's own org — never message text (an admin
//! reads content only where a conversation is shared with them, through the normal paths). Access → validate → act
//! like every operation: the access step is [`super::access::org_admin`] of the caller's own org.

use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use rh_protocol::api::admin::{AdminConversations, AuditEntries};
use rh_store::audit_log::AuditFilter;
use uuid::Uuid;

/// The org's conversations, newest first, at most `limit` (clamped to 1–2000, default 500).
pub async fn conversations(
    state: &AppState,
    caller: &AuthUser,
    limit: Option<i64>,
) -> Result<AdminConversations, ApiError> {
    super::access::org_admin(caller, caller.org(), "see this")?;
    let limit = limit.unwrap_or(500).clamp(1, 2000);
    let conversations = rh_store::conversations::admin_list(&state.db, caller.org(), limit).await?;
    Ok(AdminConversations { conversations })
}

/// The org's audit log, oldest first, from `since` (RFC 3339), of one conversation or all, at most `limit`
/// (clamped to 1–1000, default 200).
pub async fn audit(
    state: &AppState,
    caller: &AuthUser,
    conversation_id: Option<Uuid>,
    since: Option<&str>,
    limit: Option<i64>,
) -> Result<AuditEntries, ApiError> {
    super::access::org_admin(caller, caller.org(), "see this")?;
    let since = since
        .map(|s| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)))
        .transpose()
        .map_err(|_| ApiError::Validation("since must be an RFC 3339 time, e.g. 2025-01-31T12:00:00Z".into()))?;
    let filter = AuditFilter { conversation_id, since, limit: limit.unwrap_or(200).clamp(1, 1000) };
    let entries = rh_store::audit_log::list(&state.db, caller.org(), &filter).await?;
    Ok(AuditEntries { entries })
}
