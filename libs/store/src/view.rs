//! What `GET /conversations/{id}` shows: the conversation, the caller's permission, its history, participants
//! and attachments — read on ONE pooled connection: the access check first, then the three reads pipelined (sent
//! together, answered in one round trip), every statement prepared once per connection. A burst of people opening
//! a conversation (a thousand late joiners of a streaming response, each loading history before subscribing)
//! costs one pool checkout and two round trips each, instead of four checkouts and six round trips.

use crate::attachments::{self, Attachment};
use crate::conversations::{self, Conversation};
use crate::history::{self, History, Page};
use crate::shares::{self, Participant};
use crate::{Db, Result};
use rh_protocol::Permission;
use uuid::Uuid;

/// One conversation as someone who may see it gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationView {
    pub conversation: Conversation,
    pub permission: Permission,
    pub history: History,
    pub participants: Vec<Participant>,
    pub attachments: Vec<Attachment>,
}

/// The conversation as `user_id` may see it, with one `page` of its history, or `None` when
/// [`conversations::access`] says they may not (nothing else is read then).
pub async fn load(db: &Db, id: Uuid, user_id: Uuid, page: Page) -> Result<Option<ConversationView>> {
    let client = db.client().await?;
    let Some((conversation, permission)) = conversations::access_on(&client, id, user_id).await? else {
        return Ok(None);
    };
    let (history, participants, attachments) = tokio::try_join!(
        history::load_on(&client, id, page),
        shares::list_on(&client, id),
        attachments::list_on(&client, id),
    )?;
    Ok(Some(ConversationView { conversation, permission, history, participants, attachments }))
}
