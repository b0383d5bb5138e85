//! Versions of the last turn: editing the last message and regenerating its answer. Nothing is overwritten: an
//! edit is a new `message.created` naming the message it is a new version of (`edit_of`), a regenerate is a
//! `response.requested` for another answer to the same message; the transcript keeps every version, and the
//! model's context takes the current ones ([`rh_store::history::context`]).
//!
//! Only the last turn changes, and only while no answer is being generated in the conversation (409
//! `response_in_progress`; stop it first): then "the last message" and "its answer" are settled, as far as the
//! transcript has been written. What "last" means comes from the transcript, so a request that names a message
//! the transcript does not have as the last one (a newer message is in, or it is not written yet) is a 409
//! `conflict`: the client reloads and asks again. Two regenerates at the very same moment both get an answer
//! (two versions), which is harmless.

use super::access::{Need, check};
use super::messages::{Answer, CONTEXT_TURNS, ask, job_context, ready, within_limits};
use crate::error::ApiError;
use crate::state::AppState;
use rh_protocol::api::conversations::RegenerateRequest;
use rh_protocol::rpc::MessageAccepted;
use rh_protocol::{Envelope, Event};
use rh_store::history::LastMessage;
use uuid::Uuid;

/// The message an edit replaces: `message_id` must be the conversation's last message, written by `user_id`, with
/// no answer being generated. (Access was checked by the caller: this is its validation step.)
pub(super) async fn edit_target(
    state: &AppState,
    conversation_id: Uuid,
    user_id: Uuid,
    message_id: Uuid,
) -> Result<LastMessage, ApiError> {
    let last = last_message(state, conversation_id, Some(message_id)).await?;
    if last.author_id != Some(user_id) {
        return Err(ApiError::Forbidden("only its author can edit a message".into()));
    }
    Ok(last)
}

/// Another answer to the conversation's last message (Can Respond or owner), within the same limits as a send:
/// publishes `response.requested` (acked → its seq), then asks for the answer with the context before that
/// message. REST and `rh.api.regenerate` both come here.
pub async fn regenerate(
    state: &AppState,
    user_id: Uuid,
    conversation_id: Uuid,
    request: RegenerateRequest,
) -> Result<MessageAccepted, ApiError> {
    let access = check(state, conversation_id, user_id, Need::Respond("regenerate answers")).await?;
    let conversation = access.conversation();
    let max_tokens = ready(state, conversation, request.max_tokens).await?;
    let last = last_message(state, conversation_id, request.message_id).await?;
    let requester = rh_store::orgs::user(&state.db, user_id).await?;
    let response_id = Uuid::now_v7();
    within_limits(state, conversation, user_id, requester.org_id, response_id, async {
        let earlier = rh_store::history::context(&state.db, conversation_id, CONTEXT_TURNS, Some(last.seq)).await?;
        let messages = job_context(state, conversation, earlier, &last.text);
        let event = Event::ResponseRequested {
            response_id,
            message_id: last.id,
            requested_by: user_id,
            requested_by_name: requester.name,
        };
        let seq = rh_bus::publish_event_acked(&state.js, &Envelope::new(conversation_id, Some(user_id), event))
            .await
            .map_err(|e| ApiError::Unavailable(format!("could not publish the request: {e}")))?;
        let answer = Answer { message_id: last.id, response_id, max_tokens, messages, requested_by: user_id };
        ask(state, conversation, answer).await?;
        state.metrics.messages_accepted.inc();
        Ok(MessageAccepted { message_id: last.id, response_id, seq })
    })
    .await
}

/// The conversation's last message, when it is `expected` (if given) and no answer is being generated.
async fn last_message(
    state: &AppState,
    conversation_id: Uuid,
    expected: Option<Uuid>,
) -> Result<LastMessage, ApiError> {
    let last = rh_store::history::last_message(&state.db, conversation_id).await?;
    let last = match (last, expected) {
        (Some(last), Some(id)) if last.id != id => {
            return Err(ApiError::Conflict("that is not the last message of the conversation (any more)".into()));
        }
        (Some(last), _) => last,
        (None, Some(_)) => return Err(ApiError::Conflict("that is not the last message of the conversation".into())),
        (None, None) => return Err(ApiError::Conflict("the conversation has no message to answer".into())),
    };
    if rh_store::responding::any(&state.db, conversation_id).await? {
        return Err(ApiError::ResponseInProgress(
            "an answer is being generated here: wait for it to end, or stop it, then try again".into(),
        ));
    }
    Ok(last)
}
