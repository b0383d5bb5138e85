//! Reads `audit_log` (written by the audit writer from stream events) for org admins. Rows hold who did what and
//! when — ids, permissions, sizes — never message text (see `transcript`).
//!
//! What happens to an org rather than a conversation (teams and their members, invitations) has no stream event:
//! the api writes its row itself ([`record`]), in the transaction of the change, so the row exists exactly when
//! the change does.

use crate::{Db, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

pub use rh_protocol::api::admin::AuditEntry;

/// Filters of [`list`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub conversation_id: Option<Uuid>,
    /// Only rows at or after this time.
    pub since: Option<DateTime<Utc>>,
    pub limit: i64,
}

/// Audit rows of `org_id`, oldest first (so `since` pages forward), at most `filter.limit`.
pub async fn list(db: &Db, org_id: Uuid, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
    let client = db.client().await?;
    let rows = client
        .query(
            "SELECT a.id, a.conversation_id, a.actor_id, u.name AS actor_name, a.action, a.detail, a.seq, a.at \
             FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id \
             WHERE a.org_id = $1 \
               AND ($2::uuid IS NULL OR a.conversation_id = $2) \
               AND ($3::timestamptz IS NULL OR a.at >= $3) \
             ORDER BY a.at, a.seq NULLS LAST, a.id LIMIT $4",
            &[&org_id, &filter.conversation_id, &filter.since, &filter.limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(AuditEntry {
                id: row.try_get("id")?,
                conversation_id: row.try_get("conversation_id")?,
                actor_id: row.try_get("actor_id")?,
                actor_name: row.try_get("actor_name")?,
                action: row.try_get("action")?,
                detail: row.try_get("detail")?,
                seq: row.try_get("seq")?,
                at: row.try_get("at")?,
            })
        })
        .collect()
}

/// Writes an org-level row (no conversation), in the caller's transaction. `detail` holds ids, never content.
pub async fn record(
    tx: &impl GenericClient,
    org_id: Uuid,
    actor_id: Uuid,
    action: &str,
    detail: serde_json::Value,
) -> Result<()> {
    tx.execute(
        "INSERT INTO audit_log (id, org_id, actor_id, action, detail, at) VALUES ($1, $2, $3, $4, $5, now())",
        &[&Uuid::now_v7(), &org_id, &actor_id, &action, &detail],
    )
    .await?;
    Ok(())
}
