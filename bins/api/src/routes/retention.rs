//! `GET`/`PUT /orgs/{org_id}/retention`: the org's "erase conversations not updated for N days" (admins of that
//! org only; everyone else gets 403). Thin: the rules are [`crate::service::retention`].

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, AuthUser};
use crate::service::retention;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use rh_protocol::admin::RetentionSettings;
use uuid::Uuid;

/// `GET /orgs/{id}/retention` → `{retention_days}` (`null`: off).
#[utoipa::path(get, path = "/orgs/{org_id}/retention", tag = "orgs", security(("bearer" = [])),
    params(("org_id" = Uuid, Path)), responses((status = 200, body = RetentionSettings), (status = 403)))]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(org_id): ApiPath<Uuid>,
) -> Result<Json<RetentionSettings>, ApiError> {
    Ok(Json(retention::get(&state, &caller, org_id).await?))
}

/// `PUT /orgs/{id}/retention {retention_days}` (1-36500, or `null` to turn it off) → the new setting.
#[utoipa::path(put, path = "/orgs/{org_id}/retention", tag = "orgs", security(("bearer" = [])),
    params(("org_id" = Uuid, Path)), request_body = RetentionSettings,
    responses((status = 200, body = RetentionSettings), (status = 403)))]
pub async fn put(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(org_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RetentionSettings>,
) -> Result<Json<RetentionSettings>, ApiError> {
    Ok(Json(retention::set(&state, &caller, org_id, body).await?))
}
