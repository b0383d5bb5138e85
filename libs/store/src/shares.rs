//! `shares`: the ACL. One row per (conversation, person) with `view` or `respond`; the owner has no row.
//! Written by the api only; same-org and not-the-owner are checked by the api before writing.

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
}

/// What writing one share did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// A new share.
    Added,
    /// An existing share got another permission (was the given one).
    Changed { from: Permission },
    /// An existing share already had this permission.
    Unchanged,
}

/// The people `conversation_id` is shared with, in the order they were added.
pub async fn list(db: &Db, conversation_id: Uuid) -> Result<Vec<Participant>> {
    list_on(&db.client().await?, conversation_id).await
}

/// [`list`] on a connection (or transaction) the caller holds.
pub async fn list_on(client: &impl GenericClient, conversation_id: Uuid) -> Result<Vec<Participant>> {
    let statement = client
        .prepare_cached(
            "SELECT s.user_id, u.name, u.email, s.permission, s.granted_by, s.created_at, s.updated_at \
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
            })
        })
        .collect()
}

/// Shares with several people at once, in the caller's transaction (all or nothing): new shares are added,
/// existing ones get the given permission. Returns what happened to each, in the order given. `permission` must
/// be `view` or `respond`.
pub async fn upsert_many(
    tx: &impl GenericClient,
    conversation_id: Uuid,
    granted_by: Uuid,
    shares: &[(Uuid, Permission)],
) -> Result<Vec<Upserted>> {
    let mut out = Vec::with_capacity(shares.len());
    for (user_id, permission) in shares {
        let before = tx
            .query_opt(
                "SELECT permission FROM shares WHERE conversation_id = $1 AND user_id = $2 FOR UPDATE",
                &[&conversation_id, user_id],
            )
            .await?
            .map(|r| r.try_get::<_, String>(0))
            .transpose()?
            .map(|p| permission_from(&p));
        tx.execute(
            "INSERT INTO shares (conversation_id, user_id, permission, granted_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (conversation_id, user_id) DO UPDATE \
               SET permission = EXCLUDED.permission, granted_by = EXCLUDED.granted_by, updated_at = now() \
             WHERE shares.permission <> EXCLUDED.permission",
            &[&conversation_id, user_id, &permission.as_str(), &granted_by],
        )
        .await?;
        out.push(match before {
            None => Upserted::Added,
            Some(from) if from == *permission => Upserted::Unchanged,
            Some(from) => Upserted::Changed { from },
        });
    }
    Ok(out)
}

/// Changes an existing share, in the caller's transaction; returns the previous permission. `NotFound` when
/// there is no such share.
pub async fn update(
    tx: &impl GenericClient,
    conversation_id: Uuid,
    user_id: Uuid,
    permission: Permission,
) -> Result<Permission> {
    let row = tx
        .query_opt(
            "SELECT permission FROM shares WHERE conversation_id = $1 AND user_id = $2 FOR UPDATE",
            &[&conversation_id, &user_id],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    let before: String = row.try_get(0)?;
    tx.execute(
        "UPDATE shares SET permission = $3, updated_at = now() WHERE conversation_id = $1 AND user_id = $2",
        &[&conversation_id, &user_id, &permission.as_str()],
    )
    .await?;
    Ok(permission_from(&before))
}

/// Revokes a share, in the caller's transaction. `NotFound` when there was none.
pub async fn delete(tx: &impl GenericClient, conversation_id: Uuid, user_id: Uuid) -> Result<()> {
    let n = tx
        .execute("DELETE FROM shares WHERE conversation_id = $1 AND user_id = $2", &[&conversation_id, &user_id])
        .await?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}
