//! The sharing panel: who has access (any participant may look), and changes to it (owner only).

use crate::domain::SharePermission;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, AuthUser};
use crate::service;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rh_store::shares::Participant;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

fn participant_json(p: &Participant) -> Value {
    json!({
        "user_id": p.user_id, "name": p.name, "email": p.email, "permission": p.permission, "expires_at": p.expires_at,
    })
}

fn list_json(list: &[Participant]) -> Value {
    json!({ "shares": list.iter().map(participant_json).collect::<Vec<_>>() })
}

/// `GET /conversations/{id}/shares` → `{shares:[{user_id,name,email,permission}]}`.
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    service::access::authorize(&state, id, caller.id()).await?;
    Ok(Json(list_json(&rh_store::shares::list(&state.db, id).await?)))
}

#[derive(Deserialize)]
pub struct ShareEntry {
    user_id: Uuid,
    permission: String,
    /// RFC 3339; the share ends by itself then, like a revoke. Absent or null: until revoked.
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
pub struct AddBody {
    shares: Vec<ShareEntry>,
}

/// `POST /conversations/{id}/shares {shares:[{user_id,permission,expires_at?}]}` → 200 with every participant
/// afterwards. `expires_at` (RFC 3339, in the future) ends the share by itself then, exactly like a revoke.
pub async fn add(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AddBody>,
) -> Result<Json<Value>, ApiError> {
    let (_, permission) = service::access::authorize(&state, id, caller.id()).await?;
    service::access::require_owner(permission, "share it")?;
    let targets = body
        .shares
        .iter()
        .map(|s| {
            SharePermission::parse(&s.permission).map(|permission| service::shares::ShareTarget {
                user_id: s.user_id,
                permission,
                expires_at: s.expires_at,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::Validation)?;
    let list = service::shares::share_many(&state, caller.id(), id, &targets).await?;
    Ok(Json(list_json(&list)))
}

#[derive(Deserialize)]
pub struct ChangeBody {
    permission: String,
}

/// `PATCH /conversations/{id}/shares/{user_id} {permission}` → 200 the participant.
pub async fn change(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<ChangeBody>,
) -> Result<Json<Value>, ApiError> {
    let (_, permission) = service::access::authorize(&state, id, caller.id()).await?;
    service::access::require_owner(permission, "change who has access")?;
    let permission = SharePermission::parse(&body.permission).map_err(ApiError::Validation)?;
    let participant = service::shares::change(&state, caller.id(), id, user_id, permission).await?;
    Ok(Json(participant_json(&participant)))
}

/// `DELETE /conversations/{id}/shares/{user_id}` → 204: the owner revokes someone's access, or a participant leaves
/// (their own `user_id`). The owner has no share to leave (404).
pub async fn revoke(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    service::shares::revoke(&state, caller.id(), id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
