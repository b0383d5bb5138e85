//! Sessions: login opens one, refresh rotates its refresh token, logout (and an admin removing a member or resetting
//! a password) ends it. Access tokens carry the session id (`sid`); [`crate::extract::AuthUser`] refuses a token
//! whose session ended. `SECURITY.md`, "Sessions", says why it is built this way.

use crate::error::ApiError;
use crate::state::AppState;
use rh_auth::{Claims, RefreshToken, Role};
use rh_protocol::auth::{SessionUser, SocketTicket, Tokens};
use rh_protocol::rpc::{SocketCredential, SocketGrant};
use rh_store::orgs::User;
use rh_store::sessions::{self, EndReason, Rotation};
use uuid::Uuid;

/// Opens a session for `user` (after a checked password): its first access and refresh tokens.
pub async fn open(state: &AppState, user: &User) -> Result<Tokens, ApiError> {
    let refresh = RefreshToken::generate().map_err(|e| ApiError::Internal(e.into()))?;
    let sid = sessions::create(&state.db, user.id, &refresh.hash(), state.settings.refresh_ttl_secs).await?;
    tokens(state, user, sid, refresh)
}

/// Trades a refresh token for new tokens. A token used before ends its session: whoever presents a rotated token
/// holds a copy (theft, or a client that lost the newer one), and the owner signs in again — unless it comes back
/// within `--refresh-reuse-grace-secs` of its rotation while its successor is unused: two refreshes racing with
/// one token (a script refreshing in parallel) both get that same successor.
pub async fn refresh(state: &AppState, presented: &str) -> Result<Tokens, ApiError> {
    let invalid = || ApiError::Unauthorized("invalid or expired refresh token; sign in again".into());
    let next = state.keys.refresh_successor(presented);
    let old = rh_auth::refresh_hash(presented);
    let rules = sessions::RotationRules {
        ttl_secs: state.settings.refresh_ttl_secs,
        grace_secs: state.settings.refresh_reuse_grace_secs,
    };
    match sessions::rotate(&state.db, &old, &next.hash(), rules).await? {
        Rotation::Rotated { session_id, user_id } | Rotation::Repeated { session_id, user_id } => {
            let user = rh_store::orgs::user(&state.db, user_id).await.map_err(|e| match e {
                rh_store::StoreError::NotFound => invalid(),
                other => other.into(),
            })?;
            tokens(state, &user, session_id, next)
        }
        Rotation::Reused { session_id, user_id } => {
            tracing::warn!(%session_id, %user_id, "a rotated refresh token was presented again: session revoked");
            state.metrics.sessions_ended.with_label_values(&[EndReason::RefreshReuse.as_str()]).inc();
            super::events::session_ended(state, user_id, Some(session_id)).await;
            Err(invalid())
        }
        Rotation::Invalid => Err(invalid()),
    }
}

/// Ends the caller's session (logout): its refresh token stops working, its access tokens are refused by the api
/// at once and its sockets are closed by the edge.
pub async fn end(state: &AppState, user_id: Uuid, session_id: Uuid) -> Result<(), ApiError> {
    if sessions::revoke(&state.db, session_id, user_id, EndReason::Logout).await? {
        state.metrics.sessions_ended.with_label_values(&[EndReason::Logout.as_str()]).inc();
    }
    super::events::session_ended(state, user_id, Some(session_id)).await;
    Ok(())
}

/// Ends every session of `user_id` (a removed member, a reset password).
pub async fn end_all(state: &AppState, user_id: Uuid, reason: EndReason) -> Result<(), ApiError> {
    let n = sessions::revoke_all(&state.db, user_id, reason).await?;
    state.metrics.sessions_ended.with_label_values(&[reason.as_str()]).inc_by(n);
    super::events::session_ended(state, user_id, None).await;
    Ok(())
}

fn tokens(state: &AppState, user: &User, sid: Uuid, refresh: RefreshToken) -> Result<Tokens, ApiError> {
    let role: Role = user.role.parse().map_err(|_| ApiError::Internal(anyhow::anyhow!("bad role {}", user.role)))?;
    let ttl = state.settings.token_ttl_secs;
    let claims = Claims {
        sub: user.id,
        org: user.org_id,
        name: user.name.clone(),
        email: user.email.clone(),
        role,
        sid,
        exp: rh_auth::expiry_in(ttl),
    };
    let token = state.keys.issue(&claims).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Tokens { token, expires_in: ttl, refresh_token: refresh.expose().to_owned(), user: session_user(user) })
}

/// The public shape of a person.
pub fn session_user(user: &User) -> SessionUser {
    SessionUser {
        id: user.id,
        org_id: user.org_id,
        name: user.name.clone(),
        email: user.email.clone(),
        role: user.role.clone(),
    }
}

/// How long a socket ticket works.
pub const TICKET_TTL_SECS: u64 = 30;

/// A one-time socket ticket for the caller's session (`GET /ws?ticket=`), so the token stays out of URLs.
pub async fn ticket(state: &AppState, claims: &Claims) -> Result<SocketTicket, ApiError> {
    let ticket = RefreshToken::generate().map_err(|e| ApiError::Internal(e.into()))?;
    sessions::create_ticket(&state.db, &ticket.hash(), claims.sid, claims.exp, TICKET_TTL_SECS).await?;
    Ok(SocketTicket { ticket: ticket.expose().to_owned(), expires_in: TICKET_TTL_SECS })
}

/// `rh.api.socket_auth`: who a socket's credential belongs to, if its session is open. A ticket works once.
pub async fn socket_auth(state: &AppState, credential: SocketCredential) -> Result<SocketGrant, ApiError> {
    let refused = || ApiError::Unauthorized("invalid or expired credential, or the session ended".into());
    match credential {
        SocketCredential::Ticket(ticket) => {
            let r = sessions::redeem_ticket(&state.db, &rh_auth::refresh_hash(&ticket)).await?.ok_or_else(refused)?;
            if r.token_exp <= rh_auth::expiry_in(0) {
                return Err(refused());
            }
            Ok(SocketGrant { user_id: r.user_id, name: r.name, session_id: r.session_id, expires_at: r.token_exp })
        }
        SocketCredential::Token(token) => {
            let claims = state.keys.verify(&token).map_err(|_| refused())?;
            if !sessions::is_active(&state.db, claims.sid, claims.sub).await? {
                return Err(refused());
            }
            Ok(SocketGrant { user_id: claims.sub, name: claims.name, session_id: claims.sid, expires_at: claims.exp })
        }
    }
}
