//! `GET /api/v1/config`: what a browser needs before logging in (where the edge's WebSocket is).

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub async fn get_config(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "ws_url": state.settings.public_ws_url }))
}
