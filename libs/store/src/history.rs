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
//! `H` is found by lowering it past every row it cuts through until none is left: each step moves to just below
//! the earliest start among the rows it cuts (every position from that start up to `H` cuts that same row, so no
//! clean position is skipped), so it ends, usually after zero or one step. `HISTORY_SEQ` is this search as ONE
//! SQL statement (a recursive CTE), the only definition of the rule: [`load`] and [`grants`] both
//! run it. One statement reads one snapshot — under READ COMMITTED every part of a statement, each CTE and each
//! step of the recursion included, sees the database as of the statement's start — so the answer holds even while
//! the audit writer commits, with no explicit REPEATABLE READ transaction (and its BEGIN and COMMIT round trips).
//!
//! Paging. History comes in pages of the newest rows ([`Page`]): a page is the last `limit` rows of the history
//! at `H`, so a client that shows it and subscribes after `H` still misses nothing. Older pages name where the
//! previous one began (`before` = its oldest row's `seq`; each row starts at its own stream event, so `seq` is
//! unique in a conversation). They are stable: every row with `seq <= H` is final at `H` (that is what "cuts
//! through no row" means), so the rows below a page never change.

use crate::conversations::{ACCESS_FROM, ACCESS_PERMISSION, permission_from};
use crate::{Db, Result};
use deadpool_postgres::GenericClient;
use rh_protocol::Permission;
use serde::Serialize;
use std::sync::LazyLock;
use tokio_postgres::Row;
use uuid::Uuid;

/// One row of the transcript as clients see it (the REST body itself).
pub use rh_protocol::api::conversations::HistoryMessage as Message;

/// One page of the history of a conversation: the stream position the history covers, and its newest rows
/// (below `before`, when given), in stream order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub seq: i64,
    pub messages: Vec<Message>,
    /// Older rows exist: ask again with `before` = the first message's `seq`.
    pub has_more: bool,
}

/// Which rows of the history to read: the newest `limit` (all when `None`), older than `before` when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: Option<i64>,
    pub before: Option<i64>,
}

impl Page {
    /// The whole history.
    pub const ALL: Page = Page { limit: None, before: None };
}

/// `history_seq` (see the module docs) of conversation `$1`, as the CTEs of a `WITH RECURSIVE` statement: after
/// them, `history_seq(seq)` holds exactly one row — 0 for an unknown conversation.
///
/// `cut(h, floor)` starts at `applied_seq`; each recursive step takes the start of the earliest row that `h` cuts
/// through (`seq <= h`, and `final_seq > h` or still streaming) and continues just below it; it stops when `h` cuts
/// through no row. `h` strictly decreases, so the last step is the smallest: `H = min(h)`.
///
/// Floored at `created_seq − 1`: until the audit writer has applied `conversation.created` no row of the
/// conversation exists (it applies in stream order), so history is empty either way, and the floor spares the edge
/// a replay that would scan `RH_CONV` from its very first message. (`greatest` ignores NULLs: with no conversation,
/// `cut` is empty and the result is 0.)
const HISTORY_SEQ: &str = "cut(h, floor) AS ( \
         SELECT applied_seq, created_seq - 1 FROM conversations WHERE id = $1 \
       UNION ALL \
         SELECT open.start - 1, cut.floor FROM cut CROSS JOIN LATERAL ( \
           SELECT min(m.seq) AS start FROM messages m \
           WHERE m.conversation_id = $1 AND m.seq <= cut.h AND (m.final_seq IS NULL OR m.final_seq > cut.h)) open \
         WHERE open.start IS NOT NULL), \
     history_seq(seq) AS (SELECT greatest(min(h), min(floor), 0) FROM cut)";

/// `history_seq` of conversation `$1` in every row (column `history_seq`), with the newest `$2` rows final at it
/// (all when NULL; below seq `$3` unless NULL), in stream order — or one row of NULLs besides `history_seq` when there are
/// none.
static LOAD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH RECURSIVE {HISTORY_SEQ} \
         SELECT h.seq AS history_seq, m.* FROM history_seq h \
         LEFT JOIN LATERAL ( \
           SELECT m.id, m.role, m.author_id, u.name AS author_name, m.text, m.status, m.error, m.model, m.reply_to, \
                  m.edit_of, \
                  m.seq, m.created_at \
           FROM messages m LEFT JOIN users u ON u.id = m.author_id \
           WHERE m.conversation_id = $1 AND m.final_seq IS NOT NULL AND m.final_seq <= h.seq \
             AND ($3::bigint IS NULL OR m.seq < $3) \
           ORDER BY m.seq DESC, m.id DESC LIMIT $2) m ON true \
         ORDER BY m.seq, m.id"
    )
});

