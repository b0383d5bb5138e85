//! What an event's `audit_log` row records: `detail` (who and what; never message or response text, nor the
//! system prompt) and the actor when the envelope does not name one.

use super::FAILURE_REASON_CHARS;
use rh_protocol::Event;
use serde_json::{Value, json};
use uuid::Uuid;

/// The `audit_log.detail` of an event, `None` for events that are not audited (`response.started`, deltas).
/// Never contains message or response text.
pub(super) fn audit_detail(event: &Event) -> Option<Value> {
    Some(match event {
        Event::ConversationCreated { owner_id, title, settings } => json!({
            "owner_id": owner_id,
            "title_chars": title.chars().count(),
            "model": settings.model,
            "temperature": settings.temperature,
            "system_prompt_set": settings.system_prompt.as_deref().is_some_and(|s| !s.is_empty()),
        }),
        Event::MessageCreated { message_id, author_id, text, response_id, copied_from, edit_of, .. } => {
            let mut detail = json!({
                "message_id": message_id,
                "response_id": response_id,
                "author_id": author_id,
                "chars": text.chars().count(),
            });
            if let (Some(from), Some(fields)) = (copied_from, detail.as_object_mut()) {
                fields.insert("copied_from".into(), json!(from));
            }
            if let (Some(edited), Some(fields)) = (edit_of, detail.as_object_mut()) {
                fields.insert("edit_of".into(), json!(edited));
            }
            detail
        }
        Event::ResponseRequested { response_id, message_id, requested_by, .. } => json!({
            "response_id": response_id,
            "message_id": message_id,
            "requested_by": requested_by,
        }),
        Event::ResponseStarted { .. } | Event::ResponseDelta { .. } | Event::ResponseDelayed { .. } => return None,
        Event::ResponseCompleted { response_id, attempt, model, text } => json!({
            "response_id": response_id,
            "attempt": attempt,
            "status": "complete",
            "model": model,
            "chars": text.chars().count(),
        }),
        Event::ResponseFailed { response_id, attempt, error, text } => json!({
            "response_id": response_id,
            "attempt": attempt,
            "status": "failed",
            "error": error.chars().take(FAILURE_REASON_CHARS).collect::<String>(),
            "chars": text.chars().count(),
        }),
        Event::ResponseStopped { response_id, attempt, text, stopped_by } => json!({
            "response_id": response_id,
            "attempt": attempt,
            "status": "stopped",
            "stopped_by": stopped_by,
            "chars": text.chars().count(),
        }),
        Event::SettingsChanged { changed_by, changed, settings, .. } => json!({
            "changed_by": changed_by,
            "changed": changed,
            "model": settings.model,
            "temperature": settings.temperature,
            "system_prompt_set": settings.system_prompt.as_deref().is_some_and(|s| !s.is_empty()),
        }),
        Event::ConversationRenamed { renamed_by, title, .. } => json!({
            "renamed_by": renamed_by,
            "title_chars": title.chars().count(),
        }),
        Event::AttachmentAdded { attachment_id, filename, content_type, size, uploaded_by } => json!({
            "attachment_id": attachment_id,
            "filename": filename,
            "content_type": content_type,
            "size": size,
            "uploaded_by": uploaded_by,
        }),
        Event::ParticipantAdded { user_id, permission, .. } => json!({
            "user_id": user_id,
            "permission": permission,
        }),
        Event::ParticipantChanged { user_id, permission } => json!({
            "user_id": user_id,
            "permission": permission,
        }),
        Event::ParticipantRemoved { user_id } => json!({ "user_id": user_id }),
        Event::TeamShareSet { team_id, permission, .. } => json!({ "team_id": team_id, "permission": permission }),
        Event::TeamShareRemoved { team_id } => json!({ "team_id": team_id }),
        Event::ConversationDeleted {} => json!({}),
    })
}

/// Who did it, when the envelope does not say (`actor` is `None` for the AI and the system).
pub(super) fn actor_of(event: &Event) -> Option<Uuid> {
    match event {
        Event::ConversationCreated { owner_id, .. } => Some(*owner_id),
        Event::MessageCreated { author_id, .. } => Some(*author_id),
        Event::ResponseRequested { requested_by, .. } => Some(*requested_by),
        Event::ResponseStopped { stopped_by, .. } => *stopped_by,
        Event::SettingsChanged { changed_by, .. } => Some(*changed_by),
        Event::ConversationRenamed { renamed_by, .. } => Some(*renamed_by),
        Event::AttachmentAdded { uploaded_by, .. } => Some(*uploaded_by),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rh_protocol::Permission;

    #[test]
    fn audit_detail_never_holds_text() {
        let secret = "the secret plan";
        let events = [
            Event::MessageCreated {
                message_id: Uuid::new_v4(),
                author_id: Uuid::new_v4(),
                author_name: "Ada".into(),
                text: secret.into(),
                client_msg_id: None,
                response_id: Uuid::new_v4(),
                copied_from: None,
                edit_of: None,
            },
            Event::ResponseCompleted {
                response_id: Uuid::new_v4(),
                attempt: 1,
                model: "sim".into(),
                text: secret.into(),
            },
            Event::ResponseStopped { response_id: Uuid::new_v4(), attempt: 1, text: secret.into(), stopped_by: None },
            Event::ResponseFailed {
                response_id: Uuid::new_v4(),
                attempt: 1,
                error: "provider".into(),
                text: secret.into(),
            },
            Event::SettingsChanged {
                changed_by: Uuid::new_v4(),
                changed_by_name: "Ada".into(),
                changed: vec!["system_prompt".into()],
                settings: rh_protocol::event::Settings {
                    model: "sim".into(),
                    temperature: None,
                    system_prompt: Some(secret.into()),
                },
            },
            Event::ConversationRenamed {
                renamed_by: Uuid::new_v4(),
                renamed_by_name: "Ada".into(),
                title: secret.into(),
                from_first_message: false,
            },
        ];
        for event in events {
            let detail = audit_detail(&event).unwrap().to_string();
            assert!(!detail.contains("secret"), "{detail}");
        }
        let added = Event::ParticipantAdded {
            user_id: Uuid::nil(),
            name: "Ben".into(),
            email: "ben@acme.test".into(),
            permission: Permission::View,
        };
        assert_eq!(audit_detail(&added).unwrap()["permission"], "view");
    }
}
