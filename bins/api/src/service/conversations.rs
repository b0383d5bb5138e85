//! Creating a conversation, changing its settings, deleting it.

use super::access::{Authorized, Need, check};
use super::events::{Change, seq, summary};
use crate::domain::{ModelName, SystemPrompt, Temperature, Title};
use crate::error::ApiError;
use crate::state::AppState;
use rh_protocol::api::conversations::{RenameRequest, Renamed, SettingsChanged, SettingsPatchRequest};
use rh_protocol::event::Settings;
use rh_protocol::frame::SidebarAction;
use rh_protocol::{Event, Permission};
use rh_store::conversations::{self, Conversation, NewConversation, SettingsUpdate};
use rh_store::shares;
use uuid::Uuid;

/// Creates a conversation: the row, `conversation.created` and the owner's sidebar message (their other
/// devices) commit together. The relay publishes the event and records its seq in `created_seq`; this waits
/// briefly for that, so the conversation returned normally has it (0 while NATS is down; sends are refused until
/// it is set, see [`super::messages::send`]). `model`: one the worker pool serves; `None`, its default
/// ([`super::models`]).
pub async fn create(
    state: &AppState,
    owner_id: Uuid,
    org_id: Uuid,
    title: &Title,
    model: Option<&ModelName>,
) -> Result<Conversation, ApiError> {
    let served = super::models::served(state).await;
    let model = match model {
        Some(m) => {
            served.check(m)?;
            m.clone()
        }
        None => served.default_model()?,
    };
    let id = Uuid::now_v7();
    let mut client = state.db.client().await?;
    let mut change = Change::begin_create(&mut client, id, owner_id).await?;
    let new = NewConversation { id, org_id, owner_id, title: title.as_str(), model: model.as_str() };
    conversations::insert(change.tx(), &new).await?;
    let conversation = conversations::get_on(change.tx(), id).await?;
    let event = Event::ConversationCreated {
        owner_id,
        title: title.as_str().to_owned(),
        settings: Settings { model: model.as_str().to_owned(), temperature: None, system_prompt: None },
    };
    let event_id = change.event(event)?;
    change.inbox(owner_id, SidebarAction::Added, Some(summary(&conversation, Permission::Owner)))?;
    change.commit(state).await?;
    drop(client);
    if seq(state, event_id).await.is_some() {
        return Ok(conversations::get(&state.db, id).await?);
    }
    Ok(conversation)
}

/// A settings change, validated: each field absent means "unchanged"; for `temperature`, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
struct SettingsPatch {
    model: Option<ModelName>,
    temperature: Option<Option<Temperature>>,
    system_prompt: Option<SystemPrompt>,
}

impl SettingsPatch {
    fn parse(body: &SettingsPatchRequest) -> Result<Self, ApiError> {
        Ok(SettingsPatch {
            model: body.model.as_deref().map(ModelName::parse).transpose().map_err(ApiError::Validation)?,
            temperature: body
                .temperature
                .map(|t| t.map(Temperature::parse).transpose())
                .transpose()
                .map_err(ApiError::Validation)?,
            system_prompt: body
                .system_prompt
                .as_ref()
                .map(|p| SystemPrompt::parse(p.as_deref()))
                .transpose()
                .map_err(ApiError::Validation)?,
        })
    }
}

/// Changes the settings (Can Respond or owner). When something really changed, stores it and publishes
/// `settings.changed` with who changed what; a model change also refreshes every participant's sidebar.
/// Answers the settings as they are now, the names of the fields that changed (empty: nothing to do) and the
/// event's `seq`.
pub async fn update_settings(
    state: &AppState,
    user_id: Uuid,
    user_name: &str,
    conversation_id: Uuid,
    body: &SettingsPatchRequest,
) -> Result<SettingsChanged, ApiError> {
    let access = check(state, conversation_id, user_id, Need::Respond("change the model or settings")).await?;
    let patch = SettingsPatch::parse(body)?;
    let (conversation, changed, seq) = apply_settings(state, &access, user_name, patch).await?;
    let Conversation { model, temperature, system_prompt, .. } = conversation;
    Ok(SettingsChanged { model, temperature, system_prompt, changed, seq })
}

