//! Every limit on abuse, in one place: the send path, the attachment path and the auth routes ask here before
//! they act, so a refused request changes nothing.
//!
//! The counts live in PostgreSQL (`rate_buckets`, [`rh_store::limits`]), shared by every api replica: a person
//! who spreads requests over replicas meets one bucket. PostgreSQL rather than NATS KV because a take spends
//! from several buckets at once (the person's and the org's) all-or-nothing: one transaction with row locks
//! does that directly, where KV would need a compare-and-swap retry loop per bucket and could still spend from
//! one and then fail on the other. It is one short transaction per AI reply or sign-in attempt, small next to
//! what those requests already cost. What is bounded per process stays in the process: the concurrent
//! password hashes (each holds the memory of one replica).
//!
//! A refusal is [`ApiError::RateLimited`] (429, `Retry-After`, `rate_limited` on the socket) and counts in
//! `relayhub_api_limit_refusals_total{limit}`.

use crate::config::LimitSettings;
use crate::error::ApiError;
use crate::state::AppState;
use rh_store::limits::{self, Bucket};
use std::time::Duration;
use uuid::Uuid;

/// The names of the limits, as the `limit` label of the refusals metric.
pub mod name {
    pub const USER_REPLIES: &str = "user_replies";
    pub const ORG_REPLIES: &str = "org_replies";
}

/// A bucket of `burst` tokens refilled at `per_min` a minute; `None` when the limit is off (burst 0).
fn bucket(key: String, burst: u32, per_min: f64) -> Option<Bucket> {
    (burst > 0).then(|| Bucket { key, capacity: f64::from(burst), per_sec: per_min.max(0.0) / 60.0 })
}

/// One AI reply for `user_id` of `org_id`: spends from the person's and the organization's buckets, or refuses.
pub async fn ai_reply(state: &AppState, user_id: Uuid, org_id: Uuid) -> Result<(), ApiError> {
    let l = &state.settings.limits;
    let buckets = [
        (name::USER_REPLIES, bucket(format!("reply:user:{user_id}"), l.user_replies_burst, l.user_replies_per_min)),
        (name::ORG_REPLIES, bucket(format!("reply:org:{org_id}"), l.org_replies_burst, l.org_replies_per_min)),
    ];
    take(state, &buckets, |limit| match limit {
        name::ORG_REPLIES => "your organization has started too many AI replies",
        _ => "you have started too many AI replies",
    })
    .await
}

/// The `max_tokens` of a generation job: the request's, at most [`LimitSettings::max_tokens_limit`], or the
/// default.
pub fn max_tokens(limits: &LimitSettings, requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(limits.default_max_tokens.min(limits.max_tokens_limit)),
        Some(n) if (1..=limits.max_tokens_limit).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::Validation(format!("max_tokens must be between 1 and {}", limits.max_tokens_limit))),
    }
}

/// Spends one token from each bucket that is on, all or none; a refusal names the first empty bucket.
async fn take(
    state: &AppState,
    buckets: &[(&'static str, Option<Bucket>)],
    message: impl Fn(&str) -> &'static str,
) -> Result<(), ApiError> {
    let on: Vec<Bucket> = buckets.iter().filter_map(|(_, b)| b.clone()).collect();
    if on.is_empty() {
        return Ok(());
    }
    let Err(refused) = limits::take(&state.db, &on).await? else {
        return Ok(());
    };
    let limit = buckets
        .iter()
        .find(|(_, b)| b.as_ref().is_some_and(|b| b.key == refused.key))
        .map_or("unknown", |(name, _)| *name);
    Err(refuse(state, limit, message(limit), refused.retry_after))
}

/// The refusal of `limit`, counted.
fn refuse(state: &AppState, limit: &'static str, message: &str, retry_after: Duration) -> ApiError {
    state.metrics.limit_refusals.with_label_values(&[limit]).inc();
    let secs = retry_after.as_secs_f64().ceil().max(1.0);
    ApiError::RateLimited { message: format!("{message}; try again in {secs} s"), retry_after }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LimitSettings {
        LimitSettings {
            user_replies_burst: 1,
            user_replies_per_min: 1.0,
            org_replies_burst: 1,
            org_replies_per_min: 1.0,
            default_max_tokens: 512,
            max_tokens_limit: 2048,
        }
    }

    #[test]
    fn max_tokens_default_and_bound() {
        let l = settings();
        assert_eq!(max_tokens(&l, None).unwrap(), 512);
        assert_eq!(max_tokens(&l, Some(2048)).unwrap(), 2048);
        assert!(matches!(max_tokens(&l, Some(2049)), Err(ApiError::Validation(_))));
        assert!(matches!(max_tokens(&l, Some(0)), Err(ApiError::Validation(_))));
        let small = LimitSettings { default_max_tokens: 9000, ..l };
        assert_eq!(max_tokens(&small, None).unwrap(), 2048);
    }

    #[test]
    fn a_burst_of_zero_turns_a_limit_off() {
        assert!(bucket("k".into(), 0, 10.0).is_none());
        let b = bucket("k".into(), 3, 30.0).unwrap();
        assert_eq!((b.capacity, b.per_sec), (3.0, 0.5));
    }
}
