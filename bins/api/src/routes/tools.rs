//! Conversation tools: export, continue as a copy, search. Thin: the service decides ([`service::export`],
//! [`service::copy`], [`service::search`]).

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, AuthUser, optional_json};
use crate::service;
use crate::service::export::Format;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rh_protocol::api::conversations::ConversationDetail;
use rh_protocol::tools::{ConversationExport, CopyRequest, SearchResults};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `json` (default) or `markdown` (or `md`).
    #[param(pattern = "^(json|markdown|md)$")]
    format: Option<String>,
}

/// `GET /conversations/{id}/export?format=json|markdown` (default `json`): the finished history as a download
/// (`Content-Disposition: attachment`), for anyone who can see the conversation.
#[utoipa::path(get, path = "/conversations/{id}/export", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path), ExportQuery),
    responses((status = 200, description = "The history as a download", content(
        (ConversationExport = "application/json"), (String = "text/markdown")))))]
pub async fn export(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = Format::parse(query.format.as_deref().unwrap_or("json"))?;
    let export = service::export::export(&state, caller.id(), id).await?;
    let short = &id.simple().to_string()[..8];
    let (body, content_type, extension) = match format {
        Format::Json => (
            serde_json::to_string_pretty(&export).map_err(|e| ApiError::Internal(e.into()))?,
            "application/json",
            "json",
        ),
        Format::Markdown => (service::export::markdown(&export), "text/markdown; charset=utf-8", "md"),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let disposition = format!("attachment; filename=\"conversation-{short}.{extension}\"");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `POST /conversations/{id}/copy {title?, up_to?, attachments?}` (body optional) → 201, the copy as
/// `GET /conversations/{id}` shows it: a new conversation of the caller's, unshared.
#[utoipa::path(post, path = "/conversations/{id}/copy", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body(content = Option<CopyRequest>, description = "Optional"),
    responses((status = 201, body = ConversationDetail)))]
pub async fn copy(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    body: Bytes,
) -> Result<(StatusCode, Json<ConversationDetail>), ApiError> {
    let request: CopyRequest = optional_json(&body)?;
    let copy = service::copy::copy(&state, caller.id(), caller.org(), id, &request).await?;
    Ok((StatusCode::CREATED, Json(service::views::created(&state, copy).await?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words to find (not blank, at most 200 characters).
    #[param(pattern = "\\S", max_length = 200)]
    q: String,
    /// 1-50, default 20.
    #[param(minimum = 1, maximum = 50)]
    limit: Option<u32>,
    /// `next_offset` of the previous page (at most 1000).
    #[param(maximum = 1000)]
    offset: Option<u32>,
}

/// `GET /search?q=&limit=&offset=` → [`SearchResults`]: titles and messages of the conversations the caller can
/// see, best first; `limit` 1–50 (default 20), `next_offset` for the next page.
#[utoipa::path(get, path = "/search", tag = "conversations", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = SearchResults)))]
pub async fn search(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    Ok(Json(service::search::search(&state, caller.id(), &query.q, query.limit, query.offset).await?))
}
