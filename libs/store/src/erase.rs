//! `erase_jobs`: erasing a deleted conversation's content, durably (issue 17; `docs/erasure.md`).
//!
//! [`mark_deleted`] marks the conversation deleted and enqueues its job in one transaction, so a delete that
//! committed is always erased. Any api replica then [`claim`]s due jobs: `FOR UPDATE SKIP LOCKED` picks a row no
//! other replica is claiming, and the claim moves `next_attempt_at` forward by a lease, so the job is not picked
//! again while it runs, and is picked again by anyone once the lease runs out (the replica died). The job's
//! PostgreSQL part is [`erase_database`] (one transaction, done once); the NATS part (objects, stream purges) is
//! the api's, idempotent and repeated until it succeeds; [`complete`] records the erasure in the audit log.

use crate::{Db, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::json;
use std::time::Duration;
use tokio_postgres::Row;
use uuid::Uuid;

/// Why a conversation is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its owner deleted it.
    Deleted,
    /// Its org's retention period passed without an update.
    Retention,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Deleted => "deleted",
            Reason::Retention => "retention",
        }
    }
}

/// A claimed erase job.
#[derive(Debug, Clone, PartialEq)]
pub struct EraseJob {
    pub conversation_id: Uuid,
    pub org_id: Uuid,
    pub requested_by: Option<Uuid>,
    pub reason: String,
    /// Attachment objects still to delete (filled by [`erase_database`]).
    pub object_names: Vec<String>,
    pub database_done: bool,
    /// Claims so far, this one included.
    pub attempts: i32,
    /// When the conversation was deleted.
    pub created_at: DateTime<Utc>,
}

