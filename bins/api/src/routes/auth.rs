//! Login and "who am I".

use crate::error::ApiError;
use crate::extract::{ApiJson, AuthUser};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use rh_auth::{Claims, Role};
use rh_store::orgs::User;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::OnceLock;

#[derive(Deserialize)]
pub struct LoginBody {
    email: String,
    password: String,
}

/// Issues a token for `user`.
fn issue_token(state: &AppState, user: &User) -> Result<String, ApiError> {
    let role: Role = user.role.parse().map_err(|_| ApiError::Internal(anyhow::anyhow!("bad role {}", user.role)))?;
    let claims = Claims {
        sub: user.id,
        org: user.org_id,
        name: user.name.clone(),
        email: user.email.clone(),
        role,
        exp: rh_auth::expiry_in(state.settings.token_ttl_secs),
    };
    state.keys.issue(&claims).map_err(|e| ApiError::Internal(e.into()))
}

/// A hash no password matches, verified when the email is unknown so that both failures take as long.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| rh_auth::hash_password("relayhub-no-such-user").unwrap_or_default())
}

/// Argon2 is deliberately slow: verify on the blocking pool, not on a runtime thread.
pub async fn verify_password(password: String, hash: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || rh_auth::verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

/// Hashes on the blocking pool.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || rh_auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(e.into()))
}

/// `POST /auth/login {email,password}` → `{token, user}`; 401 for an unknown email or a wrong password (the same
/// answer for both).
pub async fn login(State(state): State<AppState>, ApiJson(body): ApiJson<LoginBody>) -> Result<Json<Value>, ApiError> {
    let wrong = || ApiError::Unauthorized("wrong email or password".into());
    let email = body.email.trim().to_lowercase();
    let found = rh_store::orgs::user_for_login(&state.db, &email).await?;
    let Some((user, hash)) = found else {
        let _ = verify_password(body.password, dummy_hash().to_owned()).await;
        return Err(wrong());
    };
    if !verify_password(body.password, hash).await? {
        return Err(wrong());
    }
    let token = issue_token(&state, &user)?;
    Ok(Json(json!({ "token": token, "user": user_json(&user) })))
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
