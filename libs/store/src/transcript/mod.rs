//! The transcript writer: applies conversation events from stream `RH_CONV` to `messages`, `audit_log` and
//! `conversations.applied_seq`, idempotently. Used only by the audit writer.
//!
//! | event | `messages` | `audit_log` |
//! |---|---|---|
//! | `message.created` | user row: `id` = message_id, `seq` = `final_seq` = stream seq, status `complete`, `edit_of` (an edit); a `responding` row for its answer | yes |
//! | `response.requested` (a regenerate) | a `responding` row for its answer (the answer's row comes with its start, `reply_to` = the message) | yes |
//! | `response.started` | assistant row: `id` = response_id, status `streaming`, `seq` = stream seq, `reply_to` = message_id | no |
//! | `response.completed` / `failed` / `stopped` | finishes that row: text, status, `final_seq` = stream seq (inserts it finished, `seq` = `final_seq`, `reply_to` from the audit row that asked for it, when there was no start); removes its `responding` row and its `response_slots` row | yes |
//! | `conversation.created`, `settings.changed`, `attachment.added`, `participant.*`, `conversation.deleted` | — | yes |
//! | `response.delta` | — (token traffic never touches PostgreSQL) | no |
//!
//! Every applied event also raises `conversations.applied_seq` to its stream seq (never lowers it).
//!
//! A deleted conversation (its content is being or has been erased, see [`crate::erase`]) gets no transcript rows
//! from events still in flight: only their audit rows, without the attachment's file name. The check reads
//! `deleted_at` from the row the `applied_seq` update locks, so it cannot race the delete: either the delete
//! waits for this transaction (and the erasure then removes what it wrote), or this sees the delete.
//!
//! Idempotence, so redelivery (same seq) and re-publication (same event id, a later seq) change nothing twice:
//! - an audited event first inserts its audit row (`id` = event id, `ON CONFLICT DO NOTHING`); if that row
//!   already exists the event is a duplicate and nothing else is written;
//! - transcript rows are inserted with `ON CONFLICT (id) DO NOTHING`;
//! - a restarted response (`response.started` with a higher `attempt`) keeps its FIRST seq and becomes
//!   `streaming` again with empty text, so history never shows text that the stream later replaced; a start whose
//!   attempt is not higher than the row's is a duplicate;
//! - an end event finishes the row only if its attempt is not older than the row's and the row is still streaming
//!   or the event's seq is later than the row's `final_seq`.
//!
//! `audit_log.detail` records who and what (ids, permissions, lengths, file metadata), never message or response
//! text, nor the system prompt (module `audit`).

mod audit;

use crate::{Result, StoreError};
use audit::{actor_of, audit_detail};
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use rh_protocol::{Envelope, Event};
use uuid::Uuid;

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event was written (a transcript row and/or an audit row).
    Written,
    /// The event had been applied before (redelivery or re-publication): nothing changed but `applied_seq`.
    Duplicate,
    /// No row in `conversations` for the event's conversation: nothing was written.
    UnknownConversation,
    /// A `response.delta`: not part of the transcript, nothing was written.
    Ignored,
}

/// Applies one event at stream position `seq` in its own transaction (a savepoint when `client` is a transaction).
pub async fn apply<C: GenericClient>(client: &mut C, seq: u64, env: &Envelope) -> Result<Applied> {
    if env.event.is_delta() {
        return Ok(Applied::Ignored);
    }
    let tx = client.transaction().await?;
    let applied = apply_in(&tx, seq, env).await?;
    tx.commit().await?;
    Ok(applied)
}

/// Applies several events, in the given (stream) order, in one transaction: all or nothing.
pub async fn apply_batch<C: GenericClient>(client: &mut C, events: &[(u64, &Envelope)]) -> Result<Vec<Applied>> {
    let tx = client.transaction().await?;
    let mut applied = Vec::with_capacity(events.len());
    for (seq, env) in events {
        applied.push(apply_in(&tx, *seq, env).await?);
    }
    tx.commit().await?;
    Ok(applied)
}

/// True when PostgreSQL refused the event's data itself (SQLSTATE class 22 "data exception" or 23 "integrity
/// constraint violation"): retrying the same event cannot succeed. Every other error (connection lost, server
/// shutting down, schema not migrated yet...) is worth retrying.
pub fn is_data_error(error: &StoreError) -> bool {
    match error {
        StoreError::Db(e) => e.code().is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23")),
        _ => false,
    }
}

const BUMP_APPLIED_SEQ: &str = "UPDATE conversations SET applied_seq = GREATEST(applied_seq, $2) WHERE id = $1 \
     RETURNING org_id, deleted_at IS NOT NULL AS deleted";

