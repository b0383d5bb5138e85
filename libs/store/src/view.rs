//! What `GET /conversations/{id}` shows: the conversation, the caller's permission, its history, participants
//! and attachments — read on ONE pooled connection: the access check first ([`crate::conversations::access_on`], made by
//! the api's access step on the connection it then passes here), then the three reads pipelined (sent together,
//! answered in one round trip), every statement prepared once per connection. A burst of people opening
//! a conversation (a thousand late joiners of a streaming response, each loading history before subscribing)
//! costs one pool checkout and two round trips each, instead of four checkouts and six round trips.
//!
//! The pipeline can also read the caller's socket grant ([`history::grants`], the statement behind
//! `rh.api.access`): the api signs it, and the socket subscribe that follows needs no second access check.

use crate::Result;
use crate::attachments::{self, Attachment};
use crate::conversations::Conversation;
use crate::history::{self, History, Page};
use crate::shares::{self, Participant};
use deadpool_postgres::GenericClient;
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
    /// What `rh.api.access` would answer now for the person asked about: the permission and the position read
    /// with it in one statement.
    pub grant: Option<(Permission, i64)>,
}

/// One `page` of the history of `conversation`, with its participants and attachments, read on `client` (the three
/// reads pipelined) for someone the access check on that same connection let in with `permission`; with
/// `grant_for`, that person's socket grant is read in the same pipeline.
pub async fn load_on(
    client: &impl GenericClient,
    conversation: Conversation,
    permission: Permission,
    page: Page,
    grant_for: Option<Uuid>,
) -> Result<ConversationView> {
    let id = conversation.id;
    let asked: Vec<Uuid> = grant_for.into_iter().collect();
    let grants = async { if asked.is_empty() { Ok(Vec::new()) } else { history::grants_on(client, id, &asked).await } };
    let (history, participants, attachments, grants) = tokio::try_join!(
        history::load_on(client, id, page),
        shares::list_on(client, id),
        attachments::list_on(client, id),
        grants,
    )?;
    let grant = grants.into_iter().find(|(u, _, _)| Some(*u) == grant_for).map(|(_, p, seq)| (p, seq));
    Ok(ConversationView { conversation, permission, history, participants, attachments, grant })
}
