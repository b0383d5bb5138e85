//! The sharing panel: who has access (any participant may look), and changes to it (owner only).

use crate::domain::SharePermission;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, AuthUser};
use crate::service;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rh_protocol::api::conversations::{ShareChange, ShareList, ShareRequest};
use rh_store::shares::Participant;
use uuid::Uuid;

fn share_list(list: &[Participant]) -> ShareList {
    ShareList { shares: list.iter().map(Into::into).collect() }
}

/// `GET /conversations/{id}/shares` → `{shares:[{user_id,name,email,permission}]}`.
#[utoipa::path(get, path = "/conversations/{id}/shares", tag = "shares", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = ShareList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ShareList>, ApiError> {
    service::access::authorize(&state, id, caller.id()).await?;
    Ok(Json(share_list(&rh_store::shares::list(&state.db, id).await?)))
}

/// `POST /conversations/{id}/shares {shares:[{user_id,permission,expires_at?}]}` → 200 with every participant
/// afterwards. `expires_at` (RFC 3339, in the future) ends the share by itself then, exactly like a revoke.
#[utoipa::path(post, path = "/conversations/{id}/shares", tag = "shares", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ShareRequest, responses((status = 200, body = ShareList), (status = 403)))]
pub async fn add(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ShareRequest>,
) -> Result<Json<ShareList>, ApiError> {
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
    Ok(Json(share_list(&list)))
}

/// `PATCH /conversations/{id}/shares/{user_id} {permission}` → 200 the participant.
#[utoipa::path(patch, path = "/conversations/{id}/shares/{user_id}", tag = "shares", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = ShareChange,
    responses((status = 200, body = rh_protocol::api::conversations::Participant), (status = 403)))]
pub async fn change(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<ShareChange>,
) -> Result<Json<rh_protocol::api::conversations::Participant>, ApiError> {
    let (_, permission) = service::access::authorize(&state, id, caller.id()).await?;
    service::access::require_owner(permission, "change who has access")?;
    let permission = SharePermission::parse(&body.permission).map_err(ApiError::Validation)?;
    let participant = service::shares::change(&state, caller.id(), id, user_id, permission).await?;
    Ok(Json((&participant).into()))
}

/// `DELETE /conversations/{id}/shares/{user_id}` → 204: the owner revokes someone's access, or a participant leaves
/// (their own `user_id`). The owner has no share to leave (404).
#[utoipa::path(delete, path = "/conversations/{id}/shares/{user_id}", tag = "shares", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)), responses((status = 204, description = "Revoked"), (status = 403)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    service::shares::revoke(&state, caller.id(), id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
