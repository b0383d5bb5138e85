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
//!
//! Sign-in and sign-up attempts are counted per client address and per email before any password is hashed;
//! every hash (and verification) then waits for one of this process's [`HashSlots`].

use crate::config::LimitSettings;
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderMap;
use rh_store::limits::{self, Bucket};
use rh_store::slots::{self, Full, SlotLimits};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// The names of the limits, as the `limit` label of the refusals metric.
pub mod name {
    pub const USER_REPLIES: &str = "user_replies";
    pub const ORG_REPLIES: &str = "org_replies";
    pub const SIGNIN_ADDR: &str = "signin_addr";
    pub const SIGNIN_EMAIL: &str = "signin_email";
    pub const PASSWORD_HASHES: &str = "password_hashes";
    pub const CONVERSATION_RESPONSES: &str = "conversation_responses";
    pub const ORG_RESPONSES: &str = "org_responses";
    pub const ORG_ATTACHMENT_BYTES: &str = "org_attachment_bytes";
}

/// The `Retry-After` of a refused concurrent answer. When a slot frees depends on answers in progress, which
/// the api cannot foresee; a few seconds is about one short answer.
pub const RESPONSE_SLOT_RETRY: Duration = Duration::from_secs(5);

/// How long after its last use any bucket is full again under these limits: a bucket idle that long is the
/// same as none, so [`forget_idle`] may delete it. `None` when some limit never refills (its buckets are kept).
pub fn full_again_after(l: &LimitSettings) -> Option<Duration> {
    let limits = [
        (l.user_replies_burst, l.user_replies_per_min),
        (l.org_replies_burst, l.org_replies_per_min),
        (l.signin_addr_burst, l.signin_addr_per_min),
        (l.signin_email_burst, l.signin_email_per_min),
    ];
    let mut longest = Duration::ZERO;
    for (burst, per_min) in limits.into_iter().filter(|(burst, _)| *burst > 0) {
        if per_min <= 0.0 {
            return None;
        }
        longest = longest.max(Duration::from_secs_f64(f64::from(burst) / per_min * 60.0));
    }
    Some(longest)
}

