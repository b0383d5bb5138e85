//! `shares`: the personal ACL. One row per (conversation, person) with `view` or `respond`; the owner has no row.
//! A person's permission also counts their teams' shares (`crate::teams`). Written by the api only; same-org and not-the-owner are checked by the api before writing. A share with
//! `expires_at` grants nothing from then on ([`crate::conversations::SHARE_LIVE`]) and is removed by the api's
//! expiry task ([`expired`], [`delete_expired`]).

use crate::conversations::permission_from;
use crate::{Db, Result, StoreError};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rh_protocol::Permission;
use serde::Serialize;
use uuid::Uuid;

/// A person a conversation is shared with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Participant {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    pub permission: Permission,
    pub granted_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The share ends by itself at this time (see [`expired`]).
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<&Participant> for rh_protocol::api::conversations::Participant {
    fn from(p: &Participant) -> Self {
        Self {
            user_id: p.user_id,
            name: p.name.clone(),
            email: p.email.clone(),
            permission: p.permission,
            expires_at: p.expires_at,
        }
    }
}

/// The people `conversation_id` is shared with, in the order they were added.
pub async fn list(db: &Db, conversation_id: Uuid) -> Result<Vec<Participant>> {
    list_on(&db.client().await?, conversation_id).await
}

/// [`list`] on a connection (or transaction) the caller holds.
pub async fn list_on(client: &impl GenericClient, conversation_id: Uuid) -> Result<Vec<Participant>> {
    let statement = client
        .prepare_cached(
            "SELECT s.user_id, u.name, u.email, s.permission, s.granted_by, s.created_at, s.updated_at, s.expires_at \
             FROM shares s JOIN users u ON u.id = s.user_id \
             WHERE s.conversation_id = $1 ORDER BY s.created_at, u.name",
        )
        .await?;
    let rows = client.query(&statement, &[&conversation_id]).await?;
    rows.iter()
        .map(|row| {
            let permission: String = row.try_get("permission")?;
            Ok(Participant {
                user_id: row.try_get("user_id")?,
                name: row.try_get("name")?,
                email: row.try_get("email")?,
                permission: permission_from(&permission),
                granted_by: row.try_get("granted_by")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .collect()
}

/// A share to write: who, with which permission (`view` or `respond`), until when (`None`: until revoked).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewShare {
    pub user_id: Uuid,
    pub permission: Permission,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Shares with several people at once, in the caller's transaction (all or nothing): new shares are added,
/// existing ones get the given permission and expiry. Who gained or lost what is the caller's to compute (before
/// and after, `crate::teams::permissions`), since teams count too.
pub async fn upsert_many(
    tx: &impl GenericClient,
    conversation_id: Uuid,
    granted_by: Uuid,
    shares: &[NewShare],
) -> Result<()> {
    for share in shares {
        tx.execute(
            "INSERT INTO shares (conversation_id, user_id, permission, granted_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (conversation_id, user_id) DO UPDATE \
               SET permission = EXCLUDED.permission, granted_by = EXCLUDED.granted_by, \
                   expires_at = EXCLUDED.expires_at, updated_at = now() \
             WHERE shares.permission <> EXCLUDED.permission \
                OR shares.expires_at IS DISTINCT FROM EXCLUDED.expires_at",
            &[&conversation_id, &share.user_id, &share.permission.as_str(), &granted_by, &share.expires_at],
        )
        .await?;
    }
    Ok(())
}

/// Changes an existing share, in the caller's transaction. `NotFound` when there is no such share.
pub async fn update(
    tx: &impl GenericClient,
    conversation_id: Uuid,
    user_id: Uuid,
    permission: Permission,
) -> Result<()> {
    let n = tx
        .execute(
            "UPDATE shares SET permission = $3, updated_at = now() WHERE conversation_id = $1 AND user_id = $2",
            &[&conversation_id, &user_id, &permission.as_str()],
        )
        .await?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Revokes a share, in the caller's transaction. `NotFound` when there was none.
pub async fn delete(tx: &impl GenericClient, conversation_id: Uuid, user_id: Uuid) -> Result<()> {
    let n = tx
        .execute("DELETE FROM shares WHERE conversation_id = $1 AND user_id = $2", &[&conversation_id, &user_id])
        .await?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// How many people conversation `conversation_id` is shared with personally now (its owner's "Shared with N").
pub async fn live_count(tx: &impl GenericClient, conversation_id: Uuid) -> Result<u32> {
    let sql =
        format!("SELECT count(*) FROM shares s WHERE s.conversation_id = $1 {}", crate::conversations::SHARE_LIVE);
    let n: i64 = tx.query_one(&sql, &[&conversation_id]).await?.try_get(0)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The conversations shared with `user_id` personally (not through a team).
pub async fn conversations_shared_with(db: &Db, user_id: Uuid) -> Result<Vec<Uuid>> {
    let client = db.client().await?;
    let rows = client.query("SELECT conversation_id FROM shares WHERE user_id = $1", &[&user_id]).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Up to `limit` shares whose `expires_at` has passed, as `(conversation_id, user_id)`, soonest first.
pub async fn expired(db: &Db, limit: i64) -> Result<Vec<(Uuid, Uuid)>> {
    let client = db.client().await?;
    let statement = client
        .prepare_cached(
            "SELECT conversation_id, user_id FROM shares WHERE expires_at <= now() ORDER BY expires_at LIMIT $1",
        )
        .await?;
    let rows = client.query(&statement, &[&limit]).await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// Removes a share if it has expired, in the caller's transaction. False when it is gone or was renewed (another
/// api replica removed it first, or the owner shared again).
pub async fn delete_expired(tx: &impl GenericClient, conversation_id: Uuid, user_id: Uuid) -> Result<bool> {
    let n = tx
        .execute(
            "DELETE FROM shares WHERE conversation_id = $1 AND user_id = $2 AND expires_at <= now()",
            &[&conversation_id, &user_id],
        )
        .await?;
    Ok(n > 0)
}
