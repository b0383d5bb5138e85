//! Full-text search over the titles and finished messages of the conversations one person can see (the access
//! rule of [`crate::conversations`], expired shares excluded), ranked by `ts_rank`, paged by offset. The
//! `to_tsvector('simple', …)` expressions are those of the indexes in `sql/V10__search.sql`.

use crate::{Db, Result};
use std::sync::LazyLock;
use uuid::Uuid;

/// One match.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub conversation_id: Uuid,
    pub title: String,
    /// `None`: the title matched.
    pub message_id: Option<Uuid>,
    pub seq: Option<i64>,
    /// The matched words between `[[` and `]]`.
    pub snippet: String,
    pub rank: f32,
}

/// Matches of `query` (web search syntax: words, "a phrase", -not, or) for `user_id`, best first: `limit` of
/// them after skipping `offset`.
pub async fn search(db: &Db, user_id: Uuid, query: &str, limit: i64, offset: i64) -> Result<Vec<Hit>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH q AS (SELECT websearch_to_tsquery('simple', $2) AS q), \
             visible AS ( \
               SELECT c.id, c.title FROM conversations c \
               WHERE c.deleted_at IS NULL AND c.id IN ({visible})), \
             hits AS ( \
               SELECT v.id AS conversation_id, NULL::uuid AS message_id, NULL::bigint AS seq, \
                      ts_rank(to_tsvector('simple', v.title), q.q) * 2::real AS rank \
               FROM visible v, q WHERE to_tsvector('simple', v.title) @@ q.q \
               UNION ALL \
               SELECT m.conversation_id, m.id, m.seq, ts_rank(to_tsvector('simple', m.text), q.q) \
               FROM visible v JOIN messages m ON m.conversation_id = v.id, q \
               WHERE m.status <> 'streaming' AND to_tsvector('simple', m.text) @@ q.q \
               ORDER BY rank DESC, conversation_id, seq NULLS FIRST, message_id LIMIT $3 OFFSET $4) \
             SELECT h.conversation_id, v.title, h.message_id, h.seq, h.rank, \
                    ts_headline('simple', COALESCE(m.text, v.title), q.q, \
                      'StartSel=[[, StopSel=]], MaxWords=24, MinWords=8, MaxFragments=2') AS snippet \
             FROM hits h JOIN visible v ON v.id = h.conversation_id \
             LEFT JOIN messages m ON m.id = h.message_id, q \
             ORDER BY h.rank DESC, h.conversation_id, h.seq NULLS FIRST, h.message_id",
            visible = crate::conversations::visible_ids("$1")
        )
    });
    let client = db.client().await?;
    let statement = client.prepare_cached(&SQL).await?;
    let rows = client.query(&statement, &[&user_id, &query, &limit, &offset]).await?;
    rows.iter()
        .map(|r| {
            Ok(Hit {
                conversation_id: r.try_get("conversation_id")?,
                title: r.try_get("title")?,
                message_id: r.try_get("message_id")?,
                seq: r.try_get("seq")?,
                snippet: r.try_get("snippet")?,
                rank: r.try_get("rank")?,
            })
        })
        .collect()
}
