//! `PATCH /conversations/{id}/settings {model?, temperature?, system_prompt?}` (Can Respond or owner).
//! An absent field is unchanged; `null` clears `temperature` / `system_prompt`. Unknown fields are refused, so a
//! typo is not silently ignored.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, AuthUser};
use crate::service;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use rh_protocol::api::conversations::{SettingsChanged, SettingsPatchRequest};
use uuid::Uuid;

/// → 200 `{model, temperature, system_prompt, changed:[field...], seq?}` (`seq` of `settings.changed` when
/// something changed).
#[utoipa::path(patch, path = "/conversations/{id}/settings", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = SettingsPatchRequest,
    responses((status = 200, body = SettingsChanged), (status = 403), (status = 422)))]
pub async fn update(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SettingsPatchRequest>,
) -> Result<Json<SettingsChanged>, ApiError> {
    Ok(Json(service::conversations::update_settings(&state, caller.id(), caller.name(), id, &body).await?))
}
