//! `PATCH /conversations/{id}/settings {model?, temperature?, system_prompt?}` (Can Respond or owner).
//! An absent field is unchanged; `null` clears `temperature` / `system_prompt`. Unknown fields are refused, so a
//! typo is not silently ignored.

use crate::domain::{ModelName, SystemPrompt, Temperature};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, AuthUser};
use crate::service;
use crate::service::conversations::SettingsPatch;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use uuid::Uuid;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    #[serde(default)]
    model: Option<String>,
    #[serde(default, deserialize_with = "present")]
    temperature: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    system_prompt: Option<Option<String>>,
}

/// → 200 `{model, temperature, system_prompt, changed:[field...], seq?}` (`seq` of `settings.changed` when
/// something changed).
pub async fn update(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<Json<Value>, ApiError> {
    let (_, permission) = service::access::authorize(&state, id, caller.id()).await?;
    service::access::require_respond(permission, "change the model or settings")?;
    let patch = SettingsPatch {
        model: body.model.as_deref().map(ModelName::parse).transpose().map_err(ApiError::Validation)?,
        temperature: body
            .temperature
            .map(|t| t.map(Temperature::parse).transpose())
            .transpose()
            .map_err(ApiError::Validation)?,
        system_prompt: body
            .system_prompt
            .map(|p| SystemPrompt::parse(p.as_deref()))
            .transpose()
            .map_err(ApiError::Validation)?,
    };
    let (conversation, changed, seq) =
        service::conversations::update_settings(&state, caller.id(), caller.name(), id, patch).await?;
    Ok(Json(json!({
        "model": conversation.model,
        "temperature": conversation.temperature,
        "system_prompt": conversation.system_prompt,
        "changed": changed,
        "seq": seq,
    })))
}
