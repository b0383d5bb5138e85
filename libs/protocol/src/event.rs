//! The events of a conversation, as published on `rh.conv.<id>.<kind>` in stream `RH_CONV`.
//!
//! The JSON payload of a stream message is an [`Envelope`]: `{"event_id", "conversation_id", "actor", "ts_us",
//! "type", ...fields of the type}`. The edge forwards these bytes untouched inside a socket `event` frame, so what
//! a client sees as `event` is exactly this object. The stream sequence (`seq`) is not part of the payload: it is
//! assigned by JetStream and carried next to it (in the frame, and in PostgreSQL).

use crate::permission::Permission;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One conversation event with who did it and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per event; also the JetStream `Nats-Msg-Id`, so a retried publish is stored once.
    pub event_id: Uuid,
    pub conversation_id: Uuid,
    /// The person who caused it; `None` for the AI (worker) and the system.
    pub actor: Option<Uuid>,
    /// Producer timestamp, µs since the Unix epoch (delivery latency is measured against it).
    pub ts_us: i64,
    #[serde(flatten)]
    pub event: Event,
}

impl Envelope {
    pub fn new(conversation_id: Uuid, actor: Option<Uuid>, event: Event) -> Self {
        Envelope { event_id: Uuid::now_v7(), conversation_id, actor, ts_us: crate::now_us(), event }
    }

    /// The subject this envelope is published on.
    pub fn subject(&self) -> String {
        if self.event.is_delta() {
            crate::subjects::conv_delta(self.conversation_id)
        } else {
            crate::subjects::conv_event(self.conversation_id)
        }
    }
}

/// Conversation settings as they are after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Settings {
    pub model: String,
    pub temperature: Option<f32>,
    pub system_prompt: Option<String>,
}

/// What happened. Serialized with `"type"` as the tag, e.g. `{"type":"response.delta", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A conversation was created (first event of every conversation).
    #[serde(rename = "conversation.created")]
    ConversationCreated { owner_id: Uuid, title: String, settings: Settings },
    /// A person posted a message. Starts an AI response (`response_id`).
    #[serde(rename = "message.created")]
    MessageCreated {
        message_id: Uuid,
        author_id: Uuid,
        author_name: String,
        text: String,
        /// The id the sending client chose, echoed so it can match its optimistic copy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
        /// The AI response this message asked for.
        response_id: Uuid,
        /// Set on the messages of a copy (`POST /conversations/{id}/copy`): the message this one copies. Such a
        /// message asks for nothing: its answer, if any, is copied as an end event right after it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        copied_from: Option<Uuid>,
        /// Set on an edit: the message this one is a new version of (the last message of the conversation, by the
        /// same author). The new version and its answer supersede the old one (and its answers) as the model's
        /// context; the old ones stay in the transcript.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edit_of: Option<Uuid>,
    },
    /// Someone asked for another answer to the last message (a regenerate): `response_id`'s events follow, as for
    /// a message. It supersedes the message's earlier answers as the model's context; they stay in the transcript.
    #[serde(rename = "response.requested")]
    ResponseRequested { response_id: Uuid, message_id: Uuid, requested_by: Uuid, requested_by_name: String },
    /// A worker began (or, after a crash, began again: `attempt > 1`) generating a response.
    /// A client that sees `attempt > 1` discards the partial text of earlier attempts.
    #[serde(rename = "response.started")]
    ResponseStarted { response_id: Uuid, message_id: Uuid, model: String, attempt: u32 },
    /// A slice of generated text. `index` counts deltas of one attempt from 0 with no gap.
    ///
    /// `from_index` is only set on a *merged* delta, which a subscriber that asked for `compact` gets instead of a
    /// run of stored deltas queued for it at once (a catch-up, or a socket that fell behind): it stands for deltas
    /// `from_index..=index` of the attempt, their texts concatenated; its `seq` and `event_id` are the last one's,
    /// its `ts_us` the first one's. A client that appends `text` and remembers `index` as the last delta it has
    /// needs no change.
    #[serde(rename = "response.delta")]
    ResponseDelta {
        response_id: Uuid,
        attempt: u32,
        index: u32,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_index: Option<u32>,
    },
    /// The response finished; `text` is the full text.
    #[serde(rename = "response.completed")]
    ResponseCompleted { response_id: Uuid, attempt: u32, model: String, text: String },
    /// The provider failed; `text` is what was generated before.
    #[serde(rename = "response.failed")]
    ResponseFailed { response_id: Uuid, attempt: u32, error: String, text: String },
    /// Someone stopped the response; `text` is what was generated before. `attempt` 0: stopped before any worker
    /// started it (the api ended it).
    #[serde(rename = "response.stopped")]
    ResponseStopped {
        response_id: Uuid,
        attempt: u32,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped_by: Option<Uuid>,
    },
    /// No worker has started the response within the api's wait (`--ai-wait-secs`): the AI is unavailable; the
    /// job stays queued and starts when a worker returns (`response.started` follows), unless it is stopped.
    #[serde(rename = "response.delayed")]
    ResponseDelayed { response_id: Uuid, queued_at_us: i64 },
    /// Model or settings changed. `changed` names the fields that changed; `settings` is the result.
    #[serde(rename = "settings.changed")]
    SettingsChanged { changed_by: Uuid, changed_by_name: String, changed: Vec<String>, settings: Settings },
    /// The conversation got a new title: renamed by someone who may (`renamed_by`), or, with
    /// `from_first_message`, titled from its first message (its author is `renamed_by`; clients show the title,
    /// not a rename).
    #[serde(rename = "conversation.renamed")]
    ConversationRenamed {
        renamed_by: Uuid,
        renamed_by_name: String,
        title: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        from_first_message: bool,
    },
    /// A file was attached (bytes in the object store, metadata in PostgreSQL).
    #[serde(rename = "attachment.added")]
    AttachmentAdded { attachment_id: Uuid, filename: String, content_type: String, size: u64, uploaded_by: Uuid },
    #[serde(rename = "participant.added")]
    ParticipantAdded { user_id: Uuid, name: String, email: String, permission: Permission },
    #[serde(rename = "participant.changed")]
    ParticipantChanged { user_id: Uuid, permission: Permission },
    /// Access revoked: the edge ends this person's live subscriptions with `access_revoked`.
    #[serde(rename = "participant.removed")]
    ParticipantRemoved { user_id: Uuid },
    /// The owner shared the conversation with a team, or gave the team another permission. Each member whose own
    /// permission changed by it gets their `participant.*` event too (after this one).
    #[serde(rename = "team_share.set")]
    TeamShareSet { team_id: Uuid, name: String, permission: Permission },
    /// The owner stopped sharing with a team; members who lost access get `participant.removed` after it.
    #[serde(rename = "team_share.removed")]
    TeamShareRemoved { team_id: Uuid },
    /// The owner deleted the conversation: every subscription ends.
    #[serde(rename = "conversation.deleted")]
    ConversationDeleted {},
}