/// The permission on conversation `$1` of each person in the array `$2` who may see it (by the access rule of
/// [`crate::conversations::access`]), with its `history_seq`; no row for the others. `history_seq` is an
/// uncorrelated subquery, evaluated once, and only when a row is returned: refusals never search the transcript.
static GRANTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH RECURSIVE {HISTORY_SEQ} \
         SELECT asked.user_id, {ACCESS_PERMISSION}, (SELECT seq FROM history_seq) AS history_seq {}",
        *ACCESS_FROM
    )
});

fn message_from(row: &Row) -> Result<Message> {
    Ok(Message {
        id: row.try_get("id")?,
        role: row.try_get("role")?,
        author_id: row.try_get("author_id")?,
        author_name: row.try_get("author_name")?,
        text: row.try_get("text")?,
        status: row.try_get("status")?,
        error: row.try_get("error")?,
        model: row.try_get("model")?,
        reply_to: row.try_get("reply_to")?,
        edit_of: row.try_get("edit_of")?,
        // Stream positions start at 1.
        seq: u64::try_from(row.try_get::<_, i64>("seq")?).unwrap_or(0),
        created_at: row.try_get("created_at")?,
    })
}

/// What `rh.api.access` grants, for many people of one conversation at once: each person's permission with the
/// conversation's `history_seq`, for those [`crate::conversations::access`] would answer for; the others (unknown
/// or deleted conversation, neither owned by nor shared with them) are left out.
///
/// One pooled connection, one statement, one round trip (once the connection has the statement prepared) however
/// many people are asked: every answer comes from the same snapshot, and the transcript is searched once.
pub async fn grants(db: &Db, conversation_id: Uuid, users: &[Uuid]) -> Result<Vec<(Uuid, Permission, i64)>> {
    grants_on(&db.client().await?, conversation_id, users).await
}

/// [`grants`] on a connection the caller holds.
pub(crate) async fn grants_on(
    client: &impl GenericClient,
    conversation_id: Uuid,
    users: &[Uuid],
) -> Result<Vec<(Uuid, Permission, i64)>> {
    let statement = client.prepare_cached(&GRANTS).await?;
    let rows = client.query(&statement, &[&conversation_id, &users]).await?;
    rows.iter()
        .map(|row| {
            Ok((row.try_get("user_id")?, permission_from(row.try_get("permission")?), row.try_get("history_seq")?))
        })
        .collect()
}

/// The whole history of a conversation (see the module docs), from one consistent snapshot: one statement.
pub async fn load(db: &Db, conversation_id: Uuid) -> Result<History> {
    load_on(&db.client().await?, conversation_id, Page::ALL).await
}

/// [`load`] on a connection the caller holds.
pub(crate) async fn load_on(client: &impl GenericClient, conversation_id: Uuid, page: Page) -> Result<History> {
    let statement = client.prepare_cached(&LOAD).await?;
    // One row more than asked tells whether older ones exist.
    let rows = client.query(&statement, &[&conversation_id, &page.limit.map(|n| n + 1), &page.before]).await?;
    // `history_seq` has exactly one row, so the LEFT JOIN yields at least one.
    let seq = match rows.first() {
        Some(row) => row.try_get("history_seq")?,
        None => 0,
    };
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<_, Option<Uuid>>("id")?.is_some() {
            messages.push(message_from(row)?);
        }
    }
    let has_more = page.limit.is_some_and(|n| messages.len() as i64 > n);
    if has_more {
        messages.remove(0);
    }
    Ok(History { seq, messages, has_more })
}

/// The current versions among rows `m` of conversation `$1` (a SQL condition): not a message a later one edits, not
/// an answer to such a message, and not an answer to a message that has a later answer (a regenerate).
const CURRENT: &str = "NOT EXISTS (SELECT 1 FROM messages e WHERE e.conversation_id = $1 \
       AND (e.edit_of = m.id OR e.edit_of = m.reply_to)) \
     AND NOT EXISTS (SELECT 1 FROM messages b WHERE b.conversation_id = $1 AND b.role = 'assistant' \
       AND b.reply_to = m.reply_to AND b.seq > m.seq)";

