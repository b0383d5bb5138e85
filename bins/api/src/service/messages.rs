//! Sending a message. The api never writes `messages` rows: it publishes `message.created` and a generation job;
//! the audit writer stores the transcript from the stream. Sending changes no PostgreSQL state, so it publishes
//! directly (not through the outbox of [`super::events`]) and answers 2xx only once JetStream has stored both: an
//! accepted message is never lost, a refused one (503) was never accepted. The one exception: the first message of
//! an untitled conversation titles it, after it is accepted
//! ([`super::conversations::title_from_first_message`]). Stopping is in [`super::stops`], editing's checks and
//! regenerating in [`super::versions`].

use super::access::{Need, check};
use super::context;
use super::limits;
use crate::domain::{MessageText, ModelName, Title};
use crate::error::ApiError;
use crate::state::AppState;
use rh_protocol::Event;
use rh_protocol::api::conversations::SendRequest;
use rh_protocol::rpc::{ChatMessage, GenerateJob, MessageAccepted, ResponseClaim};
use rh_protocol::subjects;
use rh_store::conversations::Conversation;
use uuid::Uuid;

/// How many earlier turns a generation job carries as context.
pub(super) const CONTEXT_TURNS: i64 = 50;

/// Longest `client_msg_id` echoed back (it is the client's own correlation id).
const MAX_CLIENT_MSG_ID: usize = 128;

/// Sends a message (Can Respond or owner) if the limits allow ([`within_limits`]; `max_tokens` defaulted and
/// bounded by [`limits::max_tokens`]): publishes `message.created` (acked → its seq), then asks for its answer
/// ([`ask`]). With `edit_of` the message is a new version of the conversation's last message (the caller's, with
/// no answer streaming: [`super::versions::edit_target`]), and the context is what came before that one.
///
/// REST and `rh.api.send_message` both come here: access, then validation (a caller who cannot see the
/// conversation learns nothing from validation messages), then the send.
pub async fn send(
    state: &AppState,
    user_id: Uuid,
    conversation_id: Uuid,
    request: SendRequest,
) -> Result<MessageAccepted, ApiError> {
    let access = check(state, conversation_id, user_id, Need::Respond("send messages")).await?;
    let SendRequest { text, client_msg_id, max_tokens, edit_of } = request;
    let text = MessageText::parse(&text).map_err(ApiError::Validation)?;
    let conversation = access.conversation();
    if client_msg_id.as_ref().is_some_and(|id| id.chars().count() > MAX_CLIENT_MSG_ID) {
        return Err(ApiError::Validation(format!("client_msg_id must have at most {MAX_CLIENT_MSG_ID} characters")));
    }
    let max_tokens = ready(state, conversation, max_tokens).await?;
    let below = match edit_of {
        Some(id) => Some(super::versions::edit_target(state, conversation_id, user_id, id).await?.seq),
        None => None,
    };
    let author = rh_store::orgs::user(&state.db, user_id).await?;
    let (message_id, response_id) = (Uuid::now_v7(), Uuid::now_v7());
    within_limits(state, conversation, user_id, author.org_id, response_id, async {
        let earlier = rh_store::history::context(&state.db, conversation_id, CONTEXT_TURNS, below).await?;
        let messages = job_context(state, conversation, earlier, text.as_str());
        let untitled = conversation.title == Title::DEFAULT && edit_of.is_none();
        let first_text = untitled.then(|| text.as_str().to_owned());
        let event = Event::MessageCreated {
            message_id,
            author_id: user_id,
            author_name: author.name.clone(),
            text: text.into_string(),
            client_msg_id,
            response_id,
            copied_from: None,
            edit_of,
        };
        let envelope = rh_protocol::Envelope::new(conversation_id, Some(user_id), event);
        let seq = rh_bus::publish_event_acked(&state.js, &envelope)
            .await
            .map_err(|e| ApiError::Unavailable(format!("could not publish the message: {e}")))?;
        ask(state, conversation, Answer { message_id, response_id, max_tokens, messages, requested_by: user_id })
            .await?;

        if let Some(first) = first_text {
            super::conversations::title_from_first_message(state, conversation_id, user_id, &author.name, &first).await;
        }
        state.metrics.messages_accepted.inc();
        Ok(MessageAccepted { message_id, response_id, seq })
    })
    .await
}

/// Runs `publish` (which asks for answer `response_id`) if the limits allow: a slot among the answers in progress
/// ([`limits::response_slot`], first, so a request it refuses spends no reply token), then the reply buckets
/// ([`limits::ai_reply`]). Before anything is published: a refused request leaves nothing behind. When `publish`
/// fails the slot is given back (its answer, if any, was ended as failed).
pub(super) async fn within_limits<T>(
    state: &AppState,
    conversation: &Conversation,
    user_id: Uuid,
    org_id: Uuid,
    response_id: Uuid,
    publish: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    limits::response_slot(state, response_id, conversation.id, conversation.org_id).await?;
    let result = async {
        limits::ai_reply(state, user_id, org_id).await?;
        publish.await
    }
    .await;
    if result.is_err() {
        limits::free_response_slot(state, response_id).await;
    }
    result
}

