//! Login, refresh, logout and "who am I" (thin: the sessions are [`crate::service::sessions`]).

use crate::error::ApiError;
use crate::extract::{ApiJson, AuthUser, ClientAddr};
use crate::service::{limits, sessions};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rh_protocol::auth::{LoginRequest, RefreshRequest, SocketTicket, Tokens};
use rh_store::orgs::User;
use serde_json::{Value, json};
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
/// (the same answer for both); 429 past the sign-in limits ([`limits::sign_in_attempt`]).
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<Tokens>, ApiError> {
    let wrong = || ApiError::Unauthorized("wrong email or password".into());
    let email = body.email.trim().to_lowercase();
    limits::sign_in_attempt(&state, addr, &email).await?;
    let found = rh_store::orgs::user_for_login(&state.db, &email).await?;
    let Some((user, hash)) = found else {
        verify_password(&state, body.password, dummy_hash().to_owned()).await?;
        return Err(wrong());
    };
    if !verify_password(&state, body.password, hash).await? {
        return Err(wrong());
    }
    Ok(Json(sessions::open(&state, &user).await?))
}

/// `POST /auth/refresh {refresh_token}` → [`Tokens`] (the refresh token rotates); 401 when it is unknown, expired,
/// its session ended, or it was used before (which also ends the session).
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<Tokens>, ApiError> {
    Ok(Json(sessions::refresh(&state, &body.refresh_token).await?))
}

/// `POST /auth/logout` → 204: ends the caller's session (its tokens are refused from now on, its sockets close).
pub async fn logout(State(state): State<AppState>, caller: AuthUser) -> Result<StatusCode, ApiError> {
    sessions::end(&state, caller.id(), caller.session()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /me`: the caller, fresh from the directory, with their org's name.
pub async fn me(State(state): State<AppState>, caller: AuthUser) -> Result<Json<Value>, ApiError> {
    // A database error stays a 503 (the client keeps its session through a blip); a vanished account is a 401.
    let user = rh_store::orgs::user(&state.db, caller.id()).await.map_err(|e| match e {
        rh_store::StoreError::NotFound => ApiError::Unauthorized("this account no longer exists".into()),
        other => other.into(),
    })?;
    let org = rh_store::orgs::org(&state.db, user.org_id).await?;
    let mut v = user_json(&user);
    v["org_name"] = json!(org.name);
    Ok(Json(v))
}

/// The public shape of a person: `{id, org_id, name, email, role}`.
pub fn user_json(user: &User) -> Value {
    json!({ "id": user.id, "org_id": user.org_id, "name": user.name, "email": user.email, "role": user.role })
}

/// `POST /auth/ticket` → [`SocketTicket`]: a one-time ticket for `GET /ws?ticket=` (30 s, only while the session
/// is open), so the access token never rides in a URL.
pub async fn ticket(State(state): State<AppState>, caller: AuthUser) -> Result<Json<SocketTicket>, ApiError> {
    Ok(Json(sessions::ticket(&state, &caller.0).await?))
}
