//! Per-organization retention: `orgs.retention_days` ("erase conversations not updated for N days", `NULL` =
//! off), and the conversations it has expired. The api's retention task deletes those the usual way
//! ([`crate::erase::mark_deleted`]), which is safe with several replicas: only one of them marks each.

use crate::{Db, Result, StoreError};
use uuid::Uuid;

/// The org's retention in days (`None`: off). `NotFound` when the org does not exist.
pub async fn days(db: &Db, org_id: Uuid) -> Result<Option<i32>> {
    let client = db.client().await?;
    let row = client
        .query_opt("SELECT retention_days FROM orgs WHERE id = $1", &[&org_id])
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(row.try_get(0)?)
}

/// Sets (or, with `None`, turns off) the org's retention. `NotFound` when the org does not exist.
pub async fn set_days(db: &Db, org_id: Uuid, days: Option<i32>) -> Result<()> {
    let client = db.client().await?;
    let n = client.execute("UPDATE orgs SET retention_days = $2 WHERE id = $1", &[&org_id, &days]).await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Up to `limit` conversations, not deleted, whose org has a retention and which were last updated longer ago.
pub async fn expired(db: &Db, limit: i64) -> Result<Vec<Uuid>> {
    let client = db.client().await?;
    let rows = client
        .query(
            "SELECT c.id FROM orgs o JOIN conversations c ON c.org_id = o.id AND c.deleted_at IS NULL \
             WHERE o.retention_days IS NOT NULL \
               AND c.updated_at < now() - make_interval(days => o.retention_days) \
             ORDER BY c.updated_at LIMIT $1",
            &[&limit],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}