// A message whose author is not (or no longer) a user keeps its row, without author.
const INSERT_USER_MESSAGE: &str = "INSERT INTO messages \
       (id, conversation_id, role, author_id, text, status, client_msg_id, seq, final_seq, edit_of) \
     VALUES ($1, $2, 'user', (SELECT u.id FROM users u WHERE u.id = $3), $4, 'complete', $5, $6, $6, $7) \
     ON CONFLICT (id) DO NOTHING";

const START_RESPONSE: &str = "INSERT INTO messages \
       (id, conversation_id, role, model, status, reply_to, attempt, seq) \
     VALUES ($1, $2, 'assistant', $3, 'streaming', $4, $5, $6) \
     ON CONFLICT (id) DO UPDATE \
       SET attempt = EXCLUDED.attempt, status = 'streaming', text = '', final_seq = NULL, \
           model = EXCLUDED.model, updated_at = now() \
     WHERE messages.attempt < EXCLUDED.attempt AND messages.role = 'assistant' \
       AND messages.conversation_id = EXCLUDED.conversation_id";

const FINISH_RESPONSE: &str = "UPDATE messages \
     SET text = $3, status = $4, final_seq = $5, model = COALESCE($6, model), attempt = $7, error = $8, \
       updated_at = now() \
     WHERE id = $1 AND conversation_id = $2 AND role = 'assistant' AND attempt <= $7 \
       AND (status = 'streaming' OR final_seq < $5)";

// The end of a response whose start is not in PostgreSQL (e.g. stopped before it started). `reply_to` comes from
// the audit row of the message that asked for it.
const INSERT_FINISHED_RESPONSE: &str = "INSERT INTO messages \
       (id, conversation_id, role, text, model, status, reply_to, attempt, seq, final_seq, error) \
     VALUES ($1, $2, 'assistant', $3, $6, $4, \
       (SELECT (a.detail->>'message_id')::uuid FROM audit_log a \
         WHERE a.conversation_id = $2 AND a.action IN ('message.created', 'response.requested') \
           AND a.detail->>'response_id' = $8 LIMIT 1), \
       $7, $5, $5, $9) \
     ON CONFLICT (id) DO NOTHING";

// An answer asked for (see `sql/V9__responding_and_share_expiry.sql`), and its end.
const START_RESPONDING: &str = "INSERT INTO responding (conversation_id, response_id, seq) VALUES ($1, $2, $3) \
     ON CONFLICT DO NOTHING";
const END_RESPONDING: &str = "DELETE FROM responding WHERE conversation_id = $1 AND response_id = $2";

const INSERT_AUDIT: &str = "INSERT INTO audit_log (id, org_id, conversation_id, actor_id, action, detail, seq, at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING";

