//! The org directory search behind "share with…": only the caller's org, ever.

use crate::error::ApiError;
use crate::extract::{ApiQuery, AuthUser};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use rh_protocol::api::{UserList, UserRef};
use serde::Deserialize;

/// Most people one search returns.
const LIMIT: i64 = 20;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Part of a name or email, any case (at most 100 characters).
    #[serde(default)]
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
    if query.q.chars().count() > 100 {
        return Err(ApiError::Validation("q must have at most 100 characters".into()));
    }
    let users = rh_store::orgs::search_users(&state.db, caller.org(), &query.q, LIMIT).await?;
    let users = users.into_iter().map(|u| UserRef { id: u.id, name: u.name, email: u.email }).collect();
    Ok(Json(UserList { users }))
}
