//! Invitations (org admins create, list, revoke; the invited person looks one up and joins) and changing one's own
//! password. Thin: the rules are [`crate::service::invites`] and [`crate::service::members`].

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, AuthUser, ClientAddr};
use crate::service;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rh_protocol::auth::Tokens;
use rh_protocol::invites::{
    AcceptInviteRequest, ChangePasswordRequest, CreateInvitesRequest, CreatedInvites, InviteList, InviteLookup,
    InviteLookupRequest,
};
use uuid::Uuid;

/// `POST /orgs/{id}/invites {emails?, role?, expires_in_hours?}` → 201 [`CreatedInvites`] (org admins).
#[utoipa::path(post, path = "/orgs/{org_id}/invites", tag = "invites", security(("bearer" = [])),
    params(("org_id" = Uuid, Path)), request_body = CreateInvitesRequest,
    responses((status = 201, body = CreatedInvites), (status = 403)))]
pub async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(org_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateInvitesRequest>,
) -> Result<(StatusCode, Json<CreatedInvites>), ApiError> {
    Ok((StatusCode::CREATED, Json(service::invites::create(&state, &caller, org_id, &body).await?)))
}

/// `GET /orgs/{id}/invites` → [`InviteList`] (org admins).
#[utoipa::path(get, path = "/orgs/{org_id}/invites", tag = "invites", security(("bearer" = [])),
    params(("org_id" = Uuid, Path)), responses((status = 200, body = InviteList), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(org_id): ApiPath<Uuid>,
) -> Result<Json<InviteList>, ApiError> {
    Ok(Json(service::invites::list(&state, &caller, org_id).await?))
}

/// `DELETE /orgs/{id}/invites/{invite_id}` → 204 (org admins); 409 when it was used.
#[utoipa::path(delete, path = "/orgs/{org_id}/invites/{invite_id}", tag = "invites", security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("invite_id" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 403), (status = 409)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((org_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    service::invites::revoke(&state, &caller, org_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /invites/lookup {token}` → [`InviteLookup`] (no sign-in); 404 with why for a used, expired, revoked or
/// unknown invite.
#[utoipa::path(post, path = "/invites/lookup", tag = "invites", request_body = InviteLookupRequest,
    responses((status = 200, body = InviteLookup), (status = 404), (status = 429)))]
pub async fn lookup(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<InviteLookupRequest>,
) -> Result<Json<InviteLookup>, ApiError> {
    Ok(Json(service::invites::lookup(&state, addr, &body.token).await?))
}

/// `POST /invites/accept {token, name, password, email?}` → [`Tokens`]: the new account, signed in.
#[utoipa::path(post, path = "/invites/accept", tag = "invites", request_body = AcceptInviteRequest,
    responses((status = 200, body = Tokens), (status = 404), (status = 409), (status = 429)))]
pub async fn accept(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<AcceptInviteRequest>,
) -> Result<Json<Tokens>, ApiError> {
    Ok(Json(service::invites::accept(&state, addr, &body).await?))
}

/// `PUT /me/password {current_password, new_password}` → 204: the caller's other sessions end.
#[utoipa::path(put, path = "/me/password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 204, description = "Changed; the caller's other sessions ended"), (status = 429)))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    service::members::change_own_password(&state, &caller, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}
