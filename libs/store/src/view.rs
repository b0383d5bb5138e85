//! What `GET /conversations/{id}` shows: the conversation, the caller's permission, its history, participants
//! and attachments — read on ONE pooled connection: the access check first ([`crate::conversations::access_on`], made by
//! the api's access step on the connection it then passes here), then the three reads pipelined (sent together,
//! answered in one round trip), every statement prepared once per connection. A burst of people opening
//! a conversation (a thousand late joiners of a streaming response, each loading history before subscribing)
//! costs one pool checkout and two round trips each, instead of four checkouts and six round trips.

use crate::attachments::{self, Attachment};
use crate::conversations::Conversation;
use crate::history::{self, History, Page};
use crate::shares::{self, Participant};
use crate::Result;
use deadpool_postgres::GenericClient;
use rh_protocol::Permission;

/// One conversation as someone who may see it gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationView {
    pub conversation: Conversation,
    pub permission: Permission,
    pub history: History,
    pub participants: Vec<Participant>,
    pub attachments: Vec<Attachment>,
}

/// One `page` of the history of `conversation`, with its participants and attachments, read on `client` (the three
/// reads pipelined) for someone the access check on that same connection let in with `permission`.
pub async fn load_on(
    client: &impl GenericClient,
    conversation: Conversation,
    permission: Permission,
    page: Page,
) -> Result<ConversationView> {
    let id = conversation.id;
    let (history, participants, attachments) = tokio::try_join!(
        history::load_on(client, id, page),
        shares::list_on(client, id),
        attachments::list_on(client, id),
    )?;
    Ok(ConversationView { conversation, permission, history, participants, attachments })
}
