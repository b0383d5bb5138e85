//! `sessions` and `refresh_tokens` (`sql/V4__sessions.sql`): logins, their rotating refresh tokens (hashes only),
//! and revocation. The api checks [`is_active`] on every authenticated request.

use crate::{Db, Result};
use uuid::Uuid;

/// Why a session ended (the `revoked_reason` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Logout,
    /// A rotated refresh token was presented again: someone else holds a copy.
    RefreshReuse,
    MemberRemoved,
    PasswordReset,
    /// The person changed their own password: their other sessions end.
    PasswordChanged,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::RefreshReuse => "refresh_reuse",
            EndReason::MemberRemoved => "member_removed",
            EndReason::PasswordReset => "password_reset",
            EndReason::PasswordChanged => "password_changed",
        }
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is now used, and the new one is the session's current token.
    Rotated { session_id: Uuid, user_id: Uuid },
    /// The token was rotated moments ago (within the grace) to the successor presented, which is still unused:
    /// two refreshes raced with one token. The session goes on with that one successor.
    Repeated { session_id: Uuid, user_id: Uuid },
    /// The token had been rotated already: the session is now revoked (theft detection).
    Reused { session_id: Uuid, user_id: Uuid },
    /// Unknown token, or its session is revoked or expired.
    Invalid,
}

/// Opens a session for `user_id` whose first refresh token has hash `refresh_hash`; returns its id.
pub async fn create(db: &Db, user_id: Uuid, refresh_hash: &[u8], ttl_secs: u64) -> Result<Uuid> {
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    let id = Uuid::now_v7();
    tx.execute(
        "INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, now() + $3::float8 * interval '1 second')",
        &[&id, &user_id, &(ttl_secs as f64)],
    )
    .await?;
    tx.execute("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)", &[&refresh_hash, &id]).await?;
    tx.commit().await?;
    Ok(id)
}

/// How [`rotate`] treats a token.
#[derive(Debug, Clone, Copy)]
pub struct RotationRules {
    /// How far a session's end moves ahead.
    pub ttl_secs: u64,
    /// How long after its rotation a token still gets its (unused) successor instead of ending the session.
    pub grace_secs: u64,
}

/// Rotates refresh token `old_hash` to `new_hash`, the hash of its successor (one transaction, rows locked, so two
/// presentations of one token cannot both rotate it), sliding the session's expiry; see [`Rotation`]. The
/// successor is derived from the token (`rh_auth::TokenKeys::refresh_successor`), so a repeat presents the same
/// `new_hash`, and finding that row unused proves it is this token's one successor.
pub async fn rotate(db: &Db, old_hash: &[u8], new_hash: &[u8], rules: RotationRules) -> Result<Rotation> {
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT s.id, s.user_id, t.used_at IS NOT NULL, s.revoked_at IS NULL AND s.expires_at > now(), \
             t.used_at > now() - $2::float8 * interval '1 second' \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1 FOR UPDATE",
            &[&old_hash, &(rules.grace_secs as f64)],
        )
        .await?;
    let Some(row) = row else { return Ok(Rotation::Invalid) };
    let (session_id, user_id): (Uuid, Uuid) = (row.try_get(0)?, row.try_get(1)?);
    let (used, active): (bool, bool) = (row.try_get(2)?, row.try_get(3)?);
    let in_grace: Option<bool> = row.try_get(4)?;
    if !active {
        return Ok(Rotation::Invalid);
    }
    if used {
        if in_grace == Some(true) && successor_unused(&tx, new_hash, session_id).await? {
            return Ok(Rotation::Repeated { session_id, user_id });
        }
        revoke_in(&tx, session_id, EndReason::RefreshReuse).await?;
        tx.commit().await?;
        return Ok(Rotation::Reused { session_id, user_id });
    }
    tx.execute("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", &[&old_hash]).await?;
    tx.execute("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)", &[&new_hash, &session_id])
        .await?;
    tx.execute(
        "UPDATE sessions SET expires_at = now() + $2::float8 * interval '1 second' WHERE id = $1",
        &[&session_id, &(rules.ttl_secs as f64)],
    )
    .await?;
    tx.commit().await?;
    Ok(Rotation::Rotated { session_id, user_id })
}

