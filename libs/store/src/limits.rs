//! `rate_buckets`: token buckets shared by every api replica. A take locks the buckets it needs (in key order,
//! so two takes never deadlock), computes each balance from its last value and the time since, and spends one
//! token from each only if every one has it: a refusal costs nothing, so a request refused by the org's bucket
//! does not also drain the person's.

use crate::{Db, Result};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One bucket: at most `capacity` tokens, refilled at `per_sec` tokens per second.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub key: String,
    pub capacity: f64,
    pub per_sec: f64,
}

/// A refused take: the first bucket (in the order given) that was empty, and when it will hold a token again.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub key: String,
    pub retry_after: Duration,
}

/// Spends one token from every bucket, or from none: `Ok(Err(refused))` when one of them is empty.
pub async fn take(db: &Db, buckets: &[Bucket]) -> Result<std::result::Result<(), Refused>> {
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    let keys: Vec<&str> = buckets.iter().map(|b| b.key.as_str()).collect();
    let capacities: Vec<f64> = buckets.iter().map(|b| b.capacity).collect();
    tx.execute(
        "INSERT INTO rate_buckets (key, tokens, updated_at) \
         SELECT k, c, clock_timestamp() FROM unnest($1::text[], $2::float8[]) AS w(k, c) \
         ON CONFLICT (key) DO NOTHING",
        &[&keys, &capacities],
    )
    .await?;
    // Locked first, read after: a statement that waited for another take's lock sees what it committed.
    tx.execute("SELECT 1 FROM rate_buckets WHERE key = ANY($1) ORDER BY key FOR UPDATE", &[&keys]).await?;
    let rows = tx
        .query(
            "SELECT key, tokens, GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - updated_at))::float8, \
             GREATEST(updated_at, clock_timestamp()) FROM rate_buckets WHERE key = ANY($1)",
            &[&keys],
        )
        .await?;
    let mut balances = Vec::with_capacity(buckets.len());
    let mut now: Option<DateTime<Utc>> = None;
    for row in &rows {
        let key: String = row.try_get(0)?;
        let tokens: f64 = row.try_get(1)?;
        let elapsed: f64 = row.try_get(2)?;
        let at: DateTime<Utc> = row.try_get(3)?;
        now = now.max(Some(at));
        if let Some(b) = buckets.iter().find(|b| b.key == key) {
            balances.push((b, (tokens + elapsed * b.per_sec).min(b.capacity)));
        }
    }
    let refused = buckets.iter().find_map(|b| {
        let balance = balances.iter().find(|(x, _)| x.key == b.key).map_or(b.capacity, |(_, v)| *v);
        (balance < 1.0).then(|| Refused { key: b.key.clone(), retry_after: refill_time(1.0 - balance, b.per_sec) })
    });
    if let Some(refused) = refused {
        tx.commit().await?;
        return Ok(Err(refused));
    }
    let new_keys: Vec<&str> = balances.iter().map(|(b, _)| b.key.as_str()).collect();
    let new_tokens: Vec<f64> = balances.iter().map(|(_, v)| v - 1.0).collect();
    tx.execute(
        "UPDATE rate_buckets b SET tokens = w.t, updated_at = $3 \
         FROM unnest($1::text[], $2::float8[]) AS w(k, t) WHERE b.key = w.k",
        &[&new_keys, &new_tokens, &now],
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Deletes buckets untouched for `idle` (they have refilled long since: a missing bucket is a full one).
pub async fn forget_idle(db: &Db, idle: Duration) -> Result<u64> {
    let client = db.client().await?;
    let secs = idle.as_secs_f64();
    Ok(client
        .execute("DELETE FROM rate_buckets WHERE updated_at < now() - make_interval(secs => $1)", &[&secs])
        .await?)
}

/// How long `missing` tokens take to refill at `per_sec` (at least 1 ms; a bucket that never refills: a day).
fn refill_time(missing: f64, per_sec: f64) -> Duration {
    if per_sec <= 0.0 {
        return Duration::from_secs(86_400);
    }
    Duration::from_secs_f64((missing / per_sec).clamp(0.001, 86_400.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refill_time_is_bounded() {
        assert_eq!(refill_time(0.5, 1.0), Duration::from_millis(500));
        assert_eq!(refill_time(1.0, 0.0), Duration::from_secs(86_400));
        assert_eq!(refill_time(1.0, 1e-9), Duration::from_secs(86_400));
        assert_eq!(refill_time(0.0, 1.0), Duration::from_millis(1));
    }
}
