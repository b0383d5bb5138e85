//! Org admin views: conversation metadata and the audit log. Thin: the rules are [`crate::service::admin`].

use crate::error::ApiError;
use crate::extract::{ApiQuery, AuthUser};
use crate::service;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use rh_protocol::api::admin::{AdminConversations, AuditEntries};
use serde::Deserialize;
use uuid::Uuid;

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
    Ok(Json(service::admin::conversations(&state, &caller, q.limit).await?))
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
    Ok(Json(service::admin::audit(&state, &caller, q.conversation_id, q.since.as_deref(), q.limit).await?))
}
