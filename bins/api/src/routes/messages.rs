//! Sending a message (starts an AI response; also an edit of the last one), regenerating the last answer and
//! stopping a response.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, AuthUser};
use crate::service;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rh_protocol::api::conversations::{RegenerateRequest, SendRequest, StopBody};
use rh_protocol::rpc::{MessageAccepted, StopAccepted};
use uuid::Uuid;

/// `POST /conversations/{id}/messages {text, client_msg_id?, max_tokens?, edit_of?}` → 202 `{message_id,
/// response_id, seq}`. With `edit_of`: a new version of the last message (the caller's); 409 `conflict` when it is
/// not the last, `response_in_progress` while an answer streams.
#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = SendRequest,
    responses((status = 202, body = MessageAccepted), (status = 403), (status = 409), (status = 422),
        (status = 429)))]
pub async fn send(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SendRequest>,
) -> Result<(StatusCode, Json<MessageAccepted>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(service::messages::send(&state, caller.id(), id, body).await?)))
}

/// `POST /conversations/{id}/regenerate {message_id?, max_tokens?}` → 202 `{message_id, response_id, seq}`: another
/// answer to the last message, streamed to every viewer after `response.requested`; the earlier answers stay.
/// 409 `conflict` when `message_id` is not the last message, `response_in_progress` while an answer streams.
#[utoipa::path(post, path = "/conversations/{id}/regenerate", tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body(content = Option<RegenerateRequest>, description = "Optional"),
    responses((status = 202, body = MessageAccepted), (status = 403), (status = 409), (status = 422),
        (status = 429)))]
pub async fn regenerate(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<MessageAccepted>), ApiError> {
    let body: RegenerateRequest = crate::extract::optional_json(&body)?;
    Ok((StatusCode::ACCEPTED, Json(service::versions::regenerate(&state, caller.id(), id, body).await?)))
}

/// `POST /conversations/{id}/stop {response_id?}` → 202 `{}`: that answer (without `response_id`: every answer of
/// the conversation) stops, also one no worker has started yet; every participant sees `response.stopped`.
#[utoipa::path(post, path = "/conversations/{id}/stop", tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body(content = Option<StopBody>, description = "Optional"),
    responses((status = 202, body = StopAccepted), (status = 403)))]
pub async fn stop(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<StopAccepted>), ApiError> {
    // The body is optional (older clients send none).
    let body: StopBody = crate::extract::optional_json(&body)?;
    let response_id = body.response_id;
    service::stops::stop(&state, caller.id(), id, response_id).await?;
    Ok((StatusCode::ACCEPTED, Json(StopAccepted {})))
}