async fn apply_settings(
    state: &AppState,
    access: &Authorized,
    user_name: &str,
    patch: SettingsPatch,
) -> Result<(Conversation, Vec<String>, Option<u64>), ApiError> {
    let (conversation_id, user_id) = (access.id(), access.user_id());
    if let Some(model) = &patch.model {
        super::models::served(state).await.check(model)?;
    }
    let mut client = state.db.client().await?;
    let (mut change, current) = Change::begin(&mut client, conversation_id, user_id).await?;

    let model = patch.model.as_ref().map(|m| m.as_str().to_owned()).unwrap_or_else(|| current.model.clone());
    let temperature = match patch.temperature {
        Some(t) => t.map(Temperature::value),
        None => current.temperature,
    };
    let system_prompt = match patch.system_prompt {
        Some(p) => p.into_option(),
        None => current.system_prompt.clone(),
    };
    let mut changed = Vec::new();
    if model != current.model {
        changed.push("model".to_owned());
    }
    if temperature != current.temperature {
        changed.push("temperature".to_owned());
    }
    if system_prompt != current.system_prompt {
        changed.push("system_prompt".to_owned());
    }
    if changed.is_empty() {
        return Ok((current, changed, None));
    }

    let update = SettingsUpdate { model: &model, temperature, system_prompt: system_prompt.as_deref() };
    let updated = conversations::update_settings(change.tx(), conversation_id, &update).await?;
    let event = Event::SettingsChanged {
        changed_by: user_id,
        changed_by_name: user_name.to_owned(),
        changed: changed.clone(),
        settings: Settings {
            model: updated.model.clone(),
            temperature: updated.temperature,
            system_prompt: updated.system_prompt.clone(),
        },
    };
    let event_id = change.event(event)?;
    if changed.iter().any(|c| c == "model") {
        sidebars_changed(&mut change, &updated).await?;
    }
    change.commit(state).await?;
    drop(client);
    Ok((updated, changed, seq(state, event_id).await))
}

/// Renames a conversation (owner only): publishes `conversation.renamed` (every open view's header) and updates
/// every participant's sidebar. Answers the title and the event's `seq` (`None` when the title is the same, or
/// when the event is not published yet).
pub async fn rename(
    state: &AppState,
    user_id: Uuid,
    user_name: &str,
    conversation_id: Uuid,
    body: &RenameRequest,
) -> Result<Renamed, ApiError> {
    check(state, conversation_id, user_id, Need::Own("rename it")).await?;
    if body.title.trim().is_empty() {
        return Err(ApiError::Validation("title must not be blank".into()));
    }
    let title = Title::parse(Some(&body.title)).map_err(ApiError::Validation)?;
    let (conversation, seq) = retitle(state, user_id, user_name, conversation_id, &title).await?;
    Ok(Renamed { id: conversation.id, title: conversation.title, seq })
}

async fn retitle(
    state: &AppState,
    user_id: Uuid,
    user_name: &str,
    conversation_id: Uuid,
    title: &Title,
) -> Result<(Conversation, Option<u64>), ApiError> {
    let mut client = state.db.client().await?;
    let (mut change, current) = Change::begin(&mut client, conversation_id, user_id).await?;
    if current.title == title.as_str() {
        return Ok((current, None));
    }
    let renamed = conversations::rename(change.tx(), conversation_id, title.as_str()).await?;
    let event = Event::ConversationRenamed {
        renamed_by: user_id,
        renamed_by_name: user_name.to_owned(),
        title: renamed.title.clone(),
        from_first_message: false,
    };
    let event_id = change.event(event)?;
    sidebars_changed(&mut change, &renamed).await?;
    change.commit(state).await?;
    drop(client);
    Ok((renamed, seq(state, event_id).await))
}

/// Titles an untitled conversation ([`Title::DEFAULT`]) from its first message ([`Title::from_message`]), as a
/// title everyone sees (`conversation.renamed` with `from_first_message`, which clients show as the title, not as a
/// rename by the author; sidebars). Checked under the row
/// lock, so a rename by the owner meanwhile is never overwritten. The message is sent already: a failure here is
/// only logged.
pub async fn title_from_first_message(
    state: &AppState,
    conversation_id: Uuid,
    author_id: Uuid,
    author_name: &str,
    text: &str,
) {
    let Some(title) = Title::from_message(text) else { return };
    let result: Result<(), ApiError> = async {
        let mut client = state.db.client().await?;
        let (mut change, current) = Change::begin(&mut client, conversation_id, author_id).await?;
        if current.title != Title::DEFAULT {
            return Ok(());
        }
        let titled = conversations::rename(change.tx(), conversation_id, title.as_str()).await?;
        change.event(Event::ConversationRenamed {
            renamed_by: author_id,
            renamed_by_name: author_name.to_owned(),
            title: titled.title.clone(),
            from_first_message: true,
        })?;
        sidebars_changed(&mut change, &titled).await?;
        change.commit(state).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, %conversation_id, "could not title the conversation from its first message");
    }
}

/// Tells the owner and every participant that the conversation's sidebar entry changed (title, model).
async fn sidebars_changed(change: &mut Change<'_>, conversation: &Conversation) -> Result<(), ApiError> {
    change.inbox(conversation.owner_id, SidebarAction::Changed, Some(summary(conversation, Permission::Owner)))?;
    for p in shares::list_on(change.tx(), conversation.id).await? {
        change.inbox(p.user_id, SidebarAction::Changed, Some(summary(conversation, p.permission)))?;
    }
    Ok(())
}

/// Deletes a conversation (owner only): see [`super::erase::delete`] — it is erased everywhere, and every viewer
/// and sidebar sees it go.
pub async fn delete(state: &AppState, user_id: Uuid, conversation_id: Uuid) -> Result<(), ApiError> {
    let access = check(state, conversation_id, user_id, Need::Own("delete it")).await?;
    super::erase::delete(state, access.conversation(), Some(user_id), rh_store::erase::Reason::Deleted).await
}
