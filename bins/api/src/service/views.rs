//! What participants read: one conversation with a page of its history (`GET /conversations/{id}`, and the reply of
//! a create or a copy), and the sidebar list. A conversation read is access → validate → act like every operation:
//! [`check_on`] and the reads share one pooled connection ([`rh_store::view`] says why).

use super::access::{Need, check_on};
use super::events::summary;
use crate::domain::{HistoryPage, PageCursor, PageLimit};
use crate::error::ApiError;
use crate::state::AppState;
use rh_protocol::Permission;
use rh_protocol::api::conversations::{ConversationDetail, ConversationList};
use rh_protocol::rpc::ConversationSummary;
use rh_store::conversations::Conversation;
use rh_store::history::Page;
use rh_store::view::ConversationView;
use uuid::Uuid;

/// The conversation as `user_id` may see it, with `page` of its history (404 when they may not).
pub async fn view(state: &AppState, user_id: Uuid, id: Uuid, page: Page) -> Result<ConversationView, ApiError> {
    let client = state.db.client().await?;
    let access = check_on(state, &client, id, user_id, Need::See).await?;
    let permission = access.permission();
    Ok(rh_store::view::load_on(&client, access.into_conversation(), permission, page, None).await?)
}

/// `GET /conversations/{id}?limit=&before=`: the newest `limit` turns before `before` (see [`HistoryPage`]).
pub async fn get(
    state: &AppState,
    user_id: Uuid,
    id: Uuid,
    limit: Option<i64>,
    before: Option<i64>,
) -> Result<ConversationDetail, ApiError> {
    let client = state.db.client().await?;
    let access = check_on(state, &client, id, user_id, Need::See).await?;
    let page = HistoryPage::parse(limit, before).map_err(ApiError::Validation)?;
    let permission = access.permission();
    let view = rh_store::view::load_on(&client, access.into_conversation(), permission, page, Some(user_id)).await?;
    let grant = view.grant.map(|(permission, seq)| {
        rh_auth::SubscribeGrant::new(user_id, id, permission, u64::try_from(seq).unwrap_or(0))
    });
    let mut detail = detail(view);
    // Best effort: without a grant the client's subscribe asks for access as before.
    detail.grant = grant.and_then(|g| state.keys.issue_grant(&g).ok());
    Ok(detail)
}

/// The reply of a create or a copy: the new conversation as its owner sees it (the owner by construction, so no
/// access step), with the newest page of its history.
pub async fn created(state: &AppState, conversation: Conversation) -> Result<ConversationDetail, ApiError> {
    let page = HistoryPage::parse(None, None).map_err(ApiError::Validation)?;
    let client = state.db.client().await?;
    Ok(detail(rh_store::view::load_on(&client, conversation, Permission::Owner, page, None).await?))
}

/// The sidebar: `user_id`'s own and shared conversations, newest first, `limit` (see [`PageLimit`]) at a time,
/// older than the cursor `before`. Only theirs by the query itself, so no conversation's access step.
pub async fn list(
    state: &AppState,
    user_id: Uuid,
    limit: Option<i64>,
    before: Option<&str>,
) -> Result<ConversationList, ApiError> {
    let limit = PageLimit::parse(limit).map_err(ApiError::Validation)?;
    let before = before.map(PageCursor::parse).transpose().map_err(ApiError::Validation)?;
    let cursor = before.map(|b| (b.created_at, b.id));
    let mut rows = rh_store::conversations::list_for_user(&state.db, user_id, cursor, limit.get() + 1).await?;
    let more = rows.len() as i64 > limit.get();
    rows.truncate(limit.get() as usize);
    let next_before = match rows.last() {
        Some(e) if more => Some(PageCursor { created_at: e.conversation.created_at, id: e.conversation.id }.encode()),
        _ => None,
    };
    let conversations = rows
        .iter()
        .map(|e| ConversationSummary {
            responding: Some(e.responding),
            shared_with: (e.conversation.owner_id == user_id).then(|| u32::try_from(e.shared_with).unwrap_or(u32::MAX)),
            ..summary(&e.conversation, e.permission)
        })
        .collect();
    Ok(ConversationList { conversations, next_before })
}

/// The body of `GET /conversations/{id}`.
pub fn detail(view: ConversationView) -> ConversationDetail {
    let ConversationView { conversation: c, permission, history, participants, attachments, grant: _ } = view;
    let next_before = history.messages.first().filter(|_| history.has_more).map(|m| m.seq);
    ConversationDetail {
        id: c.id,
        title: c.title,
        owner_id: c.owner_id,
        owner_name: c.owner_name,
        model: c.model,
        temperature: c.temperature,
        system_prompt: c.system_prompt,
        created_at: c.created_at,
        updated_at: c.updated_at,
        permission,
        seq: u64::try_from(history.seq).unwrap_or(0),
        messages: history.messages,
        has_more: history.has_more,
        next_before,
        participants: participants.iter().map(Into::into).collect(),
        attachments: attachments.into_iter().map(Into::into).collect(),
        grant: None,
    }
}
