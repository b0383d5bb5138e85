//! The sharing panel: who has access (any participant may look), and changes to it (owner only).

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, AuthUser};
use crate::service;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rh_protocol::api::conversations::{ShareChange, ShareList, ShareRequest};
use uuid::Uuid;

/// `GET /conversations/{id}/shares` → `{shares:[{user_id,name,email,permission}]}`.
#[utoipa::path(get, path = "/conversations/{id}/shares", tag = "shares", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = ShareList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ShareList>, ApiError> {
    Ok(Json(service::shares::list(&state, caller.id(), id).await?))
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
    Ok(Json(service::shares::share(&state, caller.id(), id, &body).await?))
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
    Ok(Json(service::shares::change(&state, caller.id(), id, user_id, &body).await?))
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
