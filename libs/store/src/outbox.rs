//! `outbox`: the messages a state change sends, written in the change's own transaction (`sql/V2__outbox.sql`).
//!
//! The api writes rows with [`enqueue`] inside the transaction that changes the state, so the change and its
//! messages commit together or not at all; [`enqueue`] also `NOTIFY`s [`CHANNEL`] (delivered at commit). The relay
//! (`bins/api/src/relay.rs`) takes [`lead`]ership, reads [`pending`] rows in id order, publishes them and
//! [`mark_published`]s them. Published rows stay for [`prune`]'s grace period, so that any replica can look up
//! the stream `seq` of an event it committed ([`published_seqs`]).
//!
//! Per conversation, id order is commit order: every change locks its conversation row first
//! ([`crate::conversations::lock`]) and only then takes ids from the sequence, so the next change of the same
//! conversation gets larger ids and commits later. Across conversations a smaller id may commit after a larger one
//! was published; the relay reads by id and marks by id, so such a row is simply published in a later round.

use crate::{Db, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

/// The `LISTEN`/`NOTIFY` channel a commit with outbox rows wakes the relay on.
pub const CHANNEL: &str = "rh_outbox";

/// Advisory lock key of the relay's leadership ("RHOUTB").
const LEADER_LOCK: i64 = 0x5248_4f55_5442;

/// A message to send once the transaction commits.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// The event kind, or `inbox`.
    pub kind: &'static str,
    pub subject: String,
    /// `Nats-Msg-Id` of a conversation event (the event id); `None` for a sidebar message (the relay uses the
    /// row's id).
    pub msg_id: Option<Uuid>,
    pub payload: Vec<u8>,
    /// The conversation the change is about.
    pub conversation_id: Uuid,
}

/// A row the relay has yet to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub msg_id: Option<Uuid>,
    pub payload: Vec<u8>,
    /// When the relay first tried to publish it (`None`: never), and how many seconds ago by the database's
    /// clock.
    pub attempted: Option<(DateTime<Utc>, f64)>,
}

/// Writes `messages` (in this order) in the caller's transaction and notifies the relay at commit.
pub async fn enqueue(tx: &impl GenericClient, messages: &[NewMessage]) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = messages.iter().map(|m| m.kind).collect();
    let subjects: Vec<&str> = messages.iter().map(|m| m.subject.as_str()).collect();
    let msg_ids: Vec<Option<Uuid>> = messages.iter().map(|m| m.msg_id).collect();
    let payloads: Vec<&[u8]> = messages.iter().map(|m| m.payload.as_slice()).collect();
    let conversations: Vec<Uuid> = messages.iter().map(|m| m.conversation_id).collect();
    // Ids are drawn in the SELECT's order, so they follow the order given.
    let statement = tx
        .prepare_cached(
            "INSERT INTO outbox (kind, subject, msg_id, payload, conversation_id) \
             SELECT kind, subject, msg_id, payload, conversation_id FROM \
               unnest($1::text[], $2::text[], $3::uuid[], $4::bytea[], $5::uuid[]) WITH ORDINALITY \
               AS m(kind, subject, msg_id, payload, conversation_id, n) ORDER BY n",
        )
        .await?;
    tx.execute(&statement, &[&kinds, &subjects, &msg_ids, &payloads, &conversations]).await?;
    tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).await?;
    Ok(())
}

/// The oldest `limit` rows not yet published, in id order.
pub async fn pending(leader: &Leader, limit: i64) -> Result<Vec<Pending>> {
    let rows = leader
        .client
        .query(
            "SELECT id, kind, subject, msg_id, payload, attempted_at, \
               EXTRACT(EPOCH FROM now() - attempted_at)::float8 AS attempted_secs \
             FROM outbox WHERE published_seq IS NULL ORDER BY id LIMIT $1",
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let at: Option<DateTime<Utc>> = r.try_get("attempted_at")?;
            let secs: Option<f64> = r.try_get("attempted_secs")?;
            Ok(Pending {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                subject: r.try_get("subject")?,
                msg_id: r.try_get("msg_id")?,
                payload: r.try_get("payload")?,
                attempted: at.zip(secs),
            })
        })
        .collect()
}