async fn successor_unused(tx: &tokio_postgres::Transaction<'_>, new_hash: &[u8], session_id: Uuid) -> Result<bool> {
    let row = tx
        .query_opt(
            "SELECT 1 FROM refresh_tokens WHERE token_hash = $1 AND session_id = $2 AND used_at IS NULL",
            &[&new_hash, &session_id],
        )
        .await?;
    Ok(row.is_some())
}

async fn revoke_in(tx: &tokio_postgres::Transaction<'_>, session_id: Uuid, reason: EndReason) -> Result<u64> {
    Ok(tx
        .execute(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&session_id, &reason.as_str()],
        )
        .await?)
}

/// Ends session `session_id` of `user_id`; true if it was still open.
pub async fn revoke(db: &Db, session_id: Uuid, user_id: Uuid, reason: EndReason) -> Result<bool> {
    let client = db.client().await?;
    let n = client
        .execute(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $3 \
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            &[&session_id, &user_id, &reason.as_str()],
        )
        .await?;
    Ok(n > 0)
}

/// Ends every open session of `user_id`; returns how many.
pub async fn revoke_all(db: &Db, user_id: Uuid, reason: EndReason) -> Result<u64> {
    let client = db.client().await?;
    Ok(client
        .execute(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            &[&user_id, &reason.as_str()],
        )
        .await?)
}

/// Revokes every open session of `user_id` but `keep`; returns the ids of those it revoked.
pub async fn revoke_others(db: &Db, user_id: Uuid, keep: Uuid, reason: EndReason) -> Result<Vec<Uuid>> {
    let client = db.client().await?;
    let rows = client
        .query(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $3 \
             WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL RETURNING id",
            &[&user_id, &keep, &reason.as_str()],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// True while session `session_id` of `user_id` is open (not revoked, not expired, the person still exists).
pub async fn is_active(db: &Db, session_id: Uuid, user_id: Uuid) -> Result<bool> {
    let client = db.client().await?;
    let statement = client
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND user_id = $2 \
             AND revoked_at IS NULL AND expires_at > now())",
        )
        .await?;
    Ok(client.query_one(&statement, &[&session_id, &user_id]).await?.try_get(0)?)
}

/// A redeemed socket ticket: who, which session, and the expiry (Unix seconds) of the token it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub user_id: Uuid,
    pub name: String,
    pub session_id: Uuid,
    pub token_exp: u64,
}

/// Stores a socket ticket of session `session_id` valid for `ttl_secs` (and drops expired ones).
pub async fn create_ticket(db: &Db, ticket_hash: &[u8], session_id: Uuid, token_exp: u64, ttl_secs: u64) -> Result<()> {
    let client = db.client().await?;
    client.execute("DELETE FROM socket_tickets WHERE expires_at < now()", &[]).await?;
    client
        .execute(
            "INSERT INTO socket_tickets (ticket_hash, session_id, token_exp, expires_at) \
             VALUES ($1, $2, $3, now() + $4::float8 * interval '1 second')",
            &[&ticket_hash, &session_id, &(token_exp as i64), &(ttl_secs as f64)],
        )
        .await?;
    Ok(())
}

/// Redeems a socket ticket: deletes it (so it works once) and returns it if it was unexpired and its session open.
pub async fn redeem_ticket(db: &Db, ticket_hash: &[u8]) -> Result<Option<Redeemed>> {
    let client = db.client().await?;
    let row = client
        .query_opt(
            "WITH t AS (DELETE FROM socket_tickets WHERE ticket_hash = $1 RETURNING session_id, token_exp, expires_at) \
             SELECT s.user_id, u.name, s.id, t.token_exp FROM t \
             JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id \
             WHERE t.expires_at > now() AND s.revoked_at IS NULL AND s.expires_at > now()",
            &[&ticket_hash],
        )
        .await?;
    row.map(|r| {
        let exp: i64 = r.try_get(3)?;
        Ok(Redeemed {
            user_id: r.try_get(0)?,
            name: r.try_get(1)?,
            session_id: r.try_get(2)?,
            token_exp: u64::try_from(exp).unwrap_or(0),
        })
    })
    .transpose()
}
