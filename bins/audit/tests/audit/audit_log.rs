//! The audit log: who did what, with the event's id and actor, and never a message's or response's content.

use super::*;
use rh_protocol::Permission;
use rh_protocol::event::Settings;

#[tokio::test]
async fn audit_log_records_who_did_what_and_never_the_content() {
    let f = Fixture::start().await;
    let ben = Uuid::new_v4();
    f.pg.execute(
        "INSERT INTO users (id, org_id, email, name, password_hash, role) VALUES ($1, $2, $3, 'Ben', 'x', 'member')",
        &[&ben, &f.org, &format!("ben-{ben}@acme.test")],
    )
    .await
    .unwrap();
    let secret = "TOP-SECRET-PLAN";
    let settings = |model: &str| Settings {
        model: model.into(),
        temperature: Some(0.2),
        system_prompt: Some(format!("you know the {secret}")),
    };
    let attachment_id = Uuid::new_v4();
    let (message_id, response_id, created) = message_created(f.user, &format!("tell me the {secret}"));
    let events: Vec<(Option<Uuid>, Event)> = vec![
        (
            Some(f.user),
            Event::ConversationCreated { owner_id: f.user, title: "Plans".into(), settings: settings("sim-1") },
        ),
        (
            Some(f.user),
            Event::ParticipantAdded {
                user_id: ben,
                name: "Ben".into(),
                email: "ben@acme.test".into(),
                permission: Permission::View,
            },
        ),
        (Some(f.user), Event::ParticipantChanged { user_id: ben, permission: Permission::Respond }),
        (
            Some(f.user),
            Event::SettingsChanged {
                changed_by: f.user,
                changed_by_name: "Ada Admin".into(),
                changed: vec!["model".into(), "system_prompt".into()],
                settings: settings("sim-2"),
            },
        ),
        (
            Some(f.user),
            Event::AttachmentAdded {
                attachment_id,
                filename: "plan.pdf".into(),
                content_type: "application/pdf".into(),
                size: 1234,
                uploaded_by: f.user,
            },
        ),
        (Some(f.user), created),
        (None, Event::ResponseStarted { response_id, message_id, model: "sim-2".into(), attempt: 1 }),
        (
            None,
            Event::ResponseCompleted {
                response_id,
                attempt: 1,
                model: "sim-2".into(),
                text: format!("the {secret} is safe"),
            },
        ),
        (Some(f.user), Event::ParticipantRemoved { user_id: ben }),
        (Some(f.user), Event::ConversationDeleted {}),
    ];
    let mut last = 0;
    let mut event_ids = Vec::new();
    for (actor, event) in events {
        let (env, seq) = f.publish(actor, event).await;
        event_ids.push(env.event_id);
        last = seq;
    }
    f.wait_applied(last).await;

    let rows =
        f.pg.query(
            "SELECT id, org_id, actor_id, action, detail::text, seq FROM audit_log \
             WHERE conversation_id = $1 ORDER BY seq",
            &[&f.conv],
        )
        .await
        .unwrap();
    let actions: Vec<String> = rows.iter().map(|r| r.get(3)).collect();
    assert_eq!(
        actions,
        [
            "conversation.created",
            "participant.added",
            "participant.changed",
            "settings.changed",
            "attachment.added",
            "message.created",
            "response.completed",
            "participant.removed",
            "conversation.deleted"
        ]
    );
    for row in &rows {
        let detail: String = row.get(4);
        assert_eq!(row.get::<_, Uuid>(1), f.org);
        assert!(!detail.contains(secret), "audit detail leaks content: {detail}");
        assert!(event_ids.contains(&row.get::<_, Uuid>(0)), "audit id is the event id");
    }
    let detail = |i: usize| -> serde_json::Value { serde_json::from_str(&rows[i].get::<_, String>(4)).unwrap() };
    assert_eq!(rows[1].get::<_, Option<Uuid>>(2), Some(f.user), "who shared");
    assert_eq!(detail(1)["user_id"], ben.to_string());
    assert_eq!(detail(1)["permission"], "view");
    assert_eq!(detail(2)["permission"], "respond");
    assert_eq!(detail(3)["model"], "sim-2");
    assert_eq!(detail(3)["changed"], serde_json::json!(["model", "system_prompt"]));
    assert_eq!(detail(4)["filename"], "plan.pdf");
    assert_eq!(detail(4)["size"], 1234);
    assert_eq!(detail(5)["message_id"], message_id.to_string());
    assert_eq!(detail(5)["chars"], format!("tell me the {secret}").chars().count());
    assert_eq!(detail(6)["status"], "complete");
    assert_eq!(detail(7)["user_id"], ben.to_string());
    assert_eq!(rows[7].get::<_, Option<Uuid>>(2), Some(f.user), "who revoked");
    // The transcript itself keeps the text (it is the system of record); only the audit log must not.
    assert_eq!(f.message(response_id).await.unwrap().text, format!("the {secret} is safe"));
}
