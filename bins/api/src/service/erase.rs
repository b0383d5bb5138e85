//! Deleting a conversation erases its content everywhere (issue 17; `docs/erasure.md` has the whole design).
//!
//! [`delete`] — the one path for the owner's delete and for retention — marks the conversation deleted and
//! enqueues its erase job in one PostgreSQL transaction, together with `conversation.deleted` and the sidebar
//! messages in the outbox ([`super::events::Change`]). The [`Eraser`] (one per
//! api replica; replicas share the jobs through `FOR UPDATE SKIP LOCKED` and a lease, see `rh_store::erase`)
//! runs each job until it is done:
//! 1. PostgreSQL: messages, attachment rows and shares deleted, title and system prompt blanked (once);
//! 2. the stop recorded for the conversation (KV `rh_stops` and `rh.ctl.<id>.stop`), so a response generating now,
//!    or a job picked up later, ends;
//! 3. its attachment objects deleted from `rh_attachments`;
//! 4. its subjects `rh.conv.<id>.>` purged from every stream that holds them, and its published outbox rows
//!    deleted (while some are unpublished, e.g. NATS was down at the delete, the job looks again a second later);
//! 5. once `--erase-settle-secs` have passed since the delete, steps 2-4 once more (what a response that was
//!    generating published after the first purge), then the job is done and `conversation.erased` is audited.
//!
//! A step that fails (NATS down, PostgreSQL down) is retried with back-off; a replica that dies mid-job loses
//! its lease and another one takes over. Every step can run twice without harm.

use super::events::Change;
use crate::error::ApiError;
use crate::state::AppState;
use chrono::Utc;
use prometheus::{IntCounter, IntGauge};
use rh_protocol::Event;
use rh_protocol::frame::SidebarAction;
use rh_protocol::rpc::StopControl;
use rh_protocol::subjects;
use rh_store::conversations::Conversation;
use rh_store::erase::{self, EraseJob, Reason};
use rh_store::shares;
use rh_telemetry::Health;
use std::time::Duration;
use uuid::Uuid;

/// How long a claimed job is ours before another replica may take it over.
const LEASE: Duration = Duration::from_secs(60);
/// How often the runner looks for due jobs when nothing wakes it (jobs due after a back-off, other replicas').
const POLL: Duration = Duration::from_secs(2);
/// How soon to look again when some of the conversation's outbox rows are not published yet.
const OUTBOX_WAIT: Duration = Duration::from_secs(1);
/// The longest back-off between two attempts of a failing job.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Deletes `conversation` (the caller checked who may): marks it deleted, enqueues its erasure and queues
/// `conversation.deleted` (every live subscription ends) and its removal from every participant's sidebar, in one
/// transaction; then wakes the eraser. `actor` is `None` for retention. 404 when already deleted.
pub async fn delete(
    state: &AppState,
    conversation: &Conversation,
    actor: Option<Uuid>,
    reason: Reason,
) -> Result<(), ApiError> {
    let id = conversation.id;
    let mut client = state.db.client().await?;
    let (mut change, conversation) = Change::begin(&mut client, id, actor).await?;
    let participants = shares::list_on(change.tx(), id).await?;
    if erase::mark_deleted(change.tx(), id, actor, reason).await?.is_none() {
        return Err(ApiError::conversation_not_found());
    }
    change.event(Event::ConversationDeleted {})?;
    change.inbox(conversation.owner_id, SidebarAction::Deleted, None)?;
    for p in participants {
        change.inbox(p.user_id, SidebarAction::Deleted, None)?;
    }
    change.commit(state).await?;
    state.erase_wake.notify_one();
    Ok(())
}