/// Deletes the buckets that are full again (see [`full_again_after`]), so `rate_buckets` does not grow with every
/// address and email ever seen. Called by the periodic retention task.
pub async fn forget_idle(state: &AppState) -> Result<u64, ApiError> {
    let Some(after) = full_again_after(&state.settings.limits) else { return Ok(0) };
    // A minute of margin: a bucket used at the very end of the window is not yet full.
    Ok(rh_store::limits::forget_idle(&state.db, after + Duration::from_secs(60)).await?)
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

/// A slot for answer `response_id` in `conversation_id` of `org_id` (the conversation's org), or a refusal when
/// the conversation or the organization already has as many answers being generated as allowed. Freed by the
/// audit writer with the answer's end ([`rh_store::slots`]), or by [`free_response_slot`] when the send fails.
pub async fn response_slot(
    state: &AppState,
    response_id: Uuid,
    conversation_id: Uuid,
    org_id: Uuid,
) -> Result<(), ApiError> {
    let l = &state.settings.limits;
    if l.conversation_responses == 0 && l.org_responses == 0 {
        return Ok(());
    }
    let bounds = SlotLimits {
        per_conversation: l.conversation_responses,
        per_org: l.org_responses,
        ttl: Duration::from_secs(l.response_slot_ttl_secs),
    };
    let (limit, message) = match slots::take(&state.db, response_id, conversation_id, org_id, bounds).await? {
        Ok(()) => return Ok(()),
        Err(Full::Conversation) => (name::CONVERSATION_RESPONSES, "this conversation has too many answers in progress"),
        Err(Full::Org) => (name::ORG_RESPONSES, "your organization has too many answers in progress"),
    };
    Err(refuse(state, limit, message, RESPONSE_SLOT_RETRY))
}

/// Gives back the slot of an answer whose send failed before anything could end it. Best effort: the slot
/// expires after `--response-slot-ttl-secs` anyway.
pub async fn free_response_slot(state: &AppState, response_id: Uuid) {
    let freed = match state.db.client().await {
        Ok(client) => slots::free(&client, response_id).await,
        Err(e) => Err(e),
    };
    if let Err(e) = freed {
        tracing::warn!(error = %e, %response_id, "could not free the slot of an unsent answer");
    }
}

/// Whether `org_id` may store `more` attachment bytes, on `client` inside the transaction that records them
/// (the org is locked by [`rh_store::attachments::lock_org_bytes`], so two replicas never both fill the quota).
/// 413 `quota_exceeded` when it would go over `--limit-org-attachment-bytes`.
pub async fn attachment_bytes(
    state: &AppState,
    client: &impl deadpool_postgres::GenericClient,
    org_id: Uuid,
    more: u64,
) -> Result<(), ApiError> {
    let quota = state.settings.limits.org_attachment_bytes;
    if quota == 0 {
        return Ok(());
    }
    let stored = rh_store::attachments::lock_org_bytes(client, org_id).await?;
    if stored.saturating_add(more) <= quota {
        return Ok(());
    }
    state.metrics.limit_refusals.with_label_values(&[name::ORG_ATTACHMENT_BYTES]).inc();
    Err(ApiError::QuotaExceeded(format!(
        "your organization's attachments would exceed its quota of {quota} bytes ({stored} stored); \
         delete conversations with attachments to make room"
    )))
}

/// One sign-in or sign-up attempt from `addr` for `email` (lowercased): spends from the address's and the email's
/// buckets, or refuses, before any password is hashed.
pub async fn sign_in_attempt(state: &AppState, addr: Option<IpAddr>, email: &str) -> Result<(), ApiError> {
    let l = &state.settings.limits;
    let addr = addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let email = email.trim().to_lowercase();
    let buckets = [
        (name::SIGNIN_ADDR, bucket(format!("signin:addr:{addr}"), l.signin_addr_burst, l.signin_addr_per_min)),
        (name::SIGNIN_EMAIL, bucket(format!("signin:email:{email}"), l.signin_email_burst, l.signin_email_per_min)),
    ];
    take(state, &buckets, |_| "too many sign-in attempts").await
}

/// One SSO sign-in start from `addr` (it makes the api fetch from the provider): spends from the address's sign-in
/// bucket only (the person is not known yet).
pub async fn sso_start(state: &AppState, addr: Option<IpAddr>) -> Result<(), ApiError> {
    let l = &state.settings.limits;
    let addr = addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let buckets =
        [(name::SIGNIN_ADDR, bucket(format!("signin:addr:{addr}"), l.signin_addr_burst, l.signin_addr_per_min))];
    take(state, &buckets, |_| "too many sign-in attempts").await
}

/// The client's address: the last entry of `--client-ip-header` when set (what the proxy in front saw), else the
/// TCP peer's.
pub fn client_addr(limits: &LimitSettings, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let Some(header) = &limits.client_ip_header else {
        return peer.map(|p| p.ip());
    };
    let value = headers.get_all(header.as_str()).iter().next_back()?.to_str().ok()?;
    value.rsplit(',').next()?.trim().parse().ok()
}

/// The bound on concurrent password hashes of this process (memory is per process, so the bound is too).
pub struct HashSlots {
    slots: Arc<Semaphore>,
    wait: Duration,
    running: AtomicUsize,
    most: prometheus::IntGauge,
}

impl HashSlots {
    /// `most` is the gauge of the most hashes ever run at once (`relayhub_api_password_hashes_most`).
    pub fn new(limits: &LimitSettings, most: prometheus::IntGauge) -> Self {
        HashSlots {
            slots: Arc::new(Semaphore::new(limits.max_concurrent_hashes as usize)),
            wait: Duration::from_millis(limits.hash_wait_ms),
            running: AtomicUsize::new(0),
            most,
        }
    }

    /// Runs `hash` (Argon2) on the blocking pool once a slot is free; `Err(None)` when none frees up in time.
    pub async fn run<T: Send + 'static>(
        &self,
        hash: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Option<ApiError>> {
        let acquired = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await;
        let permit: OwnedSemaphorePermit = match acquired {
            Ok(Ok(permit)) => permit,
            _ => return Err(None),
        };
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.set(self.most.get().max(now as i64));
        let result = tokio::task::spawn_blocking(hash).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        drop(permit);
        result.map_err(|e| Some(ApiError::Internal(e.into())))
    }
}

/// Hashes or verifies a password within the bound ([`HashSlots`]); 429 when no slot frees up in time.
pub async fn password_hash<T: Send + 'static>(
    state: &AppState,
    hash: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    state.hash_slots.run(hash).await.map_err(|e| {
        e.unwrap_or_else(|| refuse(state, name::PASSWORD_HASHES, "too many sign-ins at once", Duration::from_secs(1)))
    })
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
            signin_addr_burst: 1,
            signin_addr_per_min: 1.0,
            signin_email_burst: 1,
            signin_email_per_min: 1.0,
            conversation_responses: 1,
            org_responses: 1,
            response_slot_ttl_secs: 60,
            org_attachment_bytes: 1,
            client_ip_header: None,
            max_concurrent_hashes: 1,
            hash_wait_ms: 0,
        }
    }

    #[tokio::test]
    async fn a_hash_waits_for_a_slot_and_is_refused_when_none_frees_up() {
        let slots = HashSlots::new(&settings(), prometheus::IntGauge::new("most", "most").unwrap());
        assert_eq!(slots.run(|| 7).await.ok(), Some(7));
        let _held = slots.slots.clone().try_acquire_owned().unwrap();
        assert!(matches!(slots.run(|| 8).await, Err(None)), "no slot, no wait: refused");
        assert_eq!(slots.most.get(), 1);
    }

    #[test]
    fn the_client_address_is_the_peer_or_the_proxy_header() {
        let peer: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 5.6.7.8".parse().unwrap());
        let direct = settings();
        assert_eq!(client_addr(&direct, Some(peer), &headers), Some(peer.ip()));
        let proxied = LimitSettings { client_ip_header: Some("x-forwarded-for".into()), ..settings() };
        assert_eq!(client_addr(&proxied, Some(peer), &headers), "5.6.7.8".parse().ok());
        assert_eq!(client_addr(&proxied, Some(peer), &HeaderMap::new()), None);
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
    fn idle_buckets_are_forgotten_only_once_every_limit_has_refilled() {
        let mut l = settings();
        // The slowest to refill from empty: 30 at 10 a minute, 3 minutes (the others take 1).
        (l.org_replies_burst, l.org_replies_per_min) = (30, 10.0);
        assert_eq!(full_again_after(&l), Some(Duration::from_secs(180)));
        l.user_replies_burst = 0;
        l.user_replies_per_min = 0.0;
        assert_eq!(full_again_after(&l), Some(Duration::from_secs(180)), "a limit that is off does not count");
        l.signin_email_per_min = 0.0;
        assert_eq!(full_again_after(&l), None, "a limit that never refills keeps its buckets");
    }

    #[test]
    fn a_burst_of_zero_turns_a_limit_off() {
        assert!(bucket("k".into(), 0, 10.0).is_none());
        let b = bucket("k".into(), 3, 30.0).unwrap();
        assert_eq!((b.capacity, b.per_sec), (3.0, 0.5));
    }
}
