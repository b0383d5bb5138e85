//! Org admin views: conversation metadata and the audit log — never message text (an admin reads content only
//! where a conversation is shared with them, through the normal paths).

use crate::error::ApiError;
use crate::extract::{ApiQuery, AuthUser};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use rh_protocol::api::admin::{AdminConversations, AuditEntries};
use rh_store::audit_log::AuditFilter;
use serde::Deserialize;
use uuid::Uuid;

fn require_admin(caller: &AuthUser) -> Result<(), ApiError> {
    if caller.is_admin() { Ok(()) } else { Err(ApiError::Forbidden("only org admins can see this".into())) }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-2000, default 500.
    limit: Option<i64>,
}

/// `GET /admin/conversations?limit=` → `{conversations:[{id,title,owner{id,name},participants[{user_id,name,
/// permission}],model,created_at,updated_at,message_count,deleted}]}` for the caller's org, newest first.
#[utoipa::path(get, path = "/admin/conversations", tag = "admin", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = AdminConversations), (status = 403)))]
pub async fn conversations(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<AdminConversations>, ApiError> {
    require_admin(&caller)?;
    let limit = q.limit.unwrap_or(500).clamp(1, 2000);
    let conversations = rh_store::conversations::admin_list(&state.db, caller.org(), limit).await?;
    Ok(Json(AdminConversations { conversations }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    conversation_id: Option<Uuid>,
    /// RFC 3339, e.g. `2025-01-31T12:00:00Z`.
    since: Option<String>,
    /// 1-1000, default 200.
    limit: Option<i64>,
}

/// `GET /admin/audit?conversation_id=&since=&limit=` → `{entries:[{id,conversation_id,actor_id,actor_name,action,
/// detail,seq,at}]}`, oldest first (page forward with `since` = the last `at`).
#[utoipa::path(get, path = "/admin/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = AuditEntries), (status = 403)))]
pub async fn audit(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditEntries>, ApiError> {
    require_admin(&caller)?;
    let since = q
        .since
        .as_deref()
        .map(|s| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)))
        .transpose()
        .map_err(|_| ApiError::Validation("since must be an RFC 3339 time, e.g. 2025-01-31T12:00:00Z".into()))?;
    let filter =
        AuditFilter { conversation_id: q.conversation_id, since, limit: q.limit.unwrap_or(200).clamp(1, 1000) };
    let entries = rh_store::audit_log::list(&state.db, caller.org(), &filter).await?;
    Ok(Json(AuditEntries { entries }))
}