/// Records that the relay is about to publish these rows (the first attempt's time is kept).
pub async fn mark_attempted(leader: &Leader, ids: &[i64]) -> Result<()> {
    leader
        .client
        .execute("UPDATE outbox SET attempted_at = now() WHERE id = ANY($1) AND attempted_at IS NULL", &[&ids])
        .await?;
    Ok(())
}

/// Marks rows published with the seq JetStream acked (0 for core NATS) and, for `conversation.created`, stores
/// that seq in `conversations.created_seq`: one statement, so both happen or neither.
pub async fn mark_published(leader: &Leader, published: &[(i64, i64)]) -> Result<()> {
    let ids: Vec<i64> = published.iter().map(|p| p.0).collect();
    let seqs: Vec<i64> = published.iter().map(|p| p.1).collect();
    leader
        .client
        .execute(
            "WITH marked AS ( \
               UPDATE outbox o SET published_seq = p.seq, published_at = now() \
               FROM unnest($1::bigint[], $2::bigint[]) AS p(id, seq) WHERE o.id = p.id \
               RETURNING o.kind, o.conversation_id, o.published_seq) \
             UPDATE conversations c SET created_seq = marked.published_seq \
             FROM marked WHERE marked.kind = 'conversation.created' AND c.id = marked.conversation_id",
            &[&ids, &seqs],
        )
        .await?;
    Ok(())
}

/// The stream seq of each of `msg_ids` that has been published (absent: not yet).
pub async fn published_seqs(db: &Db, msg_ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
    let client = db.client().await?;
    let statement = client
        .prepare_cached("SELECT msg_id, published_seq FROM outbox WHERE msg_id = ANY($1) AND published_seq IS NOT NULL")
        .await?;
    let rows = client.query(&statement, &[&msg_ids]).await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// How many rows wait to be published, and the age of the oldest in seconds (0 when none).
pub async fn backlog(leader: &Leader) -> Result<(i64, f64)> {
    let row = leader
        .client
        .query_one(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) \
             FROM outbox WHERE published_seq IS NULL",
            &[],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Deletes the published rows of a conversation being erased (they hold its title, settings, file names);
/// returns how many of its rows are still unpublished. The erase job runs this on every attempt and is not done
/// while that is above 0: once the relay has sent them, the next attempt purges them from NATS and deletes them
/// here.
pub async fn erase(client: &impl GenericClient, conversation_id: Uuid) -> Result<i64> {
    let row = client
        .query_one(
            "WITH gone AS (DELETE FROM outbox WHERE conversation_id = $1 AND published_seq IS NOT NULL) \
             SELECT count(*) FROM outbox WHERE conversation_id = $1 AND published_seq IS NULL",
            &[&conversation_id],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Deletes rows published more than `grace_secs` ago; returns how many.
pub async fn prune(leader: &Leader, grace_secs: f64) -> Result<u64> {
    Ok(leader
        .client
        .execute("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)", &[&grace_secs])
        .await?)
}

/// The relay's leadership: a dedicated connection (not pooled) holding the session advisory lock and listening
/// on [`CHANNEL`]. The lock lives exactly as long as this connection: when it breaks, [`Leader::woken`] says so
/// and another replica can take over. [`pending`], [`mark_published`], [`backlog`] and [`prune`] run on this
/// connection, so a relay that lost its lock can no longer mark anything.
pub struct Leader {
    client: tokio_postgres::Client,
    notifications: mpsc::UnboundedReceiver<()>,
}

/// Tries to become the relay's leader: `None` when another session holds the lock.
pub async fn lead(db: &Db) -> Result<Option<Leader>> {
    let (client, mut connection) = db.connect_dedicated().await?;
    let (tx, notifications) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Drives the connection and forwards notifications; ends when the connection does.
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "outbox leader connection failed");
                    break;
                }
            }
        }
    });
    // LISTEN before the first read of pending rows, so no commit after that read goes unnoticed.
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    let locked: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]).await?.try_get(0)?;
    Ok(locked.then_some(Leader { client, notifications }))
}

impl Leader {
    /// Waits for a `NOTIFY` (and takes every one queued); false when the connection has ended.
    pub async fn woken(&mut self) -> bool {
        if self.notifications.recv().await.is_none() {
            return false;
        }
        while self.notifications.try_recv().is_ok() {}
        true
    }

    /// True while the connection (and so the lock) is alive.
    pub fn is_alive(&self) -> bool {
        !self.client.is_closed()
    }
}
