//! Reads the transcript (`messages`, written by the audit writer) for the api: the history a client loads before
//! subscribing, and the context of a generation job.
//!
//! The history rule (see `sql/V1__init.sql`): `history_seq = least(applied_seq, (min seq of streaming rows) − 1)`
//! and history = rows with `final_seq <= history_seq`. Both are read in one REPEATABLE READ snapshot so they agree
//! even while the audit writer commits: the result is exactly the stream prefix up to `history_seq`, and a client
//! subscribing with `after_seq = history_seq` gets the rest from the stream without gap or duplicate.

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

const HISTORY_SEQ: &str = "SELECT LEAST(c.applied_seq, COALESCE((SELECT min(m.seq) - 1 FROM messages m \
       WHERE m.conversation_id = c.id AND m.status = 'streaming'), c.applied_seq)) \
     FROM conversations c WHERE c.id = $1";

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
    let client = db.client().await?;
    let row = client.query_opt(HISTORY_SEQ, &[&conversation_id]).await?;
    Ok(match row {
        Some(r) => r.try_get::<_, Option<i64>>(0)?.unwrap_or(0),
        None => 0,
    })
}

/// The history of a conversation (see the module docs), from one consistent snapshot.
pub async fn load(db: &Db, conversation_id: Uuid) -> Result<History> {
    let mut client = db.client().await?;
    let tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?;
    let seq = match tx.query_opt(HISTORY_SEQ, &[&conversation_id]).await? {
        Some(r) => r.try_get::<_, Option<i64>>(0)?.unwrap_or(0),
        None => 0,
    };
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
