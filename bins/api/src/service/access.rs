//! Permission checks: [`check`] for a conversation, [`org_admin`] for what only an org's admins do. A conversation exists for a caller only if they own it or it is shared with them:
//! everybody else (a teammate, an org admin, another org) gets the same 404 as for an id that never existed.

use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::state::AppState;
use deadpool_postgres::GenericClient;
use rh_protocol::Permission;
use rh_protocol::rpc::AccessGrant;
use rh_store::conversations::{self, Conversation};
use uuid::Uuid;

/// What an operation needs of its caller; the `&str` names the action in the 403.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    /// Any participant: read, leave.
    See,
    /// Can Respond or owner: send, stop, change settings, attach.
    Respond(&'static str),
    /// The owner: rename, share, change access, delete.
    Own(&'static str),
}

/// Proof that `user_id` may do what was asked in `conversation`, as of the request's one access query. Only
/// [`check`] makes one (its fields are private), so an operation that takes it cannot skip the check, and one
/// that has it has no reason to check again.
#[derive(Debug)]
pub struct Authorized {
    conversation: Conversation,
    user_id: Uuid,
    permission: Permission,
}

impl Authorized {
    pub fn conversation(&self) -> &Conversation {
        &self.conversation
    }
    pub fn id(&self) -> Uuid {
        self.conversation.id
    }
    pub fn user_id(&self) -> Uuid {
        self.user_id
    }
    pub fn permission(&self) -> Permission {
        self.permission
    }
    pub fn into_conversation(self) -> Conversation {
        self.conversation
    }
}

/// The access step of every conversation operation: one query (counted in
/// `relayhub_api_conversation_access_checks_total`), 404 when the caller cannot see the conversation, 403 when
/// they may see it but not do `need`.
pub async fn check(state: &AppState, conversation_id: Uuid, user_id: Uuid, need: Need) -> Result<Authorized, ApiError> {
    check_on(state, &state.db.client().await?, conversation_id, user_id, need).await
}

/// [`check`] on a connection the caller holds, for a read that goes on on it ([`rh_store::view::load_on`]).
pub async fn check_on(
    state: &AppState,
    client: &impl GenericClient,
    conversation_id: Uuid,
    user_id: Uuid,
    need: Need,
) -> Result<Authorized, ApiError> {
    state.metrics.access_checks.inc();
    let (conversation, permission) = conversations::access_on(client, conversation_id, user_id)
        .await?
        .ok_or_else(ApiError::conversation_not_found)?;
    match need {
        Need::See => {}
        Need::Respond(what) if !permission.can_respond() => {
            return Err(ApiError::Forbidden(format!(
                "you have view-only access to this conversation and cannot {what}"
            )));
        }
        Need::Own(what) if !permission.is_owner() => {
            return Err(ApiError::Forbidden(format!("only the owner of this conversation can {what}")));
        }
        Need::Respond(_) | Need::Own(_) => {}
    }
    Ok(Authorized { conversation, user_id, permission })
}

/// The access step of an org-level operation (members, invites, teams, retention, the admin views): the caller is
/// an admin of `org_id` — 403 otherwise, also for another org's id (which tells nothing about that org); `what`
/// names the action in the 403.
pub fn org_admin(caller: &AuthUser, org_id: Uuid, what: &str) -> Result<(), ApiError> {
    if caller.org() != org_id || !caller.is_admin() {
        return Err(ApiError::Forbidden(format!("only an admin of this organization can {what}")));
    }
    Ok(())
}

/// `rh.api.access`: the caller's permission and the stream position their HTTP history covers.
///
/// Asked for every socket subscribe, so thousands arrive within seconds when many sockets (re)connect: the same
/// rule as [`check`] (404 otherwise) and the same `history_seq` as `GET /conversations/{id}`, answered in
/// batches by [`super::grants`] — one statement for all the subscribers of a conversation asking at once.
pub async fn grant(state: &AppState, conversation_id: Uuid, user_id: Uuid) -> Result<AccessGrant, ApiError> {
    state.grants.ask(conversation_id, user_id).await
}
