//! Sign-up (a new org and its admin), adding, removing members and resetting their passwords (org admins).

use super::auth::hash_password;
use crate::domain::{Email, OrgName, Password, PersonName};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, AuthUser, ClientAddr};
use crate::service::{limits, sso};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rh_protocol::api::{NewMemberRequest, PasswordRequest, SignUpAccepted, SignUpRequest};
use rh_protocol::auth::SessionUser;
use rh_store::StoreError;
use rh_store::orgs::{NewUser, Org};
use uuid::Uuid;

/// `POST /orgs {org_name,name,email,password}` → 202 `{message}`: a new org with this person as its admin — unless
/// the email is taken, when nothing is created. Both answer the same (and both hash the password first, so they
/// take as long): sign-up does not tell anyone which emails have accounts. The client signs in next; with a taken
/// email that fails like any wrong password. `SECURITY.md` has the trade-off. Counted as a sign-in attempt
/// ([`limits::sign_in_attempt`]) before the hash.
#[utoipa::path(post, path = "/orgs", tag = "orgs", request_body = SignUpRequest,
    responses((status = 202, body = SignUpAccepted), (status = 403), (status = 429)))]
pub async fn sign_up(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<SignUpRequest>,
) -> Result<(StatusCode, Json<SignUpAccepted>), ApiError> {
    let org_name = OrgName::parse(&body.org_name).map_err(ApiError::Validation)?;
    let name = PersonName::parse(&body.name).map_err(ApiError::Validation)?;
    let email = Email::parse(&body.email).map_err(ApiError::Validation)?;
    let password = Password::parse(&body.password).map_err(ApiError::Validation)?;
    limits::sign_in_attempt(&state, addr, email.as_str()).await?;
    // Says only what `GET /auth/sso?email=` says: this domain signs in with its organization's provider.
    sso::check_password_allowed_for_email(&state, email.as_str()).await?;
    let hash = hash_password(&state, password.expose().to_owned()).await?;
    let org = Org { id: Uuid::now_v7(), name: org_name.as_str().to_owned() };
    let admin = NewUser {
        id: Uuid::now_v7(),
        org_id: org.id,
        name: name.as_str(),
        email: email.as_str(),
        password_hash: &hash,
        role: "admin",
    };
    match rh_store::orgs::create_org_with_admin(&state.db, &org, &admin).await {
        Ok(user) => tracing::info!(org_id = %org.id, user_id = %user.id, "org created"),
        Err(StoreError::Conflict(_)) => tracing::info!("sign-up with a registered email: nothing created"),
        Err(e) => return Err(e.into()),
    }
    let message = "If this email has no account yet, your organization is ready: sign in with it.".to_owned();
    Ok((StatusCode::ACCEPTED, Json(SignUpAccepted { message })))
}

/// `POST /orgs/{id}/members {name,email,password,role?}` → 201 user. Only an admin of that org; 403 `passwords_off`
/// when the org signs in with its provider only (invite people instead: they join by single sign-on).
#[utoipa::path(post, path = "/orgs/{org_id}/members", tag = "orgs", security(("bearer" = [])),
    params(("org_id" = Uuid, Path)), request_body = NewMemberRequest,
    responses((status = 201, body = SessionUser), (status = 403), (status = 409)))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(org_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewMemberRequest>,
) -> Result<(StatusCode, Json<SessionUser>), ApiError> {
    Ok((StatusCode::CREATED, Json(crate::service::members::add(&state, &caller, org_id, &body).await?)))
}

/// `DELETE /orgs/{id}/members/{user_id}` → 204: the member can no longer sign in; their sessions and sockets end.
#[utoipa::path(delete, path = "/orgs/{org_id}/members/{user_id}", tag = "orgs", security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Removed"), (status = 403)))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((org_id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    crate::service::members::remove(&state, &caller, org_id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /orgs/{id}/members/{user_id}/password {password}` → 204: a new password; the member's sessions end.
#[utoipa::path(put, path = "/orgs/{org_id}/members/{user_id}/password", tag = "orgs", security(("bearer" = [])),
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = PasswordRequest,
    responses((status = 204, description = "Changed; the member's sessions ended"), (status = 403)))]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((org_id, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<PasswordRequest>,
) -> Result<StatusCode, ApiError> {
    crate::service::members::reset_password(&state, &caller, org_id, user_id, &body.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
