use crate::helpers::*;
use rh_protocol::Event;
use serde_json::json;

#[tokio::test]
async fn settings_changed_says_who_changed_what() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Tuning").await;
    let path = format!("/conversations/{conv}/settings");
    let mut cy_inbox = Inbox::open(&app.nc, team.cy.user_id).await;

    let (s, v) = app
        .api
        .as_user(&team.ben)
        .patch(&path, json!({"model": "sim-2", "temperature": 0.7, "system_prompt": "Answer in haiku."}))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
    assert_eq!(v["model"], "sim-2");
    assert_eq!(v["changed"], json!(["model", "temperature", "system_prompt"]));
    let seq = v["seq"].as_u64().unwrap();

    let events = conv_events(&app, conv).await;
    let (event_seq, env) = events.iter().find(|(_, e)| e.event.kind() == "settings.changed").unwrap();
    assert_eq!(*event_seq, seq);
    assert_eq!(env.actor, Some(team.ben.user_id));
    let Event::SettingsChanged { changed_by, changed_by_name, changed, settings } = &env.event else { unreachable!() };
    assert_eq!((*changed_by, changed_by_name.as_str()), (team.ben.user_id, "Ben Okafor"));
    assert_eq!(changed, &["model", "temperature", "system_prompt"]);
    assert_eq!(settings.model, "sim-2");
    assert!((settings.temperature.unwrap() - 0.7).abs() < 1e-6);
    assert_eq!(settings.system_prompt.as_deref(), Some("Answer in haiku."));

    // Everyone sees the new settings; a model change refreshes sidebars.
    let got = app.api.conversation(&team.cy, conv).await.unwrap();
    assert_eq!(got["model"], "sim-2");
    assert_eq!(got["system_prompt"], "Answer in haiku.");
    // (The share's `added` may still be in flight: core NATS publishes are buffered by the api's client.)
    let m = cy_inbox.next_where(|m| m.action == rh_protocol::frame::SidebarAction::Changed).await;
    assert_eq!(m.conversation.unwrap().model, "sim-2");

    // Only what changed is reported; nothing changed → no event.
    let (_, v) = app.api.as_user(&team.ada).patch(&path, json!({"model": "sim-2", "temperature": null})).await.unwrap();
    assert_eq!(v["changed"], json!(["temperature"]));
    assert_eq!(v["temperature"], json!(null));
    let count = conv_events(&app, conv).await.len();
    let (s, v) = app.api.as_user(&team.ada).patch(&path, json!({"model": "sim-2"})).await.unwrap();
    assert_eq!(s.as_u16(), 200);
    assert_eq!(v["changed"], json!([]));
    assert_eq!(conv_events(&app, conv).await.len(), count);

    // Invalid values and unknown fields are refused.
    for body in
        [json!({"temperature": 3}), json!({"model": ""}), json!({"modle": "sim-2"}), json!({"temperature": "hot"})]
    {
        let (s, v) = app.api.as_user(&team.ada).patch(&path, body).await.unwrap();
        assert_error(s, &v, 400, "bad_request");
    }
}