impl Event {
    /// The `type` tag, e.g. `"response.delta"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ConversationCreated { .. } => "conversation.created",
            Event::MessageCreated { .. } => "message.created",
            Event::ResponseRequested { .. } => "response.requested",
            Event::ResponseStarted { .. } => "response.started",
            Event::ResponseDelta { .. } => "response.delta",
            Event::ResponseCompleted { .. } => "response.completed",
            Event::ResponseFailed { .. } => "response.failed",
            Event::ResponseStopped { .. } => "response.stopped",
            Event::ResponseDelayed { .. } => "response.delayed",
            Event::SettingsChanged { .. } => "settings.changed",
            Event::ConversationRenamed { .. } => "conversation.renamed",
            Event::AttachmentAdded { .. } => "attachment.added",
            Event::ParticipantAdded { .. } => "participant.added",
            Event::ParticipantChanged { .. } => "participant.changed",
            Event::ParticipantRemoved { .. } => "participant.removed",
            Event::TeamShareSet { .. } => "team_share.set",
            Event::TeamShareRemoved { .. } => "team_share.removed",
            Event::ConversationDeleted {} => "conversation.deleted",
        }
    }

    pub fn is_delta(&self) -> bool {
        matches!(self, Event::ResponseDelta { .. })
    }

    /// `response.completed`, `response.failed` or `response.stopped`.
    pub fn is_response_end(&self) -> bool {
        matches!(self, Event::ResponseCompleted { .. } | Event::ResponseFailed { .. } | Event::ResponseStopped { .. })
    }

    /// `message.created` (that is not a copy) or `response.requested`: an answer was asked for.
    pub fn asks_for_response(&self) -> bool {
        matches!(self, Event::MessageCreated { copied_from: None, .. } | Event::ResponseRequested { .. })
    }

    /// The AI response this event is about: the `response.*` events, and `message.created` (the response it
    /// asked for).
    pub fn response_id(&self) -> Option<Uuid> {
        match self {
            Event::MessageCreated { response_id, .. }
            | Event::ResponseRequested { response_id, .. }
            | Event::ResponseStarted { response_id, .. }
            | Event::ResponseDelta { response_id, .. }
            | Event::ResponseCompleted { response_id, .. }
            | Event::ResponseFailed { response_id, .. }
            | Event::ResponseStopped { response_id, .. }
            | Event::ResponseDelayed { response_id, .. } => Some(*response_id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_flat_with_type_tag() {
        let conv = Uuid::new_v4();
        let e = Envelope::new(
            conv,
            None,
            Event::ResponseDelta {
                response_id: Uuid::nil(),
                attempt: 1,
                index: 3,
                text: "hi".into(),
                from_index: None,
            },
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "response.delta");
        assert_eq!(json["index"], 3);
        assert_eq!(json["conversation_id"], conv.to_string());
        assert!(e.subject().ends_with(".delta"));
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn non_delta_events_go_to_event_subject() {
        let e = Envelope::new(Uuid::new_v4(), None, Event::ConversationDeleted {});
        assert!(e.subject().ends_with(".event"));
        assert_eq!(serde_json::to_value(&e).unwrap()["type"], "conversation.deleted");
    }
}
