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
use rh_protocol::rpc::{ModelInfo, ModelList};
use rh_protocol::subjects;
use serde_json::{Value, json};
use std::time::Duration;

pub async fn list(State(state): State<AppState>, _caller: AuthUser) -> Result<Json<Value>, ApiError> {
    let timeout = Duration::from_millis(state.settings.models_timeout_ms);
    match rh_bus::request::<_, ModelList>(&state.nats, subjects::WORKER_MODELS, &json!({}), timeout).await {
        Ok(list) => {
            Ok(Json(json!({ "models": list.models, "default": state.settings.default_model, "workers": true })))
        }
        Err(e) => {
            tracing::debug!(error = %e, "no worker listed its models; answering with the default model");
            let fallback = ModelInfo { id: state.settings.default_model.clone(), provider: "default".into() };
            Ok(Json(json!({ "models": [fallback], "default": state.settings.default_model, "workers": false })))
        }
    }
}
