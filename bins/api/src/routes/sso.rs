//! Single sign-on: the org's provider (`GET/PUT/DELETE /orgs/{id}/sso`, org admins), discovery by email domain
//! (`GET /auth/sso?email=`) and the sign-in (`POST /auth/sso/start`, `POST /auth/sso/callback`). Thin: the rules
//! are [`crate::service::sso`] and [`crate::service::sso_login`].

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, AuthUser, ClientAddr};
use crate::service::{sso, sso_login};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rh_protocol::auth::Tokens;
use rh_protocol::sso::{SsoCallbackRequest, SsoConfig, SsoConfigRequest, SsoDiscovery, SsoStart, SsoStartRequest};
use serde::Deserialize;
use uuid::Uuid;

/// `GET /orgs/{id}/sso` → [`SsoConfig`] (org admins; never the client secret); 404 when there is none.
#[utoipa::path(get, path = "/orgs/{org_id}/sso", tag = "sso", security(("bearer" = [])),
    params(("org_id" = Uuid, Path)), responses((status = 200, body = SsoConfig), (status = 403)))]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(org_id): ApiPath<Uuid>,
) -> Result<Json<SsoConfig>, ApiError> {
    Ok(Json(sso::get(&state, &caller, org_id).await?))
}

/// `PUT /orgs/{id}/sso` [`SsoConfigRequest`] → [`SsoConfig`] (org admins). The provider must answer its discovery
/// document (502 `sso_provider_unavailable`); 409 for a domain another org claimed or has people at.
#[utoipa::path(put, path = "/orgs/{org_id}/sso", tag = "sso", security(("bearer" = [])),
    params(("org_id" = Uuid, Path)), request_body = SsoConfigRequest,
    responses((status = 200, body = SsoConfig), (status = 403), (status = 409), (status = 502)))]
pub async fn put(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(org_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SsoConfigRequest>,
) -> Result<Json<SsoConfig>, ApiError> {
    Ok(Json(sso::put(&state, &caller, org_id, &body).await?))
}

/// `DELETE /orgs/{id}/sso` → 204 (org admins): passwords work again.
#[utoipa::path(delete, path = "/orgs/{org_id}/sso", tag = "sso", security(("bearer" = [])),
    params(("org_id" = Uuid, Path)), responses((status = 204, description = "Single sign-on is off"), (status = 403)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(org_id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    sso::delete(&state, &caller, org_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiscoveryQuery {
    /// The address being signed in with (only its domain is looked at).
    email: String,
}

/// `GET /auth/sso?email=` → [`SsoDiscovery`]: the org provider the email's domain signs in with, if any. The same
/// answer for every address at a domain, whether or not it has an account.
#[utoipa::path(get, path = "/auth/sso", tag = "sso", params(DiscoveryQuery), responses((status = 200, body = SsoDiscovery)))]
pub async fn discovery(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DiscoveryQuery>,
) -> Result<Json<SsoDiscovery>, ApiError> {
    Ok(Json(sso::discovery(&state, &query.email).await?))
}

/// `POST /auth/sso/start {org_id}` → [`SsoStart`]: send the browser to `authorize_url`, keep `browser_key`.
#[utoipa::path(post, path = "/auth/sso/start", tag = "sso", request_body = SsoStartRequest,
    responses((status = 200, body = SsoStart), (status = 404), (status = 429), (status = 502)))]
pub async fn start(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<SsoStartRequest>,
) -> Result<Json<SsoStart>, ApiError> {
    Ok(Json(sso_login::start(&state, addr, &body).await?))
}

/// `POST /auth/sso/callback {code, state, browser_key}` → [`Tokens`]. Refused with a code that says why:
/// `sso_state_invalid` (400), `sso_code_rejected`, `sso_token_audience`, `sso_token_expired`, `sso_token_replayed`,
/// `sso_token_invalid` (401), `sso_email_unverified`, `sso_domain_not_allowed`, `sso_account_bound` (403),
/// `sso_provider_unavailable` (502); 409 when the same identity was bound to another account at that moment.
#[utoipa::path(post, path = "/auth/sso/callback", tag = "sso", request_body = SsoCallbackRequest,
    responses((status = 200, body = Tokens), (status = 401), (status = 403), (status = 409), (status = 502)))]
pub async fn callback(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SsoCallbackRequest>,
) -> Result<Json<Tokens>, ApiError> {
    Ok(Json(sso_login::callback(&state, &body).await?))
}
