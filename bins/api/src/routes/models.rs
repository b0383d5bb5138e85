//! `GET /models`: what the worker pool serves and the default of a new conversation ([`service::models`]).
//!
//! When no worker answers in time (none running, or all busy), the answer is still 200 with what the pool served
//! last (or, if no worker ever answered, the configured `--default-model` with `provider: "default"`) and
//! `"workers": false`, so a client can always render its model picker and a message sent meanwhile simply waits in
//! `RH_JOBS` for a worker.

use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::service;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use rh_protocol::api::ModelsReply;

#[utoipa::path(get, path = "/models", tag = "models", security(("bearer" = [])),
    responses((status = 200, body = ModelsReply)))]
pub async fn list(State(state): State<AppState>, _caller: AuthUser) -> Result<Json<ModelsReply>, ApiError> {
    let served = service::models::served(&state).await;
    Ok(Json(ModelsReply { models: served.models, default: served.default, workers: served.workers }))
}
