//! Invitations instead of first passwords: an org admin creates one-time, expiring invites (one per email, or one
//! open invite), lists and revokes them; the teammate looks theirs up, picks a name and password, and joins — the
//! account and the invite's use commit together, and they are signed in. Refused, each with its own message: a
//! used, expired, revoked or unknown (mistyped, tampered) invite. Audit rows: created, revoked, accepted.

use super::{limits, sessions};
use crate::domain::{Email, Password, PersonName};
use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::state::AppState;
use rh_auth::RefreshToken;
use rh_protocol::auth::Tokens;
use rh_protocol::invites::{
    AcceptInviteRequest, CreateInvitesRequest, CreatedInvite, CreatedInvites, InviteInfo, InviteList, InviteLookup,
    InviteStatus,
};
use rh_store::invites::{self, Invite, NewInvite, Unusable};
use rh_store::orgs::NewUser;
use rh_store::{StoreError, audit_log};
use serde_json::json;
use uuid::Uuid;

/// Most invites created at once.
pub const MAX_INVITES_PER_REQUEST: usize = 50;
/// How long an invite works unless the admin says otherwise: a week.
pub const DEFAULT_TTL_HOURS: u32 = 168;
/// Longest an invite may work: 30 days.
pub const MAX_TTL_HOURS: u32 = 720;
/// Most invites listed.
const LIST_LIMIT: i64 = 500;

/// The refusal the holder of an unusable invite sees.
fn refused(why: Unusable) -> ApiError {
    ApiError::NotFound(
        match why {
            Unusable::Unknown => "no such invite: check that the link was copied whole",
            Unusable::Used => "this invite was already used: sign in instead, or ask for a new invite",
            Unusable::Expired => "this invite has expired: ask your admin for a new one",
            Unusable::Revoked => "this invite was revoked: ask your admin for a new one",
        }
        .into(),
    )
}

/// The sign-in limit's per-"email" bucket of an invite: named by a prefix of its secret's hash (never the secret),
/// so one invite cannot be hammered, and the address bucket bounds guessing across invites.
fn attempt_key(token: &str) -> String {
    let hash = rh_auth::refresh_hash(token);
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("invite:{hex}")
}

fn status(invite: &Invite) -> InviteStatus {
    if invite.used_at.is_some() {
        InviteStatus::Used
    } else if invite.revoked_at.is_some() {
        InviteStatus::Revoked
    } else if invite.expires_at <= chrono::Utc::now() {
        InviteStatus::Expired
    } else {
        InviteStatus::Pending
    }
}

