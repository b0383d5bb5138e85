//! Teams: an org admin creates and deletes them and adds and removes members; any member of the org lists them
//! (to share with one); a conversation's owner shares it with a team of its org.
//!
//! Every change that can move someone's access runs as one [`Change`]: it locks the team, then the conversations
//! shared with it (`rh_store::teams` has the lock order), takes a [`Reach`] snapshot, writes its rows, and queues
//! the `participant.*` events and sidebar messages of everyone whose permission changed — so joining or leaving a
//! team gains or loses access live exactly as a personal share does. Org-level changes get their audit row in the
//! same transaction; team shares get theirs from their `team_share.*` event (the audit writer).

use super::access::{Need, check};
use super::events::Change;
use super::reach::Reach;
use crate::domain::{SharePermission, TeamName};
use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::state::AppState;
use rh_protocol::Event;
use rh_protocol::teams::{Team, TeamList, TeamShareList};
use rh_store::{StoreError, audit_log, teams};
use serde_json::json;
use uuid::Uuid;

/// Most people added to a team in one request.
pub const MAX_MEMBERS_PER_REQUEST: usize = 100;

fn require_member(caller: &AuthUser, org_id: Uuid) -> Result<(), ApiError> {
    if caller.org() != org_id {
        return Err(ApiError::Forbidden("you are not a member of this organization".into()));
    }
    Ok(())
}

fn no_team(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("no such team in this organization".into()),
        other => other.into(),
    }
}

/// Every team of the org with its members (any member of the org).
pub async fn list(state: &AppState, caller: &AuthUser, org_id: Uuid) -> Result<TeamList, ApiError> {
    require_member(caller, org_id)?;
    Ok(TeamList { teams: teams::list(&state.db, org_id, None).await? })
}

/// One team with its members (any member of the org).
pub async fn get(state: &AppState, caller: &AuthUser, org_id: Uuid, team_id: Uuid) -> Result<Team, ApiError> {
    require_member(caller, org_id)?;
    teams::list(&state.db, org_id, Some(team_id)).await?.pop().ok_or_else(|| no_team(StoreError::NotFound))
}

/// Creates an empty team (org admins).
pub async fn create(state: &AppState, caller: &AuthUser, org_id: Uuid, name: &str) -> Result<Team, ApiError> {
    super::access::org_admin(caller, org_id, "create teams")?;
    let name = TeamName::parse(name).map_err(ApiError::Validation)?;
    let mut client = state.db.client().await?;
    let change = Change::begin_many(&mut client, caller.id()).await?;
    let team = teams::create(change.tx(), Uuid::now_v7(), org_id, name.as_str(), caller.id()).await?;
    audit_log::record(change.tx(), org_id, caller.id(), "team.created", json!({ "team_id": team.id })).await?;
    change.commit(state).await?;
    Ok(team)
}

/// Deletes a team (org admins): its members lose what only the team gave them, live.
pub async fn delete(state: &AppState, caller: &AuthUser, org_id: Uuid, team_id: Uuid) -> Result<(), ApiError> {
    super::access::org_admin(caller, org_id, "delete teams")?;
    let mut client = state.db.client().await?;
    let mut change = Change::begin_many(&mut client, caller.id()).await?;
    teams::lock(change.tx(), org_id, team_id).await.map_err(no_team)?;
    let conversations = teams::lock_conversations(change.tx(), team_id).await?;
    let members = teams::member_ids(change.tx(), team_id).await?;
    let reach = Reach::before(&change, conversations, members).await?;
    teams::delete(change.tx(), team_id).await?;
    reach.announce(&mut change).await?;
    audit_log::record(change.tx(), org_id, caller.id(), "team.deleted", json!({ "team_id": team_id })).await?;
    change.commit(state).await
}

/// Adds people of the org to a team (org admins); they gain what the team's shares give them, live.
pub async fn add_members(
    state: &AppState,
    caller: &AuthUser,
    org_id: Uuid,
    team_id: Uuid,
    user_ids: &[Uuid],
) -> Result<Team, ApiError> {
    super::access::org_admin(caller, org_id, "change teams")?;
    if user_ids.is_empty() || user_ids.len() > MAX_MEMBERS_PER_REQUEST {
        return Err(ApiError::Validation(format!("user_ids must name 1 to {MAX_MEMBERS_PER_REQUEST} people")));
    }
    let found = rh_store::orgs::users_in_org(&state.db, org_id, user_ids).await?;
    if let Some(missing) = user_ids.iter().find(|id| !found.iter().any(|u| u.id == **id)) {
        // Same answer for an unknown id and a person of another org: org directories stay private.
        return Err(ApiError::Validation(format!("user {missing} is not a member of your organization")));
    }
    let mut client = state.db.client().await?;
    let mut change = Change::begin_many(&mut client, caller.id()).await?;
    teams::lock(change.tx(), org_id, team_id).await.map_err(no_team)?;
    let conversations = teams::lock_conversations(change.tx(), team_id).await?;
    let reach = Reach::before(&change, conversations, user_ids.to_vec()).await?;
    let added = teams::add_members(change.tx(), team_id, user_ids, caller.id()).await?;
    reach.announce(&mut change).await?;
    for user_id in added {
        let detail = json!({ "team_id": team_id, "user_id": user_id });
        audit_log::record(change.tx(), org_id, caller.id(), "team.member_added", detail).await?;
    }
    change.commit(state).await?;
    get(state, caller, org_id, team_id).await
}

