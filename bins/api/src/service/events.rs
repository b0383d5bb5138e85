//! How a state change tells others: ONE path for every change that others learn of by event (create, share,
//! change, revoke, rename, settings, delete and retention, attach).
//!
//! A change runs in one PostgreSQL transaction: [`Change::begin`] locks the conversation row (so the changes of a
//! conversation commit one after the other), the service writes its rows on [`Change::tx`], queues its
//! conversation events ([`Change::event`], for `rh.conv.<id>.event`) and sidebar messages ([`Change::inbox`], for
//! `rh.user.<id>.inbox`), and [`Change::commit`] writes them to the outbox and commits, all or nothing. The relay
//! ([`crate::relay`]) publishes them afterwards, also when NATS was down at the time: the caller's request
//! succeeds as soon as the change is stored. A response that reports an event's `seq` asks [`seqs`], which waits
//! briefly for the relay and leaves the seq out when it is not published yet.
//!
//! Sending a message is not a state change of the api (the transcript is written by the audit writer from the
//! stream): `message.created` and the job are published directly, and the caller is told only once JetStream has
//! them (see [`super::messages`]).

use crate::error::ApiError;
use crate::state::AppState;
use deadpool_postgres::Transaction;
use rh_protocol::frame::SidebarAction;
use rh_protocol::rpc::{ConversationSummary, InboxMessage};
use rh_protocol::{Envelope, Event, Permission, subjects};
use rh_store::conversations::{self, Conversation};
use rh_store::outbox::{self, NewMessage};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

/// One state change of a conversation in progress: its transaction and the messages it will send.
pub struct Change<'a> {
    tx: Transaction<'a>,
    conversation_id: Uuid,
    actor: Option<Uuid>,
    messages: Vec<NewMessage>,
}

impl<'a> Change<'a> {
    /// Starts a change of an existing conversation: opens the transaction on `client` and locks the conversation
    /// (404 when it is gone, e.g. deleted since the access check). Returns the conversation as locked.
    /// `actor` is who did it (`None`: the system, e.g. retention).
    pub async fn begin(
        client: &'a mut deadpool_postgres::Object,
        conversation_id: Uuid,
        actor: impl Into<Option<Uuid>>,
    ) -> Result<(Self, Conversation), ApiError> {
        let tx = client.transaction().await.map_err(rh_store::StoreError::from)?;
        let conversation = conversations::lock(&tx, conversation_id).await.map_err(gone)?;
        Ok((Change { tx, conversation_id, actor: actor.into(), messages: Vec::new() }, conversation))
    }

    /// Starts the change that creates conversation `conversation_id` (no row to lock yet).
    pub async fn begin_create(
        client: &'a mut deadpool_postgres::Object,
        conversation_id: Uuid,
        actor: Uuid,
    ) -> Result<Self, ApiError> {
        let tx = client.transaction().await.map_err(rh_store::StoreError::from)?;
        Ok(Change { tx, conversation_id, actor: Some(actor), messages: Vec::new() })
    }

    /// Starts a change that may touch several conversations (a team's), or none: the caller locks what it changes
    /// (`rh_store::teams` says in which order) and queues with [`Change::event_on`] and [`Change::inbox_on`].
    pub async fn begin_many(client: &'a mut deadpool_postgres::Object, actor: Uuid) -> Result<Self, ApiError> {
        let tx = client.transaction().await.map_err(rh_store::StoreError::from)?;
        Ok(Change { tx, conversation_id: Uuid::nil(), actor: Some(actor), messages: Vec::new() })
    }

    /// The change's transaction, for the rows it writes.
    pub fn tx(&self) -> &Transaction<'a> {
        &self.tx
    }

    /// Queues `event` on the conversation; returns its event id (also its `Nats-Msg-Id`).
    pub fn event(&mut self, event: Event) -> Result<Uuid, ApiError> {
        self.event_on(self.conversation_id, event)
    }

    /// Queues `event` on conversation `conversation_id` (which the change has locked).
    pub fn event_on(&mut self, conversation_id: Uuid, event: Event) -> Result<Uuid, ApiError> {
        let envelope = Envelope::new(conversation_id, self.actor, event);
        let payload = serde_json::to_vec(&envelope).map_err(|e| ApiError::Internal(e.into()))?;
        self.messages.push(NewMessage {
            kind: envelope.event.kind(),
            subject: envelope.subject(),
            msg_id: Some(envelope.event_id),
            payload,
            conversation_id,
        });
        Ok(envelope.event_id)
    }

    /// Queues a sidebar message for `user_id`'s open sockets.
    pub fn inbox(
        &mut self,
        user_id: Uuid,
        action: SidebarAction,
        conversation: Option<ConversationSummary>,
    ) -> Result<(), ApiError> {
        self.inbox_on(self.conversation_id, user_id, action, conversation)
    }

    /// Queues a sidebar message about conversation `conversation_id` (which the change has locked).
    pub fn inbox_on(
        &mut self,
        conversation_id: Uuid,
        user_id: Uuid,
        action: SidebarAction,
        conversation: Option<ConversationSummary>,
    ) -> Result<(), ApiError> {
        let message = InboxMessage { user_id, action, conversation_id, conversation, responding: None };
        let payload = serde_json::to_vec(&message).map_err(|e| ApiError::Internal(e.into()))?;
        self.messages.push(NewMessage {
            kind: "inbox",
            subject: subjects::user_inbox(user_id),
            msg_id: None,
            payload,
            conversation_id,
        });
        Ok(())
    }

    /// Writes the queued messages to the outbox and commits them with the change; wakes the relay.
    pub async fn commit(self, state: &AppState) -> Result<(), ApiError> {
        outbox::enqueue(&self.tx, &self.messages).await?;
        self.tx.commit().await.map_err(rh_store::StoreError::from)?;
        if !self.messages.is_empty() {
            state.outbox.committed();
        }
        Ok(())
    }
}

/// The stream seq of each of `event_ids` that the relay publishes within `--outbox-seq-wait-ms`.
pub async fn seqs(state: &AppState, event_ids: &[Uuid]) -> HashMap<Uuid, u64> {
    state.outbox.seqs(event_ids, Duration::from_millis(state.settings.outbox_seq_wait_ms)).await
}

/// [`seqs`] of one event.
pub async fn seq(state: &AppState, event_id: Uuid) -> Option<u64> {
    seqs(state, &[event_id]).await.get(&event_id).copied()
}

/// A conversation deleted between the access check and the change is, to the caller, one that does not exist.
pub fn gone(e: rh_store::StoreError) -> ApiError {
    match e {
        rh_store::StoreError::NotFound => ApiError::conversation_not_found(),
        other => other.into(),
    }
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
        responding: None,
        shared_with: None,
    }
}

/// Tells every edge that a session (or, with `None`, every session of `user_id`) ended, so it closes those sockets
/// now. Core NATS: if it is lost, the sockets still close when their access token expires (minutes).
pub async fn session_ended(state: &AppState, user_id: Uuid, session_id: Option<Uuid>) {
    let msg = rh_protocol::rpc::SessionEnded { user_id, session_id };
    match serde_json::to_vec(&msg) {
        Ok(body) => {
            if let Err(e) = state.nats.publish(subjects::SESSION_ENDED, body.into()).await {
                tracing::warn!(%user_id, error = %e, "could not publish session_ended");
            }
            let _ = state.nats.flush().await;
        }
        Err(e) => tracing::error!(error = %e, "could not serialize session_ended"),
    }
}
