//! `response_slots`: the answers being generated now, per conversation and per organization, shared by every
//! api replica (`sql/V16__response_slots.sql`). The api [`take`]s a slot before it publishes a message; the
//! audit writer [`free`]s it with the answer's end event ([`crate::transcript`]).

use crate::{Db, Result};
use deadpool_postgres::GenericClient;
use std::time::Duration;
use uuid::Uuid;

/// How many answers may be generated at once; `0` turns a bound off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLimits {
    pub per_conversation: u32,
    pub per_org: u32,
    /// After this a slot whose end never came counts for nothing.
    pub ttl: Duration,
}

/// Which bound a refused [`take`] met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Conversation,
    Org,
}

/// Takes a slot for `response_id`, or says which bound is full (then nothing changed).
pub async fn take(
    db: &Db,
    response_id: Uuid,
    conversation_id: Uuid,
    org_id: Uuid,
    limits: SlotLimits,
) -> Result<std::result::Result<(), Full>> {
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    // One org at a time: the counts below and the insert are one step for every replica.
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended('response_slots:' || $1::uuid::text, 0))", &[&org_id])
        .await?;
    tx.execute("DELETE FROM response_slots WHERE org_id = $1 AND expires_at <= now()", &[&org_id]).await?;
    let row = tx
        .query_one(
            "SELECT count(*) FILTER (WHERE conversation_id = $2), count(*) FROM response_slots WHERE org_id = $1",
            &[&org_id, &conversation_id],
        )
        .await?;
    let (in_conversation, in_org): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let full = |n: i64, bound: u32| bound > 0 && n >= i64::from(bound);
    if full(in_conversation, limits.per_conversation) {
        return Ok(Err(Full::Conversation));
    }
    if full(in_org, limits.per_org) {
        return Ok(Err(Full::Org));
    }
    let ttl = limits.ttl.as_secs_f64();
    tx.execute(
        "INSERT INTO response_slots (response_id, conversation_id, org_id, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4)) ON CONFLICT DO NOTHING",
        &[&response_id, &conversation_id, &org_id, &ttl],
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Frees the slot of `response_id` (nothing when it has none), on `client` (the audit writer's transaction).
pub async fn free(client: &impl GenericClient, response_id: Uuid) -> Result<()> {
    let statement = client.prepare_cached("DELETE FROM response_slots WHERE response_id = $1").await?;
    client.execute(&statement, &[&response_id]).await?;
    Ok(())
}