fn job_from(row: &Row) -> Result<EraseJob> {
    Ok(EraseJob {
        conversation_id: row.try_get("conversation_id")?,
        org_id: row.try_get("org_id")?,
        requested_by: row.try_get("requested_by")?,
        reason: row.try_get("reason")?,
        object_names: row.try_get("object_names")?,
        database_done: row.try_get("database_done")?,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Marks conversation `id` deleted and enqueues its erase job, on `client` (in the caller's transaction, so both
/// or neither happen). Returns the conversation's org, or `None` when it does not exist or was already deleted.
pub async fn mark_deleted(
    client: &impl GenericClient,
    id: Uuid,
    actor: Option<Uuid>,
    reason: Reason,
) -> Result<Option<Uuid>> {
    let row = client
        .query_opt(
            "UPDATE conversations SET deleted_at = now(), updated_at = now() \
             WHERE id = $1 AND deleted_at IS NULL RETURNING org_id",
            &[&id],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let org_id: Uuid = row.try_get(0)?;
    client
        .execute(
            "INSERT INTO erase_jobs (conversation_id, org_id, requested_by, reason) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (conversation_id) DO NOTHING",
            &[&id, &org_id, &actor, &reason.as_str()],
        )
        .await?;
    Ok(Some(org_id))
}

/// [`mark_deleted`] in a transaction of its own.
pub async fn delete(db: &Db, id: Uuid, actor: Option<Uuid>, reason: Reason) -> Result<Option<Uuid>> {
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    let org = mark_deleted(&tx, id, actor, reason).await?;
    tx.commit().await?;
    Ok(org)
}

/// Claims the job that is due longest, if any, for `lease`: nobody else claims it before the lease ends.
pub async fn claim(db: &Db, lease: Duration) -> Result<Option<EraseJob>> {
    let client = db.client().await?;
    let lease_secs = lease.as_secs_f64();
    let row = client
        .query_opt(
            "UPDATE erase_jobs j \
             SET attempts = j.attempts + 1, next_attempt_at = now() + make_interval(secs => $1) \
             FROM (SELECT conversation_id FROM erase_jobs WHERE done_at IS NULL AND next_attempt_at <= now() \
                   ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) due \
             WHERE j.conversation_id = due.conversation_id \
             RETURNING j.conversation_id, j.org_id, j.requested_by, j.reason, j.object_names, j.database_done, \
                       j.attempts, j.created_at",
            &[&lease_secs],
        )
        .await?;
    row.as_ref().map(job_from).transpose()
}

/// Erases the conversation's content from PostgreSQL in one transaction: its messages, attachment rows and
/// shares are deleted, its title and system prompt blanked, and file names removed from its audit rows (which
/// keep who did what and when). The attachments' object names move into the job. Returns the job as it is now.
/// It does not wait for NATS: the conversation's outbox rows are the job's NATS part ([`crate::outbox::erase`]).
/// A job whose database part is done is returned unchanged.
pub async fn erase_database(db: &Db, job: &EraseJob) -> Result<EraseJob> {
    if job.database_done {
        return Ok(job.clone());
    }
    let id = job.conversation_id;
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    // Lock the conversation row first: the audit writer's transactions lock it too, so one of theirs that wrote
    // a message before the delete has committed by now (see `transcript`).
    tx.execute("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", &[&id]).await?;
    let objects: Vec<String> = tx
        .query("DELETE FROM attachments WHERE conversation_id = $1 RETURNING object_name", &[&id])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let messages = tx.execute("DELETE FROM messages WHERE conversation_id = $1", &[&id]).await?;
    let shares = tx.execute("DELETE FROM shares WHERE conversation_id = $1", &[&id]).await?
        + tx.execute("DELETE FROM team_shares WHERE conversation_id = $1", &[&id]).await?;
    tx.execute("DELETE FROM responding WHERE conversation_id = $1", &[&id]).await?;
    tx.execute("UPDATE conversations SET title = '', system_prompt = NULL WHERE id = $1", &[&id]).await?;
    tx.execute(
        "UPDATE audit_log SET detail = detail - 'filename' WHERE conversation_id = $1 AND detail ? 'filename'",
        &[&id],
    )
    .await?;
    let counts = [i64::try_from(messages).unwrap_or(i64::MAX), objects.len() as i64, shares as i64];
    let row = tx
        .query_one(
            "UPDATE erase_jobs SET database_done = true, object_names = object_names || $2, \
               messages = $3, attachments = $4, shares = $5 \
             WHERE conversation_id = $1 \
             RETURNING conversation_id, org_id, requested_by, reason, object_names, database_done, attempts, \
                       created_at",
            &[&id, &objects, &counts[0], &counts[1], &counts[2]],
        )
        .await?;
    let job = job_from(&row)?;
    tx.commit().await?;
    Ok(job)
}

/// Marks the job done and writes its `conversation.erased` audit row (who asked, why, what was removed — counts,
/// never content), in one transaction.
pub async fn complete(db: &Db, job: &EraseJob) -> Result<()> {
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE erase_jobs SET done_at = now(), last_error = NULL \
             WHERE conversation_id = $1 AND done_at IS NULL RETURNING messages, attachments, shares",
            &[&job.conversation_id],
        )
        .await?;
    let Some(row) = row else { return Ok(()) };
    let detail = json!({
        "reason": job.reason,
        "deleted_at": job.created_at,
        "messages": row.try_get::<_, i64>("messages")?,
        "attachments": row.try_get::<_, i64>("attachments")?,
        "shares": row.try_get::<_, i64>("shares")?,
    });
    tx.execute(
        "INSERT INTO audit_log (id, org_id, conversation_id, actor_id, action, detail, at) \
         VALUES ($1, $2, $3, $4, 'conversation.erased', $5, now())",
        &[&Uuid::now_v7(), &job.org_id, &job.conversation_id, &job.requested_by, &detail],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Runs the job again after `delay`; `error` (what failed, never content) is kept for operators.
pub async fn retry_later(db: &Db, conversation_id: Uuid, delay: Duration, error: Option<&str>) -> Result<()> {
    let client = db.client().await?;
    client
        .execute(
            "UPDATE erase_jobs SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3 \
             WHERE conversation_id = $1",
            &[&conversation_id, &delay.as_secs_f64(), &error],
        )
        .await?;
    Ok(())
}

/// Jobs not done yet, and the age in seconds of the oldest (for metrics).
pub async fn backlog(db: &Db) -> Result<(i64, f64)> {
    let client = db.client().await?;
    let row = client
        .query_one(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) \
             FROM erase_jobs WHERE done_at IS NULL",
            &[],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}