/// The last `limit` finished turns of a conversation before stream position `below` (all when `None`), oldest
/// first, as `(role, text)` for a model's context: only current versions (an edited message and the older answers
/// of a regenerated one are left out). Responses that failed or were stopped count with the text they had; empty
/// ones are left out.
pub async fn context(db: &Db, conversation_id: Uuid, limit: i64, below: Option<i64>) -> Result<Vec<(String, String)>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT role, text FROM (SELECT m.role, m.text, m.seq, m.id FROM messages m \
               WHERE m.conversation_id = $1 AND m.status <> 'streaming' AND m.text <> '' \
                 AND ($3::bigint IS NULL OR m.seq < $3) AND {CURRENT} \
               ORDER BY m.seq DESC, m.id DESC LIMIT $2) t ORDER BY seq, id"
        )
    });
    let client = db.client().await?;
    let statement = client.prepare_cached(&SQL).await?;
    let rows = client.query(&statement, &[&conversation_id, &limit, &below]).await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// The newest person's message of a conversation (always a current version: an edit comes after what it edits).
#[derive(Debug, Clone, PartialEq)]
pub struct LastMessage {
    pub id: Uuid,
    pub author_id: Option<Uuid>,
    pub text: String,
    pub seq: i64,
}

/// The conversation's [`LastMessage`], `None` before its first message is in the transcript.
pub async fn last_message(db: &Db, conversation_id: Uuid) -> Result<Option<LastMessage>> {
    let client = db.client().await?;
    let row = client
        .query_opt(
            "SELECT id, author_id, text, seq FROM messages WHERE conversation_id = $1 AND role = 'user' \
             ORDER BY seq DESC, id DESC LIMIT 1",
            &[&conversation_id],
        )
        .await?;
    row.map(|r| {
        Ok(LastMessage { id: r.try_get(0)?, author_id: r.try_get(1)?, text: r.try_get(2)?, seq: r.try_get(3)? })
    })
    .transpose()
}

/// The current versions among `rows` (stream order), by the rule of `context`: a message a later one edits, an
/// answer to it, and an answer a later answer to the same message regenerated are left out.
pub fn current_versions(rows: Vec<Message>) -> Vec<Message> {
    let current = current_ids(&rows);
    rows.into_iter().filter(|m| current.contains(&m.id)).collect()
}

/// The ids of [`current_versions`].
pub fn current_ids(rows: &[Message]) -> std::collections::HashSet<Uuid> {
    use std::collections::{HashMap, HashSet};
    let edited: HashSet<Uuid> = rows.iter().filter_map(|m| m.edit_of).collect();
    let mut latest: HashMap<Uuid, u64> = HashMap::new();
    for m in rows.iter().filter(|m| m.role == "assistant") {
        if let Some(q) = m.reply_to {
            let seq = latest.entry(q).or_insert(m.seq);
            *seq = (*seq).max(m.seq);
        }
    }
    rows.iter()
        .filter(|m| !edited.contains(&m.id))
        .filter(|m| match (m.role.as_str(), m.reply_to) {
            ("assistant", Some(q)) => !edited.contains(&q) && latest.get(&q) == Some(&m.seq),
            _ => true,
        })
        .map(|m| m.id)
        .collect()
}

/// Number of transcript rows of a conversation.
pub async fn count(db: &Db, conversation_id: Uuid) -> Result<i64> {
    let client = db.client().await?;
    let row = client.query_one("SELECT count(*) FROM messages WHERE conversation_id = $1", &[&conversation_id]).await?;
    Ok(row.try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u128, role: &str, seq: u64, reply_to: Option<u128>, edit_of: Option<u128>) -> Message {
        Message {
            id: Uuid::from_u128(id),
            role: role.into(),
            author_id: None,
            author_name: None,
            text: String::new(),
            status: "complete".into(),
            error: None,
            model: None,
            reply_to: reply_to.map(Uuid::from_u128),
            edit_of: edit_of.map(Uuid::from_u128),
            seq,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn current_versions_keep_the_last_answer_of_the_last_edit() {
        // m1 answered by a1, regenerated as a2, then edited as m2 answered by a3; then m3 / a4.
        let rows = vec![
            row(1, "user", 1, None, None),
            row(11, "assistant", 2, Some(1), None),
            row(12, "assistant", 4, Some(1), None),
            row(2, "user", 6, None, Some(1)),
            row(13, "assistant", 7, Some(2), None),
            row(3, "user", 9, None, None),
            row(14, "assistant", 10, Some(3), None),
        ];
        let kept: Vec<u128> = current_versions(rows).iter().map(|m| m.id.as_u128()).collect();
        assert_eq!(kept, [2, 13, 3, 14]);
        let regenerated = vec![
            row(1, "user", 1, None, None),
            row(11, "assistant", 2, Some(1), None),
            row(12, "assistant", 4, Some(1), None),
        ];
        let kept: Vec<u128> = current_versions(regenerated).iter().map(|m| m.id.as_u128()).collect();
        assert_eq!(kept, [1, 12]);
    }
}
