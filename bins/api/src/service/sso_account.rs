//! Which account a checked ID token signs in as. The provider's subject (issuer, `sub`) names the person; the email
//! only finds the account the first time:
//!
//! 1. A subject bound before signs in as its account (of this org, not removed), whatever email the token carries
//!    now: the account's email is not changed.
//! 2. Else the verified email's account of this org is bound to the subject, unless it is bound to another subject
//!    of this issuer (`sso_account_bound`: an email reassigned at the provider does not take the account over).
//! 3. Else a person new to the org joins it (member, or the role of a pending invite naming the email) when the
//!    domain is one of the org's or such an invite exists, bound to the subject in the same transaction.

use super::sso::refused;
use super::sso_login::token_invalid;
use crate::domain::{Email, PersonName};
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::StatusCode;
use openidconnect::core::CoreIdTokenClaims;
use rh_auth::RefreshToken;
use rh_protocol::frame::ErrorCode;
use rh_store::orgs::{NewUser, User};
use rh_store::sso::{Binding, SsoConfig};
use rh_store::{StoreError, audit_log, sso};
use serde_json::json;
use uuid::Uuid;

/// The subject the token names: its issuer and `sub`.
struct Subject<'a> {
    issuer: &'a str,
    sub: &'a str,
}

/// The org member `claims` sign in as (module doc).
pub async fn member_for(state: &AppState, config: &SsoConfig, claims: &CoreIdTokenClaims) -> Result<User, ApiError> {
    let subject = Subject { issuer: claims.issuer().as_str(), sub: claims.subject().as_str() };
    if let Some((user, removed)) = sso::user_for_subject(&state.db, subject.issuer, subject.sub).await? {
        return bound(config, claims, user, removed);
    }
    let email = verified_email(claims)?;
    if let Some((user, _)) = rh_store::orgs::user_for_login(&state.db, email.as_str()).await? {
        if user.org_id != config.org_id {
            return Err(not_allowed("this email belongs to an account of another organization"));
        }
        let mut db = state.db.client().await?;
        let tx = db.transaction().await.map_err(StoreError::from)?;
        bind(&tx, &subject, user.id).await?;
        let detail = json!({ "user_id": user.id, "issuer": subject.issuer });
        audit_log::record(&tx, config.org_id, user.id, "sso.bound", detail).await?;
        tx.commit().await.map_err(StoreError::from)?;
        return Ok(user);
    }
    join(state, config, claims, &subject, &email).await
}

fn not_allowed(why: &str) -> ApiError {
    refused(ErrorCode::SsoDomainNotAllowed, StatusCode::FORBIDDEN, why.to_owned())
}

/// A subject bound before: its account, if it is still a member of this org.
fn bound(config: &SsoConfig, claims: &CoreIdTokenClaims, user: User, removed: bool) -> Result<User, ApiError> {
    if removed {
        return Err(not_allowed("this account was removed from the organization"));
    }
    if user.org_id != config.org_id {
        return Err(not_allowed("this identity belongs to an account of another organization"));
    }
    let same = claims.email().is_some_and(|e| e.as_str().trim().eq_ignore_ascii_case(user.email.trim()));
    if !same {
        // Logged so an admin can see it; the account keeps the email it was made with (SECURITY.md).
        tracing::warn!(user_id = %user.id, "the provider's email for this account differs from the account's");
    }
    Ok(user)
}

fn verified_email(claims: &CoreIdTokenClaims) -> Result<Email, ApiError> {
    let email = claims.email().map(|e| e.as_str().to_owned()).unwrap_or_default();
    let email = Email::parse(&email).map_err(|_| token_invalid("it carries no email address"))?;
    if claims.email_verified() != Some(true) {
        return Err(refused(
            ErrorCode::SsoEmailUnverified,
            StatusCode::FORBIDDEN,
            "the identity provider has not verified this email address",
        ));
    }
    Ok(email)
}

/// Binds the subject to `user_id` in the caller's transaction.
async fn bind(tx: &deadpool_postgres::Transaction<'_>, subject: &Subject<'_>, user_id: Uuid) -> Result<(), ApiError> {
    match sso::bind_subject(tx, subject.issuer, subject.sub, user_id).await? {
        Binding::Bound => Ok(()),
        Binding::AccountHasAnother => Err(refused(
            ErrorCode::SsoAccountBound,
            StatusCode::FORBIDDEN,
            "this account signs in as another identity at the organization's provider; an administrator there can \
             tell which",
        )),
        Binding::SubjectHasAnother => {
            Err(ApiError::Conflict("this identity was bound to an account at the same moment: sign in again".into()))
        }
    }
}

/// A person new to the org joins it, bound to the subject.
async fn join(
    state: &AppState,
    config: &SsoConfig,
    claims: &CoreIdTokenClaims,
    subject: &Subject<'_>,
    email: &Email,
) -> Result<User, ApiError> {
    let domain = email.as_str().split_once('@').map(|(_, d)| d).unwrap_or_default();
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .and_then(|n| PersonName::parse(n.as_str()).ok())
        .or_else(|| PersonName::parse(email.as_str().split('@').next().unwrap_or_default()).ok())
        .ok_or_else(|| token_invalid("it carries no usable name"))?;
    // The account never signs in with a password: its hash is of a random secret no one keeps.
    let unused = RefreshToken::generate().map_err(|e| ApiError::Internal(e.into()))?;
    let hash = crate::routes::auth::hash_password(state, unused.expose().to_owned()).await?;
    let mut db = state.db.client().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let (role, invite) = if config.email_domains.iter().any(|d| d == domain) {
        ("member".to_owned(), None)
    } else {
        match sso::claim_invite_for_email(&tx, config.org_id, email.as_str()).await? {
            Some((id, role)) => (role, Some(id)),
            None => {
                return Err(not_allowed(
                    "this email's domain is not one of the organization's, and no invite names it",
                ));
            }
        }
    };
    let new = NewUser {
        id: Uuid::now_v7(),
        org_id: config.org_id,
        name: name.as_str(),
        email: email.as_str(),
        password_hash: &hash,
        role: &role,
    };
    let user = rh_store::orgs::insert_user_in(&*tx, &new).await.map_err(|e| match e {
        // The email is taken by a removed account (the unique index covers them): it stays removed.
        StoreError::Conflict(_) => not_allowed("this account was removed from the organization"),
        other => other.into(),
    })?;
    if let Some(id) = invite {
        rh_store::invites::mark_used_by(&tx, id, user.id).await?;
    }
    bind(&tx, subject, user.id).await?;
    let detail = json!({ "user_id": user.id, "invite_id": invite, "issuer": config.issuer });
    audit_log::record(&tx, config.org_id, user.id, "sso.joined", detail).await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(org_id = %config.org_id, user_id = %user.id, "joined by single sign-on");
    Ok(user)
}
