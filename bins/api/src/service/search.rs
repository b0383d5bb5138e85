//! Search (`GET /search`): titles and message text of the conversations the caller can see, nothing else — the
//! query itself applies the access rule ([`rh_store::search`]), so a conversation that is not shared with them
//! (another org's, a revoked or expired share, a deleted one) never matches.

use crate::error::ApiError;
use crate::state::AppState;
use rh_protocol::tools::{SearchHit, SearchResults};
use uuid::Uuid;

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Results per page unless asked otherwise, and the most.
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 50;
/// The deepest page: ranking past this is noise, and each page costs a full ranking.
pub const MAX_OFFSET: u32 = 1000;

/// The page of `query`'s matches at `offset`.
pub async fn search(
    state: &AppState,
    user_id: Uuid,
    query: &str,
    limit: Option<u32>,
    offset: Option<u32>,
) -> Result<SearchResults, ApiError> {
    let query = query.trim();
    if query.is_empty() {
        return Err(ApiError::Validation("q must not be blank".into()));
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::Validation(format!("q must have at most {MAX_QUERY_CHARS} characters")));
    }
    if query.contains('\0') {
        return Err(ApiError::Validation("q must not contain NUL characters".into()));
    }
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::Validation(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let offset = offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::Validation(format!("offset must be at most {MAX_OFFSET}")));
    }
    // One more than asked tells whether there is a next page.
    let mut hits = rh_store::search::search(&state.db, user_id, query, i64::from(limit) + 1, i64::from(offset)).await?;
    let more = hits.len() > limit as usize;
    hits.truncate(limit as usize);
    Ok(SearchResults {
        results: hits
            .into_iter()
            .map(|h| SearchHit {
                conversation_id: h.conversation_id,
                title: h.title,
                message_id: h.message_id,
                seq: h.seq,
                snippet: h.snippet,
                rank: h.rank,
            })
            .collect(),
        next_offset: more.then_some(offset + limit),
    })
}
