//! Sharing with people (owner only). Targets must be people of the conversation's org other than the owner; a share
//! may end by itself (`expires_at`, removed by [`spawn_expiry`]'s task like a revoke). Every change is stored
//! together with the events of the people whose permission it changed (`participant.added|changed|removed`, which
//! the edge acts on: a removed person's live subscription ends) and the messages to their inboxes (their sidebars),
//! through [`super::events::Change`] and [`Reach`] — a person who can also see the conversation through a team
//! keeps what the team gives them when their personal share goes.

use super::access::{Authorized, Need, check};
use super::events::Change;
use super::reach::Reach;
use crate::domain::SharePermission;
use crate::error::ApiError;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use rh_protocol::api::conversations::{self as api, ShareChange, ShareList, ShareRequest};
use rh_store::shares::{self, NewShare, Participant};
use std::collections::HashSet;
use uuid::Uuid;

/// Most people in one share request.
pub const MAX_SHARES_PER_REQUEST: usize = 50;

/// One person to share with: their permission, and when the share ends by itself (`None`: when revoked).
#[derive(Debug, Clone, Copy)]
pub struct ShareTarget {
    pub user_id: Uuid,
    pub permission: SharePermission,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Who has access (any participant may look).
pub async fn list(state: &AppState, user_id: Uuid, conversation_id: Uuid) -> Result<ShareList, ApiError> {
    check(state, conversation_id, user_id, Need::See).await?;
    Ok(share_list(&shares::list(&state.db, conversation_id).await?))
}

fn share_list(list: &[Participant]) -> ShareList {
    ShareList { shares: list.iter().map(Into::into).collect() }
}

/// `POST /conversations/{id}/shares` (owner): access, then the request, then [`share_many`].
pub async fn share(
    state: &AppState,
    owner_id: Uuid,
    conversation_id: Uuid,
    body: &ShareRequest,
) -> Result<ShareList, ApiError> {
    let access = check(state, conversation_id, owner_id, Need::Own("share it")).await?;
    let targets = body
        .shares
        .iter()
        .map(|s| {
            SharePermission::parse(&s.permission).map(|permission| ShareTarget {
                user_id: s.user_id,
                permission,
                expires_at: s.expires_at,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::Validation)?;
    Ok(share_list(&share_many(state, &access, &targets).await?))
}

/// Shares with several people at once (all or nothing); an existing share gets the new permission and expiry.
/// Returns every participant afterwards. `access` must be the owner's.
pub async fn share_many(
    state: &AppState,
    access: &Authorized,
    targets: &[ShareTarget],
) -> Result<Vec<Participant>, ApiError> {
    let (conversation_id, owner_id) = (access.id(), access.user_id());
    let mut client = state.db.client().await?;
    let (mut change, conversation) = Change::begin(&mut client, conversation_id, owner_id).await?;
    if targets.is_empty() {
        return Err(ApiError::Validation("shares must name at least one person".into()));
    }
    if targets.len() > MAX_SHARES_PER_REQUEST {
        return Err(ApiError::Validation(format!("at most {MAX_SHARES_PER_REQUEST} people per request")));
    }
    let mut seen = HashSet::new();
    let now = Utc::now();
    for target in targets {
        let user_id = target.user_id;
        if user_id == conversation.owner_id {
            return Err(ApiError::Validation("you own this conversation: it cannot be shared with you".into()));
        }
        if !seen.insert(user_id) {
            return Err(ApiError::Validation(format!("user {user_id} is listed twice")));
        }
        if target.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::Validation(format!("expires_at of user {user_id} is not in the future")));
        }
    }
    let ids: Vec<Uuid> = targets.iter().map(|t| t.user_id).collect();
    let members = rh_store::orgs::users_in_org_on(change.tx(), conversation.org_id, &ids).await?;
    if let Some(missing) = ids.iter().find(|id| !members.iter().any(|m| m.id == **id)) {
        // Same answer for an unknown id and a person of another org: org directories stay private.
        return Err(ApiError::Validation(format!("user {missing} is not a member of your organization")));
    }

    let rows: Vec<_> = targets
        .iter()
        .map(|t| NewShare { user_id: t.user_id, permission: t.permission.permission(), expires_at: t.expires_at })
        .collect();
    let reach = Reach::before(&change, vec![conversation], ids).await?;
    shares::upsert_many(change.tx(), conversation_id, owner_id, &rows).await?;
    reach.announce(&mut change).await?;
    let participants = shares::list_on(change.tx(), conversation_id).await?;
    change.commit(state).await?;
    Ok(participants)
}

/// Changes one person's permission (owner). 404 when the conversation is not shared with them.
pub async fn change(
    state: &AppState,
    owner_id: Uuid,
    conversation_id: Uuid,
    user_id: Uuid,
    body: &ShareChange,
) -> Result<api::Participant, ApiError> {
    check(state, conversation_id, owner_id, Need::Own("change who has access")).await?;
    let permission = SharePermission::parse(&body.permission).map_err(ApiError::Validation)?;
    Ok((&change_one(state, owner_id, conversation_id, user_id, permission).await?).into())
}

async fn change_one(
    state: &AppState,
    owner_id: Uuid,
    conversation_id: Uuid,
    user_id: Uuid,
    permission: SharePermission,
) -> Result<Participant, ApiError> {
    let mut client = state.db.client().await?;
    let (mut change, conversation) = Change::begin(&mut client, conversation_id, owner_id).await?;
    let reach = Reach::before(&change, vec![conversation], vec![user_id]).await?;
    shares::update(change.tx(), conversation_id, user_id, permission.permission()).await.map_err(no_share)?;
    reach.announce(&mut change).await?;
    let participant = shares::list_on(change.tx(), conversation_id)
        .await?
        .into_iter()
        .find(|p| p.user_id == user_id)
        .ok_or_else(|| no_share(rh_store::StoreError::NotFound))?;
    change.commit(state).await?;
    Ok(participant)
}

/// Revokes one person's share: unless a team still gives them access, their live subscription ends and the
/// conversation leaves their sidebar. The messages they sent stay. The owner may revoke anyone's share; anyone may revoke their own (leave the
/// conversation).
pub async fn revoke(state: &AppState, caller_id: Uuid, conversation_id: Uuid, user_id: Uuid) -> Result<(), ApiError> {
    // Leaving needs only to see it; revoking someone else's access needs to own it.
    let need = if user_id == caller_id { Need::See } else { Need::Own("change who has access") };
    check(state, conversation_id, caller_id, need).await?;
    let mut client = state.db.client().await?;
    let (mut change, conversation) = Change::begin(&mut client, conversation_id, caller_id).await?;
    let reach = Reach::before(&change, vec![conversation], vec![user_id]).await?;
    shares::delete(change.tx(), conversation_id, user_id).await.map_err(no_share)?;
    reach.announce(&mut change).await?;
    change.commit(state).await
}

/// Removes every personal share of `user_id`, a member `admin` removed from the org, each like a revoke by the
/// admin: the conversation's participants and its owner's sidebar hear `participant.removed` (and a team share
/// that still reached them would keep them listed, but the member left every team first). Each conversation is
/// its own change; one deleted meanwhile is skipped (the erasure removes its shares).
pub async fn remove_all_of(state: &AppState, user_id: Uuid, admin: Uuid) -> Result<(), ApiError> {
    for conversation_id in shares::conversations_shared_with(&state.db, user_id).await? {
        let mut client = state.db.client().await?;
        let (mut change, conversation) = match Change::begin(&mut client, conversation_id, admin).await {
            Ok(begun) => begun,
            Err(ApiError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let reach = Reach::before(&change, vec![conversation], vec![user_id]).await?;
        match shares::delete(change.tx(), conversation_id, user_id).await {
            Ok(()) => {}
            Err(rh_store::StoreError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        }
        reach.announce(&mut change).await?;
        change.commit(state).await?;
    }
    Ok(())
}

/// Shares handled per query of the expiry task; a full batch is followed by the next one at once.
const EXPIRY_BATCH: i64 = 100;

/// Starts the expiry task: every `--share-expiry-check-ms`, removes the shares whose `expires_at` has passed,
/// exactly like a revoke by the system (no actor). Runs on every api replica: each removal is a conditional delete
/// in the conversation's change, so exactly one replica announces it. Access was refused from `expires_at` on
/// already (the access rule checks it); this makes the end visible: sockets cut, sidebars updated.
pub fn spawn_expiry(state: AppState) {
    tokio::spawn(async move {
        let every = std::time::Duration::from_millis(state.settings.share_expiry_check_ms);
        loop {
            if let Err(e) = expire_due(&state).await {
                tracing::warn!(error = %e, "share expiry pass failed, trying again next time");
            }
            tokio::time::sleep(every).await;
        }
    });
}

/// Removes every share that has expired; returns how many this replica removed.
async fn expire_due(state: &AppState) -> Result<usize, ApiError> {
    let mut removed = 0;
    loop {
        let due = shares::expired(&state.db, EXPIRY_BATCH).await?;
        let full = due.len() as i64 == EXPIRY_BATCH;
        for (conversation_id, user_id) in due {
            let mut client = state.db.client().await?;
            let (mut change, conversation) = match Change::begin(&mut client, conversation_id, None).await {
                Ok(begun) => begun,
                // Deleted meanwhile: the erasure removes its shares.
                Err(ApiError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            // The snapshot counts the expired share (what the person was last told); a team may keep them in.
            let reach = Reach::before(&change, vec![conversation], vec![user_id]).await?;
            if shares::delete_expired(change.tx(), conversation_id, user_id).await? {
                reach.announce(&mut change).await?;
                change.commit(state).await?;
                removed += 1;
                tracing::info!(%conversation_id, %user_id, "share expired");
            }
        }
        if !full {
            return Ok(removed);
        }
    }
}

fn no_share(e: rh_store::StoreError) -> ApiError {
    match e {
        rh_store::StoreError::NotFound => ApiError::NotFound("this conversation is not shared with that person".into()),
        other => other.into(),
    }
}
