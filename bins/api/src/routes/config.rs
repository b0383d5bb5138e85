//! `GET /api/v1/config`: what a browser needs before logging in (where the edge's WebSocket is).

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use rh_protocol::api::ClientConfig;

#[utoipa::path(get, path = "/config", tag = "meta", responses((status = 200, body = ClientConfig)))]
pub async fn get_config(State(state): State<AppState>) -> Json<ClientConfig> {
    Json(ClientConfig { ws_url: state.settings.public_ws_url.clone() })
}
