//! Conversations: create, the sidebar list, one conversation with its history, delete.

use crate::domain::{ModelName, Title};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, AuthUser, optional_json};
use crate::service;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bytes::Bytes;
use rh_protocol::api::conversations::{
    ConversationDetail, ConversationList, CreateConversation, RenameRequest, Renamed,
};
use serde::Deserialize;
use uuid::Uuid;

/// `POST /conversations {title?,model?}` → 201, the conversation as `GET /conversations/{id}` shows it.
#[utoipa::path(post, path = "/conversations", tag = "conversations", security(("bearer" = [])),
    request_body(content = Option<CreateConversation>, description = "Optional: none is an untitled conversation with the default model"),
    responses((status = 201, body = ConversationDetail), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    caller: AuthUser,
    body: Bytes,
) -> Result<(StatusCode, Json<ConversationDetail>), ApiError> {
    // The body is optional: none (or `null`, `{}`) creates an untitled conversation with the default model.
    let body: CreateConversation = optional_json(&body)?;
    let title = Title::parse(body.title.as_deref()).map_err(ApiError::Validation)?;
    let model = body.model.as_deref().map(ModelName::parse).transpose().map_err(ApiError::Validation)?;
    let conversation =
        service::conversations::create(&state, caller.id(), caller.org(), &title, model.as_ref()).await?;
    Ok((StatusCode::CREATED, Json(service::views::created(&state, conversation).await?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// 1-500, default 500.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// `next_before` of the previous page.
    before: Option<String>,
}

/// `GET /conversations?limit=&before=` → `{conversations:[ConversationSummary], next_before}`: own and shared,
/// newest first, each with the caller's permission; at most `limit` (1–500, default 500). `next_before` is null
/// on the last page; otherwise pass it as `before` for the next, older page.
#[utoipa::path(get, path = "/conversations", tag = "conversations", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = ConversationList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    Ok(Json(service::views::list(&state, caller.id(), query.limit, query.before.as_deref()).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Turns in the page: 1-500, default 100.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// `next_before` of the previous page.
    #[param(minimum = 1)]
    before: Option<i64>,
}

/// `GET /conversations/{id}?limit=&before=`: settings, my permission, participants, attachments, and the newest
/// `limit` turns (1–500, default 100) of the history up to `seq` (subscribe with `after_seq = seq` for the rest).
/// `has_more` says older turns exist: `before` = `next_before` (the first turn's `seq`) gets the page before.
#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path), HistoryQuery), responses((status = 200, body = ConversationDetail)))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<ConversationDetail>, ApiError> {
    Ok(Json(service::views::get(&state, caller.id(), id, query.limit, query.before).await?))
}

/// `PATCH /conversations/{id} {title}` (owner) → 200 `{id, title, seq}` (`seq` of `conversation.renamed`, null
/// when the title was already that). Participants' headers and sidebars follow live.
#[utoipa::path(patch, path = "/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RenameRequest, responses((status = 200, body = Renamed), (status = 403)))]
pub async fn rename(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RenameRequest>,
) -> Result<Json<Renamed>, ApiError> {
    Ok(Json(service::conversations::rename(&state, caller.id(), caller.name(), id, &body).await?))
}

/// `DELETE /conversations/{id}` (owner) → 204.
#[utoipa::path(delete, path = "/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204, description = "Deleted; its content is erased"), (status = 403)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    service::conversations::delete(&state, caller.id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
