//! Sending a message (starts an AI response) and stopping a response.

use crate::domain::MessageText;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, AuthUser};
use crate::service;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rh_protocol::rpc::MessageAccepted;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Deserialize)]
pub struct SendBody {
    text: String,
    client_msg_id: Option<String>,
    /// Longest reply in tokens (default and bound: `--default-max-tokens`, `--max-tokens-limit`).
    max_tokens: Option<u32>,
}

/// `POST /conversations/{id}/messages {text, client_msg_id?, max_tokens?}` → 202 `{message_id, response_id, seq}`.
pub async fn send(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SendBody>,
) -> Result<(StatusCode, Json<MessageAccepted>), ApiError> {
    // Access first: a caller who cannot see the conversation learns nothing from validation messages.
    let (_, permission) = service::access::authorize(&state, id, caller.id()).await?;
    service::access::require_respond(permission, "send messages")?;
    let text = MessageText::parse(&body.text).map_err(ApiError::Validation)?;
    let accepted = service::messages::send(&state, caller.id(), id, text, body.client_msg_id, body.max_tokens).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// `POST /conversations/{id}/stop` → 202 `{}`: the running response (if any) stops; every participant sees
/// `response.stopped`.
pub async fn stop(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    service::messages::stop(&state, caller.id(), id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({}))))
}
