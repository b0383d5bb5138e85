//! Continue as a copy: anyone who can see a conversation (View Only included) copies its finished history, up to
//! a message they choose, into a new conversation that they own. The copy starts unshared, with the source's
//! model and settings; attachments come along only when asked (their bytes are copied in the object store).
//!
//! The copy is made the way every conversation change is ([`super::events::Change`]): the row and its events
//! commit together — `conversation.created`, then each copied message as `message.created` (with
//! `copied_from`, so it asks the AI for nothing) followed by its answer's end event, then `attachment.added` —
//! and the relay publishes them. So the audit writer writes the copy's transcript and audit log from the stream
//! exactly as for any conversation, and the history rule holds for the copy from its first event.

use super::events::{Change, seq, summary};
use crate::domain::Title;
use crate::error::ApiError;
use crate::state::AppState;
use rh_protocol::event::Settings;
use rh_protocol::frame::SidebarAction;
use rh_protocol::tools::CopyRequest;
use rh_protocol::{Event, Permission};
use rh_store::attachments::{Attachment, NewAttachment};
use rh_store::conversations::{self, Conversation, NewConversation, SettingsUpdate};
use rh_store::history::{Message, Page};
use std::collections::HashMap;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

/// Most messages one copy takes (each is an event): copy up to an earlier message for a longer conversation.
pub const MAX_COPY_MESSAGES: usize = 2000;

/// Copies `source_id` for `user_id` (of org `org_id`) as `request` says; returns the new conversation.
pub async fn copy(
    state: &AppState,
    user_id: Uuid,
    org_id: Uuid,
    source_id: Uuid,
    request: &CopyRequest,
) -> Result<Conversation, ApiError> {
    // Access: whoever may see it.
    let view = super::views::view(state, user_id, source_id, Page::ALL).await?;
    // Validate.
    let source = view.conversation;
    let title = match request.title.as_deref() {
        Some(t) => Title::parse(Some(t)).map_err(ApiError::Validation)?,
        None => default_title(&source.title)?,
    };
    // The versions current up to that point (an edit's older version and regenerated answers stay behind).
    let messages = rh_store::history::current_versions(up_to(view.history.messages, request.up_to)?);
    if messages.len() > MAX_COPY_MESSAGES {
        return Err(ApiError::Validation(format!(
            "at most {MAX_COPY_MESSAGES} messages can be copied at once: choose an earlier up_to"
        )));
    }
    let attachments: Vec<Attachment> = match (request.attachments, messages.last()) {
        (false, _) => Vec::new(),
        // Those attached before the last copied message (or all, when the whole history is copied).
        (true, last) => view
            .attachments
            .into_iter()
            .filter(|a| request.up_to.is_none() || last.is_some_and(|m| a.created_at <= m.created_at))
            .collect(),
    };

    // Act: the files first (like an upload), then everything else in one change.
    let id = Uuid::now_v7();
    let files = copy_files(state, id, &attachments).await?;
    let result = record(state, user_id, org_id, id, &source, &title, &messages, &files).await;
    if result.is_err() {
        for (_, object_name) in &files {
            if let Err(e) = state.attachments.delete(object_name.as_str()).await {
                tracing::warn!(%object_name, error = %e, "could not delete a copied file of a failed copy");
            }
        }
    }
    let created_event = result?;
    if seq(state, created_event).await.is_some() {
        return Ok(conversations::get(&state.db, id).await?);
    }
    conversations::get(&state.db, id).await.map_err(Into::into)
}

/// "Copy of <title>", shortened to fit a title.
fn default_title(source: &str) -> Result<Title, ApiError> {
    let title: String = format!("Copy of {source}").chars().take(200).collect();
    Title::parse(Some(&title)).map_err(ApiError::Validation)
}

/// The history up to and including message `last` (all of it when `None`); 400 when `last` is not in it.
fn up_to(mut messages: Vec<Message>, last: Option<Uuid>) -> Result<Vec<Message>, ApiError> {
    if let Some(last) = last {
        let Some(i) = messages.iter().position(|m| m.id == last) else {
            return Err(ApiError::Validation(format!("message {last} is not in this conversation's history")));
        };
        messages.truncate(i + 1);
    }
    Ok(messages)
}

