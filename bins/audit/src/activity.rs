//! The sidebar's "responding…" marker: after a batch that asked for or ended an answer is committed, every
//! participant of each such conversation gets an `activity` message on their inbox (`rh.user.<id>.inbox`, the path
//! of every other sidebar change) saying whether an answer is being generated there now.
//!
//! The state comes from PostgreSQL (`responding`, written with the transcript in the same transaction), read
//! after the commit, so each message says how things are, not what one event did: one that is lost or repeated
//! (core NATS; an event delivered again after a restart) is corrected by the next, and a reloaded sidebar reads
//! the same table (`GET /conversations`). This writer applies events in stream order, one batch after another, so
//! a conversation's messages leave in order. A worker crash needs nothing special: the retry's end event clears
//! the marker.

use rh_protocol::frame::SidebarAction;
use rh_protocol::rpc::InboxMessage;
use rh_protocol::{Envelope, subjects};
use rh_store::Db;
use uuid::Uuid;

/// Asking for an answer (`message.created`, `response.requested`) and its end start and clear the marker.
pub fn changes_activity(envelope: &Envelope) -> bool {
    matches!(envelope.event, rh_protocol::Event::MessageCreated { .. })
        || envelope.event.asks_for_response()
        || envelope.event.is_response_end()
}

/// Tells the participants of `conversations` whether each is responding now. Best effort: a failure is logged
/// (the next change, or a reload, corrects the sidebar).
pub async fn announce(db: &Db, nats: &async_nats::Client, conversations: &[Uuid]) {
    if conversations.is_empty() {
        return;
    }
    let activity = match rh_store::responding::activity(db, conversations).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the responding state; sidebars catch up at the next change");
            return;
        }
    };
    for a in activity {
        for user_id in a.audience {
            let message = InboxMessage {
                user_id,
                action: SidebarAction::Activity,
                conversation_id: a.conversation_id,
                conversation: None,
                responding: Some(a.responding),
            };
            let Ok(body) = serde_json::to_vec(&message) else { continue };
            if let Err(e) = nats.publish(subjects::user_inbox(user_id), body.into()).await {
                tracing::warn!(%user_id, error = %e, "could not publish a sidebar activity message");
            }
        }
    }
}
