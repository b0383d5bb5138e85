//! Publishing: conversation events go to JetStream (`rh.conv.<id>.event`) and are awaited (we answer the caller
//! with their `seq`, and a change must not be reported done before it is durable); sidebar changes go to core
//! NATS (`rh.user.<id>.inbox`), fire-and-forget, because the sidebar also reloads from `GET /conversations`.

use crate::error::ApiError;
use crate::state::AppState;
use rh_protocol::frame::SidebarAction;
use rh_protocol::rpc::{ConversationSummary, InboxMessage};
use rh_protocol::{Envelope, Event, Permission, subjects};
use rh_store::conversations::Conversation;
use uuid::Uuid;

/// Publishes `event` on the conversation and waits for JetStream to store it; returns its `seq`.
pub async fn publish(
    state: &AppState,
    conversation_id: Uuid,
    actor: Option<Uuid>,
    event: Event,
) -> Result<u64, ApiError> {
    let envelope = Envelope::new(conversation_id, actor, event);
    rh_bus::publish_event_acked(&state.js, &envelope)
        .await
        .map_err(|e| ApiError::Unavailable(format!("could not publish {}: {e}", envelope.event.kind())))
}

/// The sidebar entry of `conversation` as `permission` holder sees it.
pub fn summary(conversation: &Conversation, permission: Permission) -> ConversationSummary {
    ConversationSummary {
        id: conversation.id,
        title: conversation.title.clone(),
        owner_id: conversation.owner_id,
        owner_name: conversation.owner_name.clone(),
        permission,
        shared: permission != Permission::Owner,
        model: conversation.model.clone(),
        created_at: conversation.created_at.to_rfc3339(),
        updated_at: conversation.updated_at.to_rfc3339(),
    }
}

/// Tells `user_id`'s open sockets that their sidebar changed. Failures are logged, not returned: the change
/// itself is already stored and the sidebar catches up on its next load.
pub async fn inbox(
    state: &AppState,
    user_id: Uuid,
    action: SidebarAction,
    conversation_id: Uuid,
    conversation: Option<ConversationSummary>,
) {
    let message = InboxMessage { user_id, action, conversation_id, conversation };
    match serde_json::to_vec(&message) {
        Ok(body) => {
            if let Err(e) = state.nats.publish(subjects::user_inbox(user_id), body.into()).await {
                tracing::warn!(%user_id, %conversation_id, error = %e, "could not publish inbox message");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not serialize inbox message"),
    }
}