/// Copies each attachment's bytes under the new conversation; returns each with its new object name.
async fn copy_files(
    state: &AppState,
    id: Uuid,
    attachments: &[Attachment],
) -> Result<Vec<(Attachment, String)>, ApiError> {
    let mut copied: Vec<(Attachment, String)> = Vec::with_capacity(attachments.len());
    for a in attachments {
        let object_name = format!("{id}/{}", Uuid::now_v7());
        let stored = async {
            let mut bytes = Vec::new();
            let mut object = state.attachments.get(a.object_name.as_str()).await.map_err(|e| e.to_string())?;
            object.read_to_end(&mut bytes).await.map_err(|e| e.to_string())?;
            state.attachments.put(object_name.as_str(), &mut bytes.as_slice()).await.map_err(|e| e.to_string())
        };
        if let Err(e) = stored.await {
            for (_, done) in &copied {
                let _ = state.attachments.delete(done.as_str()).await;
            }
            return Err(ApiError::Unavailable(format!("could not copy the file {:?}: {e}", a.filename)));
        }
        copied.push((a.clone(), object_name));
    }
    Ok(copied)
}

/// The copy's row, attachment rows and events, and its owner's sidebar message, in one change. Returns the id of
/// its `conversation.created`.
#[allow(clippy::too_many_arguments)]
async fn record(
    state: &AppState,
    user_id: Uuid,
    org_id: Uuid,
    id: Uuid,
    source: &Conversation,
    title: &Title,
    messages: &[Message],
    files: &[(Attachment, String)],
) -> Result<Uuid, ApiError> {
    let mut client = state.db.client().await?;
    let mut change = Change::begin_create(&mut client, id, user_id).await?;
    let new = NewConversation { id, org_id, owner_id: user_id, title: title.as_str(), model: &source.model };
    conversations::insert(change.tx(), &new).await?;
    let settings = SettingsUpdate {
        model: &source.model,
        temperature: source.temperature,
        system_prompt: source.system_prompt.as_deref(),
    };
    let conversation = conversations::update_settings(change.tx(), id, &settings).await?;
    let created = change.event(Event::ConversationCreated {
        owner_id: user_id,
        title: title.as_str().to_owned(),
        settings: Settings {
            model: source.model.clone(),
            temperature: source.temperature,
            system_prompt: source.system_prompt.clone(),
        },
    })?;
    for event in message_events(messages) {
        change.event(event)?;
    }
    for (a, object_name) in files {
        let new = NewAttachment {
            id: Uuid::now_v7(),
            conversation_id: id,
            uploaded_by: a.uploaded_by,
            filename: &a.filename,
            content_type: &a.content_type,
            size: a.size,
            object_name,
        };
        let attachment = rh_store::attachments::insert(change.tx(), &new).await?;
        change.event(Event::AttachmentAdded {
            attachment_id: attachment.id,
            filename: attachment.filename,
            content_type: attachment.content_type,
            size: attachment.size.max(0) as u64,
            uploaded_by: attachment.uploaded_by,
        })?;
    }
    change.inbox(user_id, SidebarAction::Added, Some(summary(&conversation, Permission::Owner)))?;
    change.commit(state).await?;
    Ok(created)
}

/// The events that recreate `messages` in a new conversation: each person's message as `message.created` (new
/// ids, `copied_from` the original), each answer as its end event (`response.completed`, `failed` or
/// `stopped`) under the response id its copied question names.
fn message_events(messages: &[Message]) -> Vec<Event> {
    let mut responses: HashMap<Uuid, Uuid> = HashMap::new();
    let mut events = Vec::with_capacity(messages.len());
    for m in messages {
        if m.role == "user" {
            let response_id = Uuid::now_v7();
            responses.insert(m.id, response_id);
            events.push(Event::MessageCreated {
                message_id: Uuid::now_v7(),
                author_id: m.author_id.unwrap_or(Uuid::nil()),
                author_name: m.author_name.clone().unwrap_or_default(),
                text: m.text.clone(),
                client_msg_id: None,
                response_id,
                copied_from: Some(m.id),
                edit_of: None,
            });
            continue;
        }
        // Each question's answer once; an answer to nothing copied gets an id of its own.
        let response_id = m.reply_to.and_then(|q| responses.remove(&q)).unwrap_or_else(Uuid::now_v7);
        let text = m.text.clone();
        events.push(match m.status.as_str() {
            "failed" => Event::ResponseFailed { response_id, attempt: 1, error: "copied".into(), text },
            "stopped" => Event::ResponseStopped { response_id, attempt: 1, text, stopped_by: None },
            _ => Event::ResponseCompleted { response_id, attempt: 1, model: m.model.clone().unwrap_or_default(), text },
        });
    }
    events
}