/// Creates invites (org admins): one per email, or one open invite when none is given.
pub async fn create(
    state: &AppState,
    caller: &AuthUser,
    org_id: Uuid,
    req: &CreateInvitesRequest,
) -> Result<CreatedInvites, ApiError> {
    super::access::org_admin(caller, org_id, "invite people")?;
    let role = match req.role.as_deref() {
        None | Some("member") => "member",
        Some("admin") => "admin",
        Some(other) => return Err(ApiError::Validation(format!("role {other:?} is not \"member\" or \"admin\""))),
    };
    let hours = req.expires_in_hours.unwrap_or(DEFAULT_TTL_HOURS);
    if !(1..=MAX_TTL_HOURS).contains(&hours) {
        return Err(ApiError::Validation(format!("expires_in_hours must be 1 to {MAX_TTL_HOURS}")));
    }
    if req.emails.len() > MAX_INVITES_PER_REQUEST {
        return Err(ApiError::Validation(format!("at most {MAX_INVITES_PER_REQUEST} emails per request")));
    }
    let emails = req.emails.iter().map(|e| Email::parse(e).map(Some)).collect::<Result<Vec<_>, _>>();
    let mut emails = emails.map_err(ApiError::Validation)?;
    if emails.is_empty() {
        emails.push(None);
    }
    let mut secrets = Vec::with_capacity(emails.len());
    for _ in &emails {
        secrets.push(RefreshToken::generate().map_err(|e| ApiError::Internal(e.into()))?);
    }
    let hashes: Vec<Vec<u8>> = secrets.iter().map(RefreshToken::hash).collect();
    let new: Vec<NewInvite<'_>> = emails
        .iter()
        .zip(&hashes)
        .map(|(email, hash)| NewInvite {
            id: Uuid::now_v7(),
            org_id,
            email: email.as_ref().map(Email::as_str),
            role,
            token_hash: hash,
            created_by: caller.id(),
            ttl_secs: u64::from(hours) * 3600,
        })
        .collect();
    let mut client = state.db.client().await?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let created = invites::create(&tx, &new).await?;
    for invite in &created {
        let detail = json!({ "invite_id": invite.id, "role": invite.role, "for_email": invite.email.is_some() });
        audit_log::record(&tx, org_id, caller.id(), "invite.created", detail).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    let invites = created
        .into_iter()
        .zip(&secrets)
        .map(|(i, secret)| CreatedInvite {
            id: i.id,
            email: i.email,
            role: i.role,
            expires_at: i.expires_at.to_rfc3339(),
            token: secret.expose().to_owned(),
        })
        .collect();
    Ok(CreatedInvites { invites })
}

/// The org's invites, newest first (org admins).
pub async fn list(state: &AppState, caller: &AuthUser, org_id: Uuid) -> Result<InviteList, ApiError> {
    super::access::org_admin(caller, org_id, "list invites")?;
    let invites = invites::list(&state.db, org_id, LIST_LIMIT).await?;
    Ok(InviteList {
        invites: invites
            .iter()
            .map(|i| InviteInfo {
                id: i.id,
                email: i.email.clone(),
                role: i.role.clone(),
                status: status(i),
                created_at: i.created_at.to_rfc3339(),
                expires_at: i.expires_at.to_rfc3339(),
            })
            .collect(),
    })
}

/// Revokes an unused invite (org admins). 404 for another org's or an unknown id, 409 when it was used.
pub async fn revoke(state: &AppState, caller: &AuthUser, org_id: Uuid, id: Uuid) -> Result<(), ApiError> {
    super::access::org_admin(caller, org_id, "revoke invites")?;
    let mut client = state.db.client().await?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    invites::revoke(&tx, org_id, id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound("no such invite in this organization".into()),
        other => other.into(),
    })?;
    audit_log::record(&tx, org_id, caller.id(), "invite.revoked", json!({ "invite_id": id })).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// What an invite is for, if it can still be used. Counted like a sign-in attempt (guessing secrets is bounded).
pub async fn lookup(state: &AppState, addr: Option<std::net::IpAddr>, token: &str) -> Result<InviteLookup, ApiError> {
    limits::sign_in_attempt(state, addr, &attempt_key(token)).await?;
    let (invite, org_name) = invites::find(&state.db, &rh_auth::refresh_hash(token)).await?.map_err(refused)?;
    Ok(InviteLookup { org_name, email: invite.email, role: invite.role, expires_at: invite.expires_at.to_rfc3339() })
}

/// Joins the invite's org with a new account and signs in. The invite is used up only if the account is created.
pub async fn accept(
    state: &AppState,
    addr: Option<std::net::IpAddr>,
    req: &AcceptInviteRequest,
) -> Result<Tokens, ApiError> {
    let name = PersonName::parse(&req.name).map_err(ApiError::Validation)?;
    let password = Password::parse(&req.password).map_err(ApiError::Validation)?;
    let given = req.email.as_deref().map(Email::parse).transpose().map_err(ApiError::Validation)?;
    limits::sign_in_attempt(state, addr, &attempt_key(&req.token)).await?;
    let hash = crate::routes::auth::hash_password(state, password.expose().to_owned()).await?;
    let mut client = state.db.client().await?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let invite = invites::claim(&tx, &rh_auth::refresh_hash(&req.token)).await?.map_err(refused)?;
    // With passwords off the invited join by single sign-on instead (the invite stays usable: this rolls back).
    super::sso::check_password_allowed_in_org(state, invite.org_id).await?;
    let email = match (invite.email.as_deref(), given.as_ref()) {
        (Some(invited), Some(given)) if invited != given.as_str() => {
            return Err(ApiError::Validation("this invite is for another email address".into()));
        }
        (Some(invited), _) => invited.to_owned(),
        (None, Some(given)) => given.as_str().to_owned(),
        (None, None) => return Err(ApiError::Validation("email is required".into())),
    };
    let new = NewUser {
        id: Uuid::now_v7(),
        org_id: invite.org_id,
        name: name.as_str(),
        email: &email,
        password_hash: &hash,
        role: &invite.role,
    };
    let user = rh_store::orgs::insert_user_in(&*tx, &new).await.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::Conflict("an account with this email exists: sign in instead".into()),
        other => other.into(),
    })?;
    invites::mark_used_by(&tx, invite.id, user.id).await?;
    let detail = json!({ "invite_id": invite.id, "user_id": user.id });
    audit_log::record(&tx, invite.org_id, user.id, "invite.accepted", detail).await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(org_id = %invite.org_id, user_id = %user.id, "invite accepted");
    sessions::open(state, &user).await
}
