//! `invites` (`sql/V12__invites.sql`): one-time, expiring invitations to join an org. Only the SHA-256 of an
//! invite's secret is stored; [`claim`] uses one up in the transaction that creates the account, so an invite can
//! never make two accounts and a failed sign-up leaves it usable.

use crate::{Db, Result, StoreError};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

/// An invite as admins list it (never its secret).
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: Option<String>,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An invite to create.
#[derive(Debug, Clone)]
pub struct NewInvite<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: Option<&'a str>,
    pub role: &'a str,
    pub token_hash: &'a [u8],
    pub created_by: Uuid,
    pub ttl_secs: u64,
}

/// Why an invite cannot be used (the holder is told which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// No invite has this secret (a mistyped or tampered link).
    Unknown,
    Used,
    Expired,
    Revoked,
}

const COLUMNS: &str = "id, org_id, email, role, created_at, expires_at, used_at, revoked_at";

fn invite_from(row: &Row) -> Result<Invite> {
    Ok(Invite {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        email: row.try_get("email")?,
        role: row.try_get("role")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Creates invites in the caller's transaction; returns them as stored.
pub async fn create(tx: &impl GenericClient, new: &[NewInvite<'_>]) -> Result<Vec<Invite>> {
    let mut out = Vec::with_capacity(new.len());
    for n in new {
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO invites (id, org_id, email, role, token_hash, created_by, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, now() + $7::float8 * interval '1 second') RETURNING {COLUMNS}"
                ),
                &[&n.id, &n.org_id, &n.email, &n.role, &n.token_hash, &n.created_by, &(n.ttl_secs as f64)],
            )
            .await?;
        out.push(invite_from(&row)?);
    }
    Ok(out)
}

/// The invites of `org_id`, newest first, at most `limit`.
pub async fn list(db: &Db, org_id: Uuid, limit: i64) -> Result<Vec<Invite>> {
    let client = db.client().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM invites WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"),
            &[&org_id, &limit],
        )
        .await?;
    rows.iter().map(invite_from).collect()
}

/// Revokes an unused invite of `org_id`. `NotFound` when the org has no such invite; `Conflict` when it was used.
pub async fn revoke(tx: &impl GenericClient, org_id: Uuid, id: Uuid) -> Result<()> {
    let row = tx
        .query_opt("SELECT used_at IS NOT NULL FROM invites WHERE id = $1 AND org_id = $2 FOR UPDATE", &[&id, &org_id])
        .await?
        .ok_or(StoreError::NotFound)?;
    if row.try_get::<_, bool>(0)? {
        return Err(StoreError::Conflict("this invite was already used".into()));
    }
    tx.execute("UPDATE invites SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", &[&id]).await?;
    Ok(())
}

/// The invite with this secret, with its org's name, if it can still be used; else why not.
pub async fn find(db: &Db, token_hash: &[u8]) -> Result<std::result::Result<(Invite, String), Unusable>> {
    let client = db.client().await?;
    let row = client
        .query_opt(
            "SELECT i.id, i.org_id, i.email, i.role, i.created_at, i.expires_at, i.used_at, i.revoked_at, \
                    o.name AS org_name, i.expires_at <= now() AS expired \
             FROM invites i JOIN orgs o ON o.id = i.org_id WHERE i.token_hash = $1",
            &[&token_hash],
        )
        .await?;
    let Some(row) = row else { return Ok(Err(Unusable::Unknown)) };
    let invite = invite_from(&row)?;
    Ok(if invite.used_at.is_some() {
        Err(Unusable::Used)
    } else if invite.revoked_at.is_some() {
        Err(Unusable::Revoked)
    } else if row.try_get::<_, bool>("expired")? {
        Err(Unusable::Expired)
    } else {
        Ok((invite, row.try_get("org_name")?))
    })
}

/// Uses up the invite with this secret in the caller's transaction (locked, so two sign-ups with one link cannot
/// both succeed); returns it, or why it cannot be used. Record who used it with [`mark_used_by`].
pub async fn claim(tx: &impl GenericClient, token_hash: &[u8]) -> Result<std::result::Result<Invite, Unusable>> {
    let row = tx
        .query_opt(
            &format!("SELECT {COLUMNS}, expires_at <= now() AS expired FROM invites WHERE token_hash = $1 FOR UPDATE"),
            &[&token_hash],
        )
        .await?;
    let Some(row) = row else { return Ok(Err(Unusable::Unknown)) };
    let invite = invite_from(&row)?;
    if invite.used_at.is_some() {
        return Ok(Err(Unusable::Used));
    }
    if invite.revoked_at.is_some() {
        return Ok(Err(Unusable::Revoked));
    }
    if row.try_get::<_, bool>("expired")? {
        return Ok(Err(Unusable::Expired));
    }
    tx.execute("UPDATE invites SET used_at = now() WHERE id = $1", &[&invite.id]).await?;
    Ok(Ok(invite))
}

/// Records the account a claimed invite created.
pub async fn mark_used_by(tx: &impl GenericClient, id: Uuid, user_id: Uuid) -> Result<()> {
    tx.execute("UPDATE invites SET used_by = $2 WHERE id = $1", &[&id, &user_id]).await?;
    Ok(())
}
