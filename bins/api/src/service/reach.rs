//! Who gains, loses or changes access by a change of shares, teams or team members — and the events that say so.
//!
//! A person's permission is the highest of their personal share and their teams' shares (`rh_store::teams`), so a
//! change cannot tell from its own row what it did to a person: adding a personal View share to someone who can
//! already respond through a team changes nothing; removing a team share leaves a member's personal share. Every
//! such change therefore takes a [`Reach::before`] snapshot of the permissions of the people and conversations it
//! touches (in its transaction, with those conversations locked), changes its rows, and [`Reach::announce`]s the
//! difference exactly as a personal share always did: `participant.added|changed|removed` on the conversation (the
//! edge ends a removed person's subscriptions with `access_revoked`, updates a changed one's permission) and the
//! sidebar message to the person's inbox. When people came or went, the owner's inbox gets the conversation's new
//! "Shared with N" too, so every row of their sidebar follows it live, not only the open conversation.

use super::events::{Change, summary};
use crate::error::ApiError;
use rh_protocol::frame::SidebarAction;
use rh_protocol::rpc::ConversationSummary;
use rh_protocol::{Event, Permission};
use rh_store::conversations::Conversation;
use rh_store::teams;
use std::collections::HashMap;
use uuid::Uuid;

/// The permissions before a change.
pub struct Reach {
    conversations: Vec<Conversation>,
    people: Vec<Uuid>,
    before: HashMap<(Uuid, Uuid), Permission>,
}

impl Reach {
    /// Reads what `people` may do on each of `conversations` (locked by `change`) now.
    pub async fn before(
        change: &Change<'_>,
        conversations: Vec<Conversation>,
        people: Vec<Uuid>,
    ) -> Result<Self, ApiError> {
        let ids: Vec<Uuid> = conversations.iter().map(|c| c.id).collect();
        let before = teams::permissions(change.tx(), &ids, &people).await?;
        Ok(Reach { conversations, people, before })
    }

    /// Reads the permissions again and queues on `change` an event and a sidebar message for every person whose
    /// permission on a conversation differs. The owner's never does (ownership is not a share).
    pub async fn announce(self, change: &mut Change<'_>) -> Result<(), ApiError> {
        let ids: Vec<Uuid> = self.conversations.iter().map(|c| c.id).collect();
        let after = teams::permissions(change.tx(), &ids, &self.people).await?;
        let gained: Vec<Uuid> = after.keys().filter(|k| !self.before.contains_key(k)).map(|(_, u)| *u).collect();
        let names = if gained.is_empty() { HashMap::new() } else { teams::people(change.tx(), &gained).await? };
        for conversation in &self.conversations {
            let mut came_or_went = false;
            for user_id in &self.people {
                let key = (conversation.id, *user_id);
                let (event, action, permission) = match (self.before.get(&key), after.get(&key)) {
                    (Some(Permission::Owner), _) | (_, Some(Permission::Owner)) => continue,
                    (None, Some(&p)) => {
                        let Some(person) = names.get(user_id) else { continue };
                        let event = Event::ParticipantAdded {
                            user_id: *user_id,
                            name: person.name.clone(),
                            email: person.email.clone(),
                            permission: p,
                        };
                        (event, SidebarAction::Added, Some(p))
                    }
                    (Some(a), Some(&b)) if *a != b => (
                        Event::ParticipantChanged { user_id: *user_id, permission: b },
                        SidebarAction::Changed,
                        Some(b),
                    ),
                    (Some(_), None) => (Event::ParticipantRemoved { user_id: *user_id }, SidebarAction::Removed, None),
                    _ => continue,
                };
                came_or_went |= action != SidebarAction::Changed;
                change.event_on(conversation.id, event)?;
                let entry = permission.map(|p| summary(conversation, p));
                change.inbox_on(conversation.id, *user_id, action, entry)?;
            }
            if came_or_went {
                let shared_with = Some(rh_store::shares::live_count(change.tx(), conversation.id).await?);
                let entry = ConversationSummary { shared_with, ..summary(conversation, Permission::Owner) };
                change.inbox_on(conversation.id, conversation.owner_id, SidebarAction::Changed, Some(entry))?;
            }
        }
        Ok(())
    }
}
