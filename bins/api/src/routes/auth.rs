//! Login, refresh, logout and "who am I" (thin: the sessions are [`crate::service::sessions`]).

use crate::error::ApiError;
use crate::extract::{ApiJson, AuthUser, ClientAddr};
use crate::service::{limits, sessions, sso};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rh_protocol::api::Me;
use rh_protocol::auth::{LoginRequest, RefreshRequest, SessionUser, SocketTicket, Tokens};
use rh_store::orgs::User;
use std::sync::OnceLock;

/// A hash no password matches, verified when the email is unknown so that both failures take as long.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| rh_auth::hash_password("relayhub-no-such-user").unwrap_or_default())
}

/// Argon2 is deliberately slow and holds ~19 MiB: verify on the blocking pool, within the process's bound
/// ([`limits::password_hash`]).
pub async fn verify_password(state: &AppState, password: String, hash: String) -> Result<bool, ApiError> {
    limits::password_hash(state, move || rh_auth::verify_password(&password, &hash)).await
}

/// Hashes on the blocking pool, within the same bound.
pub async fn hash_password(state: &AppState, password: String) -> Result<String, ApiError> {
    limits::password_hash(state, move || rh_auth::hash_password(&password))
        .await?
        .map_err(|e| ApiError::Internal(e.into()))
}

/// `POST /auth/login {email,password}` → [`Tokens`] (a new session); 401 for an unknown email or a wrong password
/// (the same answer for both); 429 past the sign-in limits ([`limits::sign_in_attempt`]); 403 `passwords_off` when
/// the email's domain or the person's org signs in with its identity provider only.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Tokens), (status = 401), (status = 403), (status = 429)))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<Tokens>, ApiError> {
    let wrong = || ApiError::Unauthorized("wrong email or password".into());
    let email = body.email.trim().to_lowercase();
    limits::sign_in_attempt(&state, addr, &email).await?;
    sso::check_password_allowed_for_email(&state, &email).await?;
    let found = rh_store::orgs::user_for_login(&state.db, &email).await?;
    let Some((user, hash)) = found else {
        verify_password(&state, body.password, dummy_hash().to_owned()).await?;
        return Err(wrong());
    };
    if !verify_password(&state, body.password, hash).await? {
        return Err(wrong());
    }
    // Also people whose address is at no domain of the org (an invited contractor): the org said no passwords.
    sso::check_password_allowed_in_org(&state, user.org_id).await?;
    Ok(Json(sessions::open(&state, &user).await?))
}

/// `POST /auth/refresh {refresh_token}` → [`Tokens`] (the refresh token rotates); 401 when it is unknown, expired,
/// its session ended, or it was used before (which also ends the session) — except within
/// `--refresh-reuse-grace-secs` of that use while its successor is unused: then the same successor again.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Tokens), (status = 401)))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<Tokens>, ApiError> {
    Ok(Json(sessions::refresh(&state, &body.refresh_token).await?))
}

/// `POST /auth/logout` → 204: ends the caller's session (its tokens are refused from now on, its sockets close).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "The session ended")))]
pub async fn logout(State(state): State<AppState>, caller: AuthUser) -> Result<StatusCode, ApiError> {
    sessions::end(&state, caller.id(), caller.session()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /me`: the caller, fresh from the directory, with their org's name.
#[utoipa::path(get, path = "/me", tag = "auth", security(("bearer" = [])), responses((status = 200, body = Me)))]
pub async fn me(State(state): State<AppState>, caller: AuthUser) -> Result<Json<Me>, ApiError> {
    // A database error stays a 503 (the client keeps its session through a blip); a vanished account is a 401.
    let user = rh_store::orgs::user(&state.db, caller.id()).await.map_err(|e| match e {
        rh_store::StoreError::NotFound => ApiError::Unauthorized("this account no longer exists".into()),
        other => other.into(),
    })?;
    let org = rh_store::orgs::org(&state.db, user.org_id).await?;
    let User { id, org_id, name, email, role, .. } = user;
    Ok(Json(Me { id, org_id, name, email, role, org_name: org.name }))
}

/// The public shape of a person: `{id, org_id, name, email, role}`.
pub fn public_user(user: User) -> SessionUser {
    let User { id, org_id, name, email, role, .. } = user;
    SessionUser { id, org_id, name, email, role }
}

/// `POST /auth/ticket` → [`SocketTicket`]: a one-time ticket for `GET /ws?ticket=` (30 s, only while the session
/// is open), so the access token never rides in a URL.
#[utoipa::path(post, path = "/auth/ticket", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = SocketTicket)))]
pub async fn ticket(State(state): State<AppState>, caller: AuthUser) -> Result<Json<SocketTicket>, ApiError> {
    Ok(Json(sessions::ticket(&state, &caller.0).await?))
}
