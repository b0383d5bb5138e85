//! The org directory search behind "share with…". Thin: the rule is [`crate::service::directory`].

use crate::error::ApiError;
use crate::extract::{ApiQuery, AuthUser};
use crate::service;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use rh_protocol::api::UserList;
use serde::Deserialize;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Part of a name or email, any case (at most 100 characters).
    #[serde(default)]
    #[param(max_length = 100)]
    q: String,
}

/// `GET /users?q=` → `{users:[{id,name,email}]}`: teammates whose name or email contains `q` (any case).
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = UserList)))]
pub async fn search(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<UserList>, ApiError> {
    Ok(Json(service::directory::search(&state, &caller, &query.q).await?))
}
