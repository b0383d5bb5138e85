//! Reads the transcript (`messages`, written by the audit writer) for the api: the history a client loads before
//! subscribing, and the context of a generation job.
//!
//! The history rule. A transcript row spans the stream positions `[seq, final_seq]` (a user message one position;
//! a response from its first `response.started` to its end event; `final_seq` is NULL while it streams).
//! `history_seq` is the largest position `H <= applied_seq` that cuts through no row — no row with
//! `seq <= H < final_seq` (or still streaming) — and history = the rows with `final_seq <= H`. So history is
//! exactly the stream prefix up to `H`, and a client subscribing with `after_seq = H` gets everything else from the
//! stream: no gap, no duplicate.
//!
//! Why not simply `least(applied_seq, min seq of streaming rows − 1)` (the first version of `sql/V1__init.sql`):
//! when two responses interleave, a response A that started before a still-streaming response B but finished after
//! B's start spans B's start. Cutting at B's start − 1 would leave A out of history (it is not final at that
//! position) while the stream after the cut holds only A's later deltas and its end — A's `response.started` and
//! first deltas would be lost to the client. The load test found this with two responders per conversation.
//!
//! `H` is found by lowering it past every row it cuts through until none is left (each step moves below a row's
//! start, so it ends; usually after zero or one step), all in one REPEATABLE READ snapshot so the answer holds
//! even while the audit writer commits.

use crate::{Db, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{IsolationLevel, Row};
use uuid::Uuid;

/// One row of the transcript as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: Uuid,
    /// `user` or `assistant`.
    pub role: String,
    pub author_id: Option<Uuid>,
    pub author_name: Option<String>,
    pub text: String,
    /// `complete`, `failed` or `stopped` (rows still streaming are never part of history).
    pub status: String,
    pub model: Option<String>,
    pub reply_to: Option<Uuid>,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
}

/// The history of one conversation: the stream position it covers and its rows, in stream order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub seq: i64,
    pub messages: Vec<Message>,
}

/// The conversation's `applied_seq` and `created_seq`.
const POSITIONS: &str = "SELECT applied_seq, created_seq FROM conversations WHERE id = $1";

/// The start of the earliest row that position `$2` cuts through.
const FIRST_OPEN_ROW: &str = "SELECT min(seq) FROM messages \
     WHERE conversation_id = $1 AND seq <= $2 AND (final_seq IS NULL OR final_seq > $2)";

/// `history_seq` (see the module docs) inside a REPEATABLE READ transaction. 0 for an unknown conversation.
///
/// Floored at `created_seq − 1`: until the audit writer has applied `conversation.created` no row of the
/// conversation exists (it applies in stream order), so history is empty either way, and the floor spares the edge
/// a replay that would scan `RH_CONV` from its very first message.
async fn history_seq_in(tx: &tokio_postgres::Transaction<'_>, conversation_id: Uuid) -> Result<i64> {
    let Some(row) = tx.query_opt(POSITIONS, &[&conversation_id]).await? else { return Ok(0) };
    let (mut seq, created_seq): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    while let Some(start) =
        tx.query_one(FIRST_OPEN_ROW, &[&conversation_id, &seq]).await?.try_get::<_, Option<i64>>(0)?
    {
        seq = start - 1;
    }
    Ok(seq.max(created_seq - 1).max(0))
}

fn message_from(row: &Row) -> Result<Message> {
    Ok(Message {
        id: row.try_get("id")?,
        role: row.try_get("role")?,
        author_id: row.try_get("author_id")?,
        author_name: row.try_get("author_name")?,
        text: row.try_get("text")?,
        status: row.try_get("status")?,
        model: row.try_get("model")?,
        reply_to: row.try_get("reply_to")?,
        seq: row.try_get("seq")?,
        created_at: row.try_get("created_at")?,
    })
}

/// `history_seq` alone (what `rh.api.access` grants). 0 for an unknown conversation.
pub async fn history_seq(db: &Db, conversation_id: Uuid) -> Result<i64> {
    let mut client = db.client().await?;
    let tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?;
    let seq = history_seq_in(&tx, conversation_id).await?;
    tx.commit().await?;
    Ok(seq)
}

/// The history of a conversation (see the module docs), from one consistent snapshot.
pub async fn load(db: &Db, conversation_id: Uuid) -> Result<History> {
    let mut client = db.client().await?;
    let tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?;
    let seq = history_seq_in(&tx, conversation_id).await?;
    let rows = tx
        .query(
            "SELECT m.id, m.role, m.author_id, u.name AS author_name, m.text, m.status, m.model, m.reply_to, \
                    m.seq, m.created_at \
             FROM messages m LEFT JOIN users u ON u.id = m.author_id \
             WHERE m.conversation_id = $1 AND m.final_seq IS NOT NULL AND m.final_seq <= $2 \
             ORDER BY m.seq, m.id",
            &[&conversation_id, &seq],
        )
        .await?;
    tx.commit().await?;
    let messages = rows.iter().map(message_from).collect::<Result<Vec<_>>>()?;
    Ok(History { seq, messages })
}

/// The last `limit` finished turns of a conversation, oldest first, as `(role, text)` for a model's context.
/// Responses that failed or were stopped count with the text they had; empty ones are left out.
pub async fn context(db: &Db, conversation_id: Uuid, limit: i64) -> Result<Vec<(String, String)>> {
    let client = db.client().await?;
    let rows = client
        .query(
            "SELECT role, text FROM (SELECT role, text, seq, id FROM messages \
               WHERE conversation_id = $1 AND status <> 'streaming' AND text <> '' \
               ORDER BY seq DESC, id DESC LIMIT $2) t ORDER BY seq, id",
            &[&conversation_id, &limit],
        )
        .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// Number of transcript rows of a conversation.
pub async fn count(db: &Db, conversation_id: Uuid) -> Result<i64> {
    let client = db.client().await?;
    let row = client.query_one("SELECT count(*) FROM messages WHERE conversation_id = $1", &[&conversation_id]).await?;
    Ok(row.try_get(0)?)
}