/// Takes a person out of a team (org admins); they lose what only the team gave them, live.
pub async fn remove_member(
    state: &AppState,
    caller: &AuthUser,
    org_id: Uuid,
    team_id: Uuid,
    user_id: Uuid,
) -> Result<(), ApiError> {
    super::access::org_admin(caller, org_id, "change teams")?;
    let mut client = state.db.client().await?;
    let mut change = Change::begin_many(&mut client, caller.id()).await?;
    teams::lock(change.tx(), org_id, team_id).await.map_err(no_team)?;
    let conversations = teams::lock_conversations(change.tx(), team_id).await?;
    let reach = Reach::before(&change, conversations, vec![user_id]).await?;
    teams::remove_member(change.tx(), team_id, user_id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound("this person is not in the team".into()),
        other => other.into(),
    })?;
    reach.announce(&mut change).await?;
    let detail = json!({ "team_id": team_id, "user_id": user_id });
    audit_log::record(change.tx(), org_id, caller.id(), "team.member_removed", detail).await?;
    change.commit(state).await
}

/// The teams a conversation is shared with (anyone who may see it).
pub async fn shares(state: &AppState, caller_id: Uuid, conversation_id: Uuid) -> Result<TeamShareList, ApiError> {
    check(state, conversation_id, caller_id, Need::See).await?;
    let client = state.db.client().await?;
    Ok(TeamShareList { teams: teams::shares_on(&client, conversation_id).await? })
}

/// Shares a conversation with a team of its org, or changes the team's permission (owner only).
pub async fn share(
    state: &AppState,
    caller_id: Uuid,
    conversation_id: Uuid,
    team_id: Uuid,
    permission: SharePermission,
) -> Result<TeamShareList, ApiError> {
    let org_id = check(state, conversation_id, caller_id, Need::Own("share it")).await?.conversation().org_id;
    let permission = permission.permission();
    let mut client = state.db.client().await?;
    let mut change = Change::begin_many(&mut client, caller_id).await?;
    let name = teams::lock(change.tx(), org_id, team_id).await.map_err(no_team)?;
    let conversation =
        rh_store::conversations::lock(change.tx(), conversation_id).await.map_err(super::events::gone)?;
    let members = teams::member_ids(change.tx(), team_id).await?;
    let reach = Reach::before(&change, vec![conversation], members).await?;
    let before = teams::share(change.tx(), conversation_id, team_id, permission, caller_id).await?;
    if before != Some(permission) {
        change.event_on(conversation_id, Event::TeamShareSet { team_id, name, permission })?;
    }
    reach.announce(&mut change).await?;
    let list = teams::shares_on(change.tx(), conversation_id).await?;
    change.commit(state).await?;
    Ok(TeamShareList { teams: list })
}

/// Stops sharing a conversation with a team (owner only).
pub async fn unshare(state: &AppState, caller_id: Uuid, conversation_id: Uuid, team_id: Uuid) -> Result<(), ApiError> {
    let need = Need::Own("change who has access");
    let org_id = check(state, conversation_id, caller_id, need).await?.conversation().org_id;
    let mut client = state.db.client().await?;
    let mut change = Change::begin_many(&mut client, caller_id).await?;
    teams::lock(change.tx(), org_id, team_id).await.map_err(no_team)?;
    let conversation =
        rh_store::conversations::lock(change.tx(), conversation_id).await.map_err(super::events::gone)?;
    let members = teams::member_ids(change.tx(), team_id).await?;
    let reach = Reach::before(&change, vec![conversation], members).await?;
    teams::unshare(change.tx(), conversation_id, team_id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound("this conversation is not shared with that team".into()),
        other => other.into(),
    })?;
    change.event_on(conversation_id, Event::TeamShareRemoved { team_id })?;
    reach.announce(&mut change).await?;
    change.commit(state).await
}
