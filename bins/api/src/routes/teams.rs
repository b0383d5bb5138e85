//! Teams (org admins change them, members list them) and sharing a conversation with a team (its owner). Thin:
//! the rules are [`crate::service::teams`].

use crate::domain::SharePermission;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, AuthUser};
use crate::service::teams;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rh_protocol::teams::{AddTeamMembersRequest, CreateTeamRequest, Team, TeamList, TeamShareList, TeamShareRequest};
use uuid::Uuid;

/// `GET /orgs/{id}/teams` → [`TeamList`] (any member of the org).
#[utoipa::path(get, path = "/orgs/{org_id}/teams", tag = "teams", security(("bearer" = [])),
    params(("org_id" = Uuid, Path)), responses((status = 200, body = TeamList), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(org_id): ApiPath<Uuid>,
) -> Result<Json<TeamList>, ApiError> {
    Ok(Json(teams::list(&state, &caller, org_id).await?))
}

/// `POST /orgs/{id}/teams {name}` → 201 [`Team`] (org admins); 409 when the org has a team of that name.
#[utoipa::path(post, path = "/orgs/{org_id}/teams", tag = "teams", security(("bearer" = [])),
    params(("org_id" = Uuid, Path)), request_body = CreateTeamRequest,
    responses((status = 201, body = Team), (status = 403), (status = 409)))]
pub async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(org_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateTeamRequest>,
) -> Result<(StatusCode, Json<Team>), ApiError> {
    Ok((StatusCode::CREATED, Json(teams::create(&state, &caller, org_id, &body.name).await?)))
}

/// `GET /orgs/{id}/teams/{team_id}` → [`Team`] (any member of the org).
#[utoipa::path(get, path = "/orgs/{org_id}/teams/{team_id}", tag = "teams", security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("team_id" = Uuid, Path)), responses((status = 200, body = Team), (status = 403)))]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((org_id, team_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Team>, ApiError> {
    Ok(Json(teams::get(&state, &caller, org_id, team_id).await?))
}

/// `DELETE /orgs/{id}/teams/{team_id}` → 204 (org admins).
#[utoipa::path(delete, path = "/orgs/{org_id}/teams/{team_id}", tag = "teams", security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("team_id" = Uuid, Path)),
    responses((status = 204, description = "Deleted; its members lose what only the team gave them"), (status = 403)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((org_id, team_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    teams::delete(&state, &caller, org_id, team_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /orgs/{id}/teams/{team_id}/members {user_ids}` → [`Team`] (org admins).
#[utoipa::path(post, path = "/orgs/{org_id}/teams/{team_id}/members", tag = "teams", security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("team_id" = Uuid, Path)), request_body = AddTeamMembersRequest,
    responses((status = 200, body = Team), (status = 403)))]
pub async fn add_members(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((org_id, team_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<AddTeamMembersRequest>,
) -> Result<Json<Team>, ApiError> {
    Ok(Json(teams::add_members(&state, &caller, org_id, team_id, &body.user_ids).await?))
}

/// `DELETE /orgs/{id}/teams/{team_id}/members/{user_id}` → 204 (org admins).
#[utoipa::path(delete, path = "/orgs/{org_id}/teams/{team_id}/members/{user_id}", tag = "teams",
    security(("bearer" = [])), params(("org_id" = Uuid, Path), ("team_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Removed from the team"), (status = 403)))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((org_id, team_id, user_id)): ApiPath<(Uuid, Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    teams::remove_member(&state, &caller, org_id, team_id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /conversations/{id}/teams` → [`TeamShareList`] (anyone who may see the conversation).
#[utoipa::path(get, path = "/conversations/{id}/teams", tag = "shares", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = TeamShareList)))]
pub async fn shares(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TeamShareList>, ApiError> {
    Ok(Json(teams::shares(&state, caller.id(), id).await?))
}

/// `PUT /conversations/{id}/teams/{team_id} {permission}` → [`TeamShareList`] (the owner): share with the team or
/// change its permission.
#[utoipa::path(put, path = "/conversations/{id}/teams/{team_id}", tag = "shares", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("team_id" = Uuid, Path)), request_body = TeamShareRequest,
    responses((status = 200, body = TeamShareList), (status = 403)))]
pub async fn share(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((id, team_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<TeamShareRequest>,
) -> Result<Json<TeamShareList>, ApiError> {
    let permission = SharePermission::parse(&body.permission).map_err(ApiError::Validation)?;
    Ok(Json(teams::share(&state, caller.id(), id, team_id, permission).await?))
}

/// `DELETE /conversations/{id}/teams/{team_id}` → 204 (the owner).
#[utoipa::path(delete, path = "/conversations/{id}/teams/{team_id}", tag = "shares", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("team_id" = Uuid, Path)),
    responses((status = 204, description = "No longer shared with the team"), (status = 403)))]
pub async fn unshare(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((id, team_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    teams::unshare(&state, caller.id(), id, team_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
