//! Stopping answers, also ones no worker has started (the worker pool is down or busy): the response's claim
//! ([`rh_bus::claims`]) says who holds it.
//!
//! - `queued` (no worker has it): the api swaps it to `stopped` and publishes `response.stopped` (attempt 0)
//!   itself, so every viewer sees the stop at once; a worker that picks the job up later reads `stopped` and drops
//!   the job without a word.
//! - `running`: swapped to `stop_requested` (so a worker that takes the job over after a crash ends it too) and
//!   announced on `rh.ctl.<id>.stop` for the worker generating it, which publishes the end.
//! - no claim: the answer has ended (its claim is removed with the job), or its job predates claims; the control
//!   message is published anyway, harmless when nobody holds it.
//!
//! A swap that loses (a worker took the job between our read and our write) reads again and takes the other
//! branch, so the api and a worker never both end one answer.

use super::access::{Need, check};
use crate::error::ApiError;
use crate::state::AppState;
use futures::TryStreamExt;
use rh_bus::claims::{self, Stored};
use rh_protocol::rpc::{ResponseClaim, StopControl};
use rh_protocol::{Envelope, Event, subjects};
use uuid::Uuid;

/// A stop loses a swap only to a worker taking the job (once) or another stop; more rounds mean a bug.
const MAX_ROUNDS: usize = 4;

/// Stops `response_id` in the conversation, or every answer of it when `None` (Can Respond or owner).
pub async fn stop(
    state: &AppState,
    user_id: Uuid,
    conversation_id: Uuid,
    response_id: Option<Uuid>,
) -> Result<(), ApiError> {
    check(state, conversation_id, user_id, Need::Respond("stop responses")).await?;
    let at_us = rh_protocol::now_us();
    if let Some(response_id) = response_id {
        return end(state, user_id, conversation_id, response_id, at_us).await;
    }
    // The whole conversation: the time in KV keeps jobs without a claim (queued before claims existed) from
    // starting; each claimed answer is ended as above.
    state
        .stops
        .put(conversation_id.to_string(), at_us.to_string().into_bytes().into())
        .await
        .map_err(|e| ApiError::Unavailable(format!("could not record the stop: {e}")))?;
    for response_id in open_responses(state, conversation_id).await? {
        end(state, user_id, conversation_id, response_id, at_us).await?;
    }
    control(state, conversation_id, user_id, at_us, None).await
}

/// Ends one answer: by the api if no worker holds it, else by its worker (see the module doc).
async fn end(state: &AppState, by: Uuid, conversation_id: Uuid, response_id: Uuid, at_us: i64) -> Result<(), ApiError> {
    let key = subjects::response_claim(conversation_id, response_id);
    let unavailable = |e: claims::ClaimError| ApiError::Unavailable(format!("could not stop the answer: {e}"));
    for _ in 0..MAX_ROUNDS {
        let Some(Stored { claim, revision }) = claims::read(&state.stops, &key).await.map_err(unavailable)? else {
            return control(state, conversation_id, by, at_us, Some(response_id)).await;
        };
        match claim {
            ResponseClaim::Queued { .. } => {
                let stopped = ResponseClaim::Stopped { by };
                if claims::swap(&state.stops, &key, Some(revision), &stopped).await.map_err(unavailable)? {
                    return publish_stopped(state, conversation_id, response_id, by, &key).await;
                }
            }
            ResponseClaim::Running { attempt } => {
                let requested = ResponseClaim::StopRequested { by, attempt };
                if claims::swap(&state.stops, &key, Some(revision), &requested).await.map_err(unavailable)? {
                    return control(state, conversation_id, by, at_us, Some(response_id)).await;
                }
            }
            // Already stopped by someone: nothing more to do (the worker is told again, in case it missed it).
            ResponseClaim::StopRequested { .. } => {
                return control(state, conversation_id, by, at_us, Some(response_id)).await;
            }
            ResponseClaim::Stopped { .. } => return Ok(()),
        }
    }
    Err(ApiError::Unavailable("the answer changed hands while stopping it; try again".into()))
}

/// The api ends an answer no worker holds. If the event cannot be stored, the claim goes back to `queued` (when
/// nobody changed it meanwhile), so the answer is not left neither running nor ended, and the stop can be retried.
async fn publish_stopped(
    state: &AppState,
    conversation_id: Uuid,
    response_id: Uuid,
    by: Uuid,
    key: &str,
) -> Result<(), ApiError> {
    let event = Event::ResponseStopped { response_id, attempt: 0, text: String::new(), stopped_by: Some(by) };
    // No PostgreSQL state changes here (the claim is in NATS), so like a sent message it is published directly,
    // not through the outbox.
    let envelope = Envelope::new(conversation_id, Some(by), event);
    let published = rh_bus::publish_event_acked(&state.js, &envelope)
        .await
        .map_err(|e| ApiError::Unavailable(format!("could not publish the stop: {e}")));
    match published {
        Ok(_) => {
            state.metrics.responses_stopped_unclaimed.inc();
            Ok(())
        }
        Err(e) => {
            let back = ResponseClaim::Queued { queued_at_us: rh_protocol::now_us() };
            if let Ok(Some(stored)) = claims::read(&state.stops, key).await
                && matches!(stored.claim, ResponseClaim::Stopped { .. })
                && let Err(e) = claims::swap(&state.stops, key, Some(stored.revision), &back).await
            {
                tracing::warn!(error = %e, %response_id, "could not put a stopped answer back in the queue");
            }
            Err(e)
        }
    }
}

/// Tells the worker generating in the conversation (`response_id`: only that answer) to stop.
async fn control(
    state: &AppState,
    conversation_id: Uuid,
    requested_by: Uuid,
    at_us: i64,
    response_id: Option<Uuid>,
) -> Result<(), ApiError> {
    let control = StopControl { conversation_id, requested_by, at_us, response_id };
    let payload = serde_json::to_vec(&control).map_err(|e| ApiError::Internal(e.into()))?;
    state
        .nats
        .publish(subjects::stop_control(conversation_id), payload.into())
        .await
        .map_err(|e| ApiError::Unavailable(format!("could not send the stop: {e}")))
}

/// The answers of the conversation that have a claim (queued or running): the claim keys under
/// `response.<conversation>.*`, listed from the bucket's stream (a deleted claim leaves a marker; [`end`] reads
/// each key and skips those).
async fn open_responses(state: &AppState, conversation_id: Uuid) -> Result<Vec<Uuid>, ApiError> {
    let unavailable = |e: &dyn std::fmt::Display| ApiError::Unavailable(format!("could not list the answers: {e}"));
    let stream = state.js.get_stream(format!("KV_{}", subjects::KV_STOPS)).await.map_err(|e| unavailable(&e))?;
    let filter = format!("$KV.{}.{}", subjects::KV_STOPS, subjects::response_claims_of(conversation_id));
    let listed: Vec<(String, usize)> = stream
        .info_with_subjects(filter)
        .await
        .map_err(|e| unavailable(&e))?
        .try_collect()
        .await
        .map_err(|e| unavailable(&e))?;
    let prefix = format!("$KV.{}.", subjects::KV_STOPS);
    Ok(listed
        .iter()
        .filter_map(|(subject, _)| subject.strip_prefix(&prefix))
        .filter_map(subjects::parse_response_claim)
        .map(|(_, response_id)| response_id)
        .collect())
}
