//! What an org admin does to a member's account: add them, remove them, reset their password. Removing and resetting end every session of
//! theirs at once (the api refuses their tokens, the edges close their sockets). And what anyone does to their own:
//! change their password (their other sessions end).

use crate::domain::{Email, Password, PersonName};
use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::state::AppState;
use rh_protocol::api::NewMemberRequest;
use rh_protocol::auth::SessionUser;
use rh_store::StoreError;
use rh_store::orgs::NewUser;
use rh_store::sessions::EndReason;
use uuid::Uuid;

fn no_member(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("no such member in this organization".into()),
        other => other.into(),
    }
}

/// Adds a member to `org_id` with a password the admin gives them (`role`: `member`, the default, or `admin`).
pub async fn add(
    state: &AppState,
    caller: &AuthUser,
    org_id: Uuid,
    body: &NewMemberRequest,
) -> Result<SessionUser, ApiError> {
    super::access::org_admin(caller, org_id, "add members")?;
    let name = PersonName::parse(&body.name).map_err(ApiError::Validation)?;
    let email = Email::parse(&body.email).map_err(ApiError::Validation)?;
    let password = Password::parse(&body.password).map_err(ApiError::Validation)?;
    let role = match body.role.as_deref() {
        None | Some("member") => "member",
        Some("admin") => "admin",
        Some(other) => return Err(ApiError::Validation(format!("role {other:?} is not \"member\" or \"admin\""))),
    };
    // With passwords off, people join by single sign-on instead (an invite naming them, or the org's domain).
    super::sso::check_password_allowed_in_org(state, org_id).await?;
    let hash = crate::routes::auth::hash_password(state, password.expose().to_owned()).await?;
    let new =
        NewUser { id: Uuid::now_v7(), org_id, name: name.as_str(), email: email.as_str(), password_hash: &hash, role };
    let user = rh_store::orgs::insert_user(&state.db, &new).await?;
    tracing::info!(%org_id, user_id = %user.id, role, "member added");
    Ok(crate::routes::auth::public_user(user))
}

/// Removes member `user_id` from `org_id`: they cannot sign in again, their sessions end now, and they leave every
/// team and every conversation shared with them.
pub async fn remove(state: &AppState, caller: &AuthUser, org_id: Uuid, user_id: Uuid) -> Result<(), ApiError> {
    super::access::org_admin(caller, org_id, "remove members")?;
    if user_id == caller.id() {
        return Err(ApiError::Validation("you cannot remove yourself".into()));
    }
    rh_store::orgs::remove_member(&state.db, org_id, user_id).await.map_err(no_member)?;
    // Out of every team too: team lists never show them again (their messages stay).
    rh_store::teams::leave_all(&state.db, user_id).await?;
    super::sessions::end_all(state, user_id, EndReason::MemberRemoved).await?;
    // And out of every conversation shared with them, so owners' share lists and sidebars drop them now.
    super::shares::remove_all_of(state, user_id, caller.id()).await?;
    tracing::info!(%org_id, %user_id, by = %caller.id(), "member removed");
    Ok(())
}

/// Sets member `user_id`'s password and ends their sessions (whoever knew the old one is signed out).
pub async fn reset_password(
    state: &AppState,
    caller: &AuthUser,
    org_id: Uuid,
    user_id: Uuid,
    password: &str,
) -> Result<(), ApiError> {
    super::access::org_admin(caller, org_id, "reset passwords")?;
    let password = Password::parse(password).map_err(ApiError::Validation)?;
    let hash = crate::routes::auth::hash_password(state, password.expose().to_owned()).await?;
    rh_store::orgs::set_password(&state.db, org_id, user_id, &hash).await.map_err(no_member)?;
    super::sessions::end_all(state, user_id, EndReason::PasswordReset).await?;
    tracing::info!(%org_id, %user_id, by = %caller.id(), "password reset");
    Ok(())
}

/// Changes the caller's own password after checking the current one (401 when it is wrong, counted like a sign-in
/// attempt); every other session of theirs ends, this one stays.
pub async fn change_own_password(
    state: &AppState,
    caller: &AuthUser,
    req: &rh_protocol::invites::ChangePasswordRequest,
) -> Result<(), ApiError> {
    let password = Password::parse(&req.new_password).map_err(ApiError::Validation)?;
    super::limits::sign_in_attempt(state, None, &caller.0.email).await?;
    let current = rh_store::orgs::password_hash(&state.db, caller.id()).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::Unauthorized("this account no longer exists".into()),
        other => other.into(),
    })?;
    let given = req.current_password.clone();
    if !crate::routes::auth::verify_password(state, given, current).await? {
        return Err(ApiError::Unauthorized("the current password is wrong".into()));
    }
    let hash = crate::routes::auth::hash_password(state, password.expose().to_owned()).await?;
    rh_store::orgs::set_password(&state.db, caller.org(), caller.id(), &hash).await.map_err(no_member)?;
    let reason = EndReason::PasswordChanged;
    let ended = rh_store::sessions::revoke_others(&state.db, caller.id(), caller.session(), reason).await?;
    state.metrics.sessions_ended.with_label_values(&[reason.as_str()]).inc_by(ended.len() as u64);
    for session_id in ended {
        super::events::session_ended(state, caller.id(), Some(session_id)).await;
    }
    tracing::info!(user_id = %caller.id(), "password changed");
    Ok(())
}
