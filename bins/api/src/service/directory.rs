//! The org directory behind "share with…": only the caller's org, ever (the query's own rule).

use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::state::AppState;
use rh_protocol::api::{UserList, UserRef};

/// Most people one search returns.
const LIMIT: i64 = 20;
/// Longest query, in characters.
const MAX_QUERY_CHARS: usize = 100;

/// Teammates whose name or email contains `q` (any case).
pub async fn search(state: &AppState, caller: &AuthUser, q: &str) -> Result<UserList, ApiError> {
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::Validation(format!("q must have at most {MAX_QUERY_CHARS} characters")));
    }
    let users = rh_store::orgs::search_users(&state.db, caller.org(), q, LIMIT).await?;
    Ok(UserList { users: users.into_iter().map(|u| UserRef { id: u.id, name: u.name, email: u.email }).collect() })
}