/// Applies one (non-delta) event inside `tx`.
async fn apply_in(tx: &Transaction<'_>, seq: u64, env: &Envelope) -> Result<Applied> {
    if env.event.is_delta() {
        return Ok(Applied::Ignored);
    }
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    let conversation_id = env.conversation_id;

    let bump = tx.prepare_cached(BUMP_APPLIED_SEQ).await?;
    let Some(row) = tx.query_opt(&bump, &[&conversation_id, &seq]).await? else {
        tracing::warn!(%conversation_id, seq, kind = env.event.kind(), "event for a conversation not in PostgreSQL, skipped");
        return Ok(Applied::UnknownConversation);
    };
    let org_id: Uuid = row.try_get(0)?;
    let deleted: bool = row.try_get(1)?;
    // An ended answer frees its slot whatever else happens to the event (a duplicate, a deleted conversation).
    if let Event::ResponseCompleted { response_id, .. }
    | Event::ResponseFailed { response_id, .. }
    | Event::ResponseStopped { response_id, .. } = &env.event
    {
        crate::slots::free(tx, *response_id).await?;
    }

    // Audited events are identified by their event id: when the audit row exists, the event was applied before
    // (redelivery, or the same event published again) and nothing else is written.
    if let Some(mut detail) = audit_detail(&env.event) {
        if deleted && let Some(fields) = detail.as_object_mut() {
            fields.remove("filename");
        }
        let stmt = tx.prepare_cached(INSERT_AUDIT).await?;
        let actor = env.actor.or_else(|| actor_of(&env.event));
        let action = env.event.kind();
        let at = DateTime::<Utc>::from_timestamp_micros(env.ts_us).unwrap_or_else(Utc::now);
        let inserted =
            tx.execute(&stmt, &[&env.event_id, &org_id, &conversation_id, &actor, &action, &detail, &seq, &at]).await?;
        if inserted == 0 {
            return Ok(Applied::Duplicate);
        }
    }

    if deleted {
        return Ok(Applied::Written);
    }
    let transcript_changed = match &env.event {
        Event::MessageCreated { message_id, author_id, text, client_msg_id, response_id, edit_of, .. } => {
            let stmt = tx.prepare_cached(INSERT_USER_MESSAGE).await?;
            let text = without_nul(text);
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
                [message_id, &conversation_id, author_id, &text, client_msg_id, &seq, edit_of];
            let inserted = tx.execute(&stmt, &params).await? > 0;
            // A copied message asks for nothing (its answer follows as an end event).
            if inserted && env.event.asks_for_response() {
                let stmt = tx.prepare_cached(START_RESPONDING).await?;
                tx.execute(&stmt, &[&conversation_id, response_id, &seq]).await?;
            }
            inserted
        }
        // Its answer's row comes with `response.started`; until it ends, the conversation is responding.
        Event::ResponseRequested { response_id, .. } => {
            let stmt = tx.prepare_cached(START_RESPONDING).await?;
            tx.execute(&stmt, &[&conversation_id, response_id, &seq]).await?;
            true
        }
        Event::ResponseStarted { response_id, message_id, model, attempt } => {
            let stmt = tx.prepare_cached(START_RESPONSE).await?;
            let attempt = pg_attempt(*attempt);
            tx.execute(&stmt, &[response_id, &conversation_id, model, message_id, &attempt, &seq]).await? > 0
        }
        Event::ResponseCompleted { response_id, attempt, model, text } => {
            let end = End { status: "complete", model: Some(model), error: None };
            finish_response(tx, conversation_id, seq, *response_id, *attempt, end, text).await?
        }
        Event::ResponseFailed { response_id, attempt, text, error } => {
            let error = failure_reason(error);
            let end = End { status: "failed", model: None, error: Some(&error) };
            finish_response(tx, conversation_id, seq, *response_id, *attempt, end, text).await?
        }
        Event::ResponseStopped { response_id, attempt, text, .. } => {
            let end = End { status: "stopped", model: None, error: None };
            finish_response(tx, conversation_id, seq, *response_id, *attempt, end, text).await?
        }
        // Audited above; nothing else to write.
        _ => true,
    };

    Ok(if transcript_changed { Applied::Written } else { Applied::Duplicate })
}

/// How a response ended, as its row records it.
struct End<'a> {
    status: &'static str,
    model: Option<&'a String>,
    /// Why it failed (`failed` only).
    error: Option<&'a str>,
}

/// What `messages.error` keeps of a failure's reason: at most [`FAILURE_REASON_CHARS`] characters, no NUL.
fn failure_reason(error: &str) -> String {
    without_nul(error).chars().take(FAILURE_REASON_CHARS).collect()
}

/// The longest failure reason kept (the audit log keeps the same).
const FAILURE_REASON_CHARS: usize = 300;

/// Finishes an assistant row (or inserts it finished). True when a row changed.
async fn finish_response(
    tx: &Transaction<'_>,
    conversation_id: Uuid,
    seq: i64,
    response_id: Uuid,
    attempt: u32,
    end: End<'_>,
    text: &str,
) -> Result<bool> {
    let End { status, model, error } = end;
    // The answer ended, whatever its row says: the conversation's "responding…" marker may go.
    let stmt = tx.prepare_cached(END_RESPONDING).await?;
    tx.execute(&stmt, &[&conversation_id, &response_id]).await?;
    let text = without_nul(text);
    let attempt = pg_attempt(attempt);
    let update = tx.prepare_cached(FINISH_RESPONSE).await?;
    if tx.execute(&update, &[&response_id, &conversation_id, &text, &status, &seq, &model, &attempt, &error]).await? > 0
    {
        return Ok(true);
    }
    let insert = tx.prepare_cached(INSERT_FINISHED_RESPONSE).await?;
    let response_key = response_id.to_string();
    let inserted = tx
        .execute(
            &insert,
            &[&response_id, &conversation_id, &text, &status, &seq, &model, &attempt, &response_key, &error],
        )
        .await?;
    Ok(inserted > 0)
}

/// PostgreSQL text cannot hold NUL characters; drop them rather than refuse the message.
fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') { std::borrow::Cow::Owned(text.replace('\0', "")) } else { std::borrow::Cow::Borrowed(text) }
}

fn pg_attempt(attempt: u32) -> i32 {
    i32::try_from(attempt).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_dropped() {
        assert_eq!(without_nul("a\0b"), "ab");
        assert!(matches!(without_nul("ab"), std::borrow::Cow::Borrowed(_)));
    }
}