/// Why a step of an erase job failed (NATS or PostgreSQL unavailable, mostly). Never holds content.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("database: {0}")]
    Store(#[from] rh_store::StoreError),
    #[error("{0}")]
    Bus(#[from] rh_bus::erase::EraseError),
    #[error("recording the stop: {0}")]
    Stop(String),
}

/// What the eraser reports on `/metrics`.
#[derive(Clone)]
struct EraseMetrics {
    pending: IntGauge,
    oldest_seconds: IntGauge,
    erased: IntCounter,
    failures: IntCounter,
}

impl EraseMetrics {
    fn new(health: &Health) -> Self {
        EraseMetrics {
            pending: health.int_gauge("erase_jobs_pending", "Erase jobs not done yet (all replicas)."),
            oldest_seconds: health
                .int_gauge("erase_oldest_pending_seconds", "Age of the oldest erase job not done yet, in seconds."),
            erased: health.int_counter("erase_jobs_done_total", "Conversations erased by this replica."),
            failures: health.int_counter("erase_step_failures_total", "Erase job attempts that failed and will retry."),
        }
    }
}

/// The erase runner of this replica.
pub struct Eraser {
    state: AppState,
    settle: Duration,
    metrics: EraseMetrics,
}

impl Eraser {
    /// Starts the runner; it works until the process ends.
    pub fn spawn(state: AppState, health: &Health) {
        let settle = Duration::from_secs(state.settings.erase_settle_secs);
        let eraser = Eraser { state, settle, metrics: EraseMetrics::new(health) };
        tokio::spawn(eraser.run());
    }

    async fn run(self) {
        loop {
            loop {
                match erase::claim(&self.state.db, LEASE).await {
                    Ok(Some(job)) => self.attempt(job).await,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim erase jobs");
                        break;
                    }
                }
            }
            if let Ok((pending, oldest)) = erase::backlog(&self.state.db).await {
                self.metrics.pending.set(pending);
                self.metrics.oldest_seconds.set(oldest as i64);
            }
            let _ = tokio::time::timeout(POLL, self.state.erase_wake.notified()).await;
        }
    }

    /// One attempt at `job`: done, scheduled for its last purge, or scheduled for a retry.
    async fn attempt(&self, job: EraseJob) {
        let id = job.conversation_id;
        let outcome = match self.step(&job).await {
            Ok(None) => erase::complete(&self.state.db, &job).await.map(|()| {
                self.metrics.erased.inc();
                tracing::info!(conversation_id = %id, reason = job.reason, "conversation erased");
            }),
            Ok(Some(settle_left)) => erase::retry_later(&self.state.db, id, settle_left, None).await,
            Err(e) => {
                self.metrics.failures.inc();
                let delay = backoff(job.attempts);
                tracing::warn!(conversation_id = %id, attempt = job.attempts, error = %e, ?delay, "erase step failed, will retry");
                erase::retry_later(&self.state.db, id, delay, Some(&e.to_string())).await
            }
        };
        if let Err(e) = outcome {
            // The lease runs out and the job is claimed again.
            tracing::warn!(conversation_id = %id, error = %e, "could not record the erase job's progress");
        }
    }

    /// Steps 1-4; `Some(left)` when the last purge is still `left` away.
    async fn step(&self, job: &EraseJob) -> Result<Option<Duration>, StepError> {
        let state = &self.state;
        let job = erase::erase_database(&state.db, job).await?;
        // Published outbox rows go now; what the relay has yet to publish (the delete's own event, when NATS was
        // down) is purged by a later attempt: counted before the purge, so a row counted as published is purged.
        let unpublished = rh_store::outbox::erase(&state.db.client().await?, job.conversation_id).await?;
        record_stop(state, &job).await?;
        rh_bus::erase::delete_objects(&state.attachments, &job.object_names).await?;
        let purged = rh_bus::erase::purge_conversation(&state.js, job.conversation_id).await?;
        tracing::debug!(conversation_id = %job.conversation_id, purged, "conversation purged from the streams");
        let since_delete = (Utc::now() - job.created_at).to_std().unwrap_or_default();
        let settle_left = self.settle.checked_sub(since_delete).filter(|left| !left.is_zero());
        Ok(settle_left.or((unpublished > 0).then_some(OUTBOX_WAIT)))
    }
}

/// Records a stop for the conversation, as `stop` does: a job requested before it never starts, and the worker
/// generating now ends.
async fn record_stop(state: &AppState, job: &EraseJob) -> Result<(), StepError> {
    let at_us = rh_protocol::now_us();
    let key = job.conversation_id.to_string();
    state.stops.put(key, at_us.to_string().into_bytes().into()).await.map_err(|e| StepError::Stop(e.to_string()))?;
    let control = StopControl {
        conversation_id: job.conversation_id,
        requested_by: job.requested_by.unwrap_or_default(),
        at_us,
        response_id: None,
    };
    let payload = serde_json::to_vec(&control).map_err(|e| StepError::Stop(e.to_string()))?;
    state
        .nats
        .publish(subjects::stop_control(job.conversation_id), payload.into())
        .await
        .map_err(|e| StepError::Stop(e.to_string()))
}

/// 1 s, 2 s, 4 s... up to [`MAX_BACKOFF`], by attempts made.
fn backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(40), MAX_BACKOFF);
        assert_eq!(backoff(0), Duration::from_secs(1));
    }
}
