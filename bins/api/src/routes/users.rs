//! The org directory search behind "share with…": only the caller's org, ever.

use crate::error::ApiError;
use crate::extract::{ApiQuery, AuthUser};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

/// Most people one search returns.
const LIMIT: i64 = 20;

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET /users?q=` → `{users:[{id,name,email}]}`: teammates whose name or email contains `q` (any case).
pub async fn search(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    if query.q.chars().count() > 100 {
        return Err(ApiError::Validation("q must have at most 100 characters".into()));
    }
    let users = rh_store::orgs::search_users(&state.db, caller.org(), &query.q, LIMIT).await?;
    let users: Vec<Value> = users.iter().map(|u| json!({ "id": u.id, "name": u.name, "email": u.email })).collect();
    Ok(Json(json!({ "users": users })))
}