/// What every request for an answer checks before anything is published: the conversation is set up, its model
/// is served; returns the bounded `max_tokens`.
pub(super) async fn ready(
    state: &AppState,
    conversation: &Conversation,
    max_tokens: Option<u32>,
) -> Result<u32, ApiError> {
    if conversation.created_seq == 0 {
        // Its `conversation.created` is still in the outbox (NATS was down): a message published now would come
        // before it in the stream, under the history rule's floor (`libs/store/src/history.rs`).
        return Err(ApiError::Unavailable("this conversation is still being set up; try again shortly".into()));
    }
    let max_tokens = limits::max_tokens(&state.settings.limits, max_tokens)?;
    // The conversation's model may have left the pool since it was picked: refuse rather than fail later.
    let model = ModelName::parse(&conversation.model).map_err(ApiError::Validation)?;
    super::models::served(state).await.check(&model)?;
    Ok(max_tokens)
}

/// A job's context: the system prompt first, the `earlier` turns, ending with `last`, capped by bytes
/// ([`context::fit`]).
pub(super) fn job_context(
    state: &AppState,
    conversation: &Conversation,
    earlier: Vec<(String, String)>,
    last: &str,
) -> Vec<ChatMessage> {
    let system = conversation.system_prompt.as_deref().filter(|p| !p.trim().is_empty());
    let system = system.map(|prompt| ChatMessage { role: "system".into(), content: prompt.to_owned() });
    let earlier = earlier.into_iter().map(|(role, content)| ChatMessage { role, content }).collect();
    let new = ChatMessage { role: "user".into(), content: last.to_owned() };
    let max_payload = state.nats.server_info().max_payload;
    let budget = state.settings.max_context_bytes.min(max_payload.saturating_sub(context::JOB_ROOM));
    context::fit(system, earlier, new, budget)
}

/// An answer to ask for, once the event that asks for it is stored.
pub(super) struct Answer {
    pub message_id: Uuid,
    pub response_id: Uuid,
    pub max_tokens: u32,
    pub messages: Vec<ChatMessage>,
    pub requested_by: Uuid,
}

/// Records the answer as queued in its claim (so a stop can end it while no worker holds it,
/// [`rh_bus::claims`]), then queues its [`GenerateJob`] on `rh.jobs.generate` (acked, `Nats-Msg-Id` = response
/// id so a retry is stored once). When that fails, the answer is ended as failed, so nobody waits for it.
pub(super) async fn ask(state: &AppState, conversation: &Conversation, answer: Answer) -> Result<(), ApiError> {
    let (conversation_id, response_id) = (conversation.id, answer.response_id);
    let requested_at_us = rh_protocol::now_us();
    let claim_key = subjects::response_claim(conversation_id, response_id);
    let queued = ResponseClaim::Queued { queued_at_us: requested_at_us };
    rh_bus::claims::swap(&state.stops, &claim_key, None, &queued)
        .await
        .map_err(|e| ApiError::Unavailable(format!("could not queue the response: {e}")))?;
    let job = GenerateJob {
        conversation_id,
        response_id,
        message_id: answer.message_id,
        model: conversation.model.clone(),
        temperature: conversation.temperature,
        max_tokens: Some(answer.max_tokens),
        messages: answer.messages,
        requested_by: answer.requested_by,
        requested_at_us,
    };
    let Err(e) = queue_job(state, &job).await else { return Ok(()) };
    // No job, so nothing will ever take the claim: drop it, or it would be reported as waiting for a worker.
    if let Err(e) = rh_bus::claims::remove(&state.stops, &claim_key).await {
        tracing::warn!(error = %e, %response_id, "could not remove the claim of an unqueued response");
    }
    // The request is in the stream already: end its answer, or viewers (and the sidebar's "responding…" marker)
    // would wait for it forever. Best effort: NATS may be what failed.
    let failed = Event::ResponseFailed {
        response_id,
        attempt: 0,
        error: "the answer could not be queued; send the message again".into(),
        text: String::new(),
    };
    let envelope = rh_protocol::Envelope::new(conversation_id, None, failed);
    if let Err(e) = rh_bus::publish_event_acked(&state.js, &envelope).await {
        tracing::warn!(error = %e, %response_id, "could not end an unqueued response");
    }
    Err(e)
}

/// Publishes `job` on `rh.jobs.generate` and waits for JetStream to store it (`Nats-Msg-Id` = response id; the
/// request's trace context goes with it to the worker).
async fn queue_job(state: &AppState, job: &GenerateJob) -> Result<(), ApiError> {
    let payload = serde_json::to_vec(job).map_err(|e| ApiError::Internal(e.into()))?;
    let headers = rh_bus::msg_headers(&job.response_id.to_string());
    let unavailable = |e: &dyn std::fmt::Display| ApiError::Unavailable(format!("could not queue the response: {e}"));
    let ack = state
        .js
        .publish_with_headers(subjects::JOBS_GENERATE, headers, payload.into())
        .await
        .map_err(|e| unavailable(&e))?;
    ack.await.map_err(|e| unavailable(&e))?;
    Ok(())
}
