//! The response's claim (KV `rh_stops`, [`rh_bus::claims`]) as one attempt sees it: taken at pickup, checked
//! before the end, released before the ack. The claim names the attempt that holds the response.
//!
//! Fencing: JetStream can deliver a job again while an earlier attempt still runs (the consumer's new leader
//! found the job's ack wait passed, or the process stalled past it). The later delivery takes the claim as one
//! attempt more; the earlier attempt, finding before its end that the claim names a later attempt or was removed
//! (the later attempt has ended), publishes nothing more. Only the holder removes the claim, after its end is
//! stored and before it acks the job, so a delivery after the end (the ack was lost: the consumer had no leader)
//! finds the claim removed and drops the job instead of answering again.

use crate::job::JobContext;
use rh_bus::claims::{self, Found, Stored};
use rh_protocol::rpc::{GenerateJob, ResponseClaim};
use rh_protocol::subjects;
use uuid::Uuid;

/// How often a compare-and-set is tried again after losing a race before giving up.
const ROUNDS: usize = 4;

/// What the response's claim says at pickup.
pub enum Pickup {
    /// We hold it now (it was queued, an earlier attempt's, or has no claim: a job from before claims), as this
    /// attempt.
    Ours(u32),
    /// The api stopped it before any worker took it, and published its end.
    EndedByApi,
    /// It has ended: this is a delivery after the end (the earlier delivery's ack was lost).
    Ended,
    /// Stopped while an earlier attempt held it: we hold it now as this attempt and end it as stopped.
    StopRequested { by: Uuid, attempt: u32 },
}

fn key(job: &GenerateJob) -> String {
    subjects::response_claim(job.conversation_id, job.response_id)
}

/// The attempt a claim names as its holder (0: none, or a stop recorded before holders were named).
fn holder(claim: &ResponseClaim) -> u32 {
    match claim {
        ResponseClaim::Running { attempt } | ResponseClaim::StopRequested { attempt, .. } => *attempt,
        ResponseClaim::Queued { .. } | ResponseClaim::Stopped { .. } => 0,
    }
}

/// The claim could not be taken: the job goes back to JetStream and a later delivery tries again.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error("taking the response claim: {0}")]
    Bucket(#[from] claims::ClaimError),
    #[error("the response claim kept changing")]
    Contended,
}

/// Takes the response's claim (compare-and-set, again after losing a race with a stop or another delivery).
///
/// The attempt is one more than the attempt an earlier claim names (1 for a queued answer), not JetStream's
/// delivery count: deliveries also count jobs handed on by workers that do not serve the model, and a nats-server
/// that crashed may forget recent deliveries (a consumer's state is written to disk lazily, the claim is a stored
/// message), while viewers must see each attempt's `response.started` once, in increasing order.
///
/// Only a claim written names an attempt: when the bucket cannot be read or written (its stream is electing a
/// leader) there is no attempt number to use, and running anyway let two deliveries stream as the same attempt,
/// interleaved in every viewer. Then [`TakeError`]: the job is handed back and tried again.
pub async fn take(ctx: &JobContext, job: &GenerateJob) -> Result<Pickup, TakeError> {
    let key = key(job);
    for _ in 0..ROUNDS {
        let (expected, next) = match claims::find(&ctx.stops, &key).await? {
            Found::Nothing => (None, ResponseClaim::Running { attempt: 1 }),
            Found::Removed => return Ok(Pickup::Ended),
            Found::Claim(Stored { claim: ResponseClaim::Stopped { .. }, .. }) => return Ok(Pickup::EndedByApi),
            Found::Claim(Stored { claim: ResponseClaim::StopRequested { by, attempt }, revision }) => {
                (Some(revision), ResponseClaim::StopRequested { by, attempt: attempt.saturating_add(1) })
            }
            Found::Claim(Stored { claim: ResponseClaim::Running { attempt }, revision }) => {
                (Some(revision), ResponseClaim::Running { attempt: attempt.saturating_add(1) })
            }
            Found::Claim(Stored { claim: ResponseClaim::Queued { .. }, revision }) => {
                (Some(revision), ResponseClaim::Running { attempt: 1 })
            }
        };
        let pickup = match next {
            ResponseClaim::StopRequested { by, attempt } => Pickup::StopRequested { by, attempt },
            ref claim => Pickup::Ours(holder(claim)),
        };
        if claims::swap(&ctx.stops, &key, expected, &next).await? {
            return Ok(pickup);
        }
    }
    Err(TakeError::Contended)
}

/// True when the response is no longer `attempt`'s to end: its claim names a later attempt, or was removed (only
/// the holder removes it, so a later attempt has ended it). Unreadable: false (an answer is better than a stuck
/// one, as at pickup).
pub async fn superseded(ctx: &JobContext, job: &GenerateJob, attempt: u32) -> bool {
    match claims::find(&ctx.stops, &key(job)).await {
        Ok(Found::Claim(stored)) => holder(&stored.claim) > attempt,
        Ok(Found::Removed) => true,
        Ok(Found::Nothing) => false,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the response claim before the end");
            false
        }
    }
}

/// Removes the claim once `attempt`'s end is stored, if `attempt` still holds it (a stop recorded before holders
/// were named counts as ours). A claim a later attempt took stays: that attempt ends the response too.
pub async fn release(ctx: &JobContext, job: &GenerateJob, attempt: u32) {
    let key = key(job);
    for _ in 0..ROUNDS {
        let revision = match claims::find(&ctx.stops, &key).await {
            Ok(Found::Claim(Stored { claim, revision })) => {
                let ours = match claim {
                    ResponseClaim::Running { attempt: a } => a == attempt,
                    ResponseClaim::StopRequested { attempt: a, .. } => a == attempt || a == 0,
                    ResponseClaim::Stopped { .. } => true,
                    ResponseClaim::Queued { .. } => false,
                };
                if !ours {
                    tracing::warn!(?claim, "a later attempt holds the response: leaving it its claim");
                    return;
                }
                revision
            }
            Ok(Found::Removed | Found::Nothing) => return,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the response claim to remove it");
                return;
            }
        };
        match claims::remove_at(&ctx.stops, &key, revision).await {
            Ok(true) => return,
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "could not remove the response claim");
                return;
            }
        }
    }
    tracing::warn!("the response claim kept changing; leaving it");
}
