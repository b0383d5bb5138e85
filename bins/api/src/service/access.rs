//! Permission checks. A conversation exists for a caller only if they own it or it is shared with them:
//! everybody else (a teammate, an org admin, another org) gets the same 404 as for an id that never existed.

use crate::error::ApiError;
use crate::state::AppState;
use rh_protocol::Permission;
use rh_protocol::rpc::AccessGrant;
use rh_store::conversations::{self, Conversation};
use uuid::Uuid;

/// The conversation and the caller's permission, or 404.
pub async fn authorize(
    state: &AppState,
    conversation_id: Uuid,
    user_id: Uuid,
) -> Result<(Conversation, Permission), ApiError> {
    conversations::access(&state.db, conversation_id, user_id).await?.ok_or_else(ApiError::conversation_not_found)
}

/// 403 unless the caller may respond (send, stop, change settings, attach). `what` names the refused action.
pub fn require_respond(permission: Permission, what: &str) -> Result<(), ApiError> {
    if permission.can_respond() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("you have view-only access to this conversation and cannot {what}")))
    }
}

/// 403 unless the caller owns the conversation (share, change access, delete).
pub fn require_owner(permission: Permission, what: &str) -> Result<(), ApiError> {
    if permission.is_owner() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("only the owner of this conversation can {what}")))
    }
}

/// `rh.api.access`: the caller's permission and the stream position their HTTP history covers.
///
/// Asked for every socket subscribe, so thousands arrive within seconds when many sockets (re)connect: the same
/// rule as [`authorize`] (404 otherwise) and the same `history_seq` as `GET /conversations/{id}`, answered in
/// batches by [`super::grants`] — one statement for all the subscribers of a conversation asking at once.
pub async fn grant(state: &AppState, conversation_id: Uuid, user_id: Uuid) -> Result<AccessGrant, ApiError> {
    state.grants.ask(conversation_id, user_id).await
}
