//! `GET /models`: what the worker pool serves, asked over `rh.worker.models`.
//!
//! When no worker answers in time (none running, or all busy), the answer is still 200 with the configured
//! default model (`provider: "default"`) and `"workers": false`, so a client can always render its model picker
//! and a message sent meanwhile simply waits in `RH_JOBS` for a worker.

use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use rh_protocol::api::ModelsReply;
use rh_protocol::rpc::{ModelInfo, ModelList, ModelsQuery};
use rh_protocol::subjects;
use std::time::Duration;

#[utoipa::path(get, path = "/models", tag = "models", security(("bearer" = [])),
    responses((status = 200, body = ModelsReply)))]
pub async fn list(State(state): State<AppState>, _caller: AuthUser) -> Result<Json<ModelsReply>, ApiError> {
    let timeout = Duration::from_millis(state.settings.models_timeout_ms);
    let default = state.settings.default_model.clone();
    match rh_bus::request::<_, ModelList>(&state.nats, subjects::WORKER_MODELS, &ModelsQuery {}, timeout).await {
        Ok(list) => Ok(Json(ModelsReply { models: list.models, default, workers: true })),
        Err(e) => {
            tracing::debug!(error = %e, "no worker listed its models; answering with the default model");
            let fallback = ModelInfo { id: default.clone(), provider: "default".into() };
            Ok(Json(ModelsReply { models: vec![fallback], default, workers: false }))
        }
    }
}
