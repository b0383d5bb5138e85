//! State changes while NATS is down: stored and answered at once, published when NATS returns
//! (`docs/delivery.md`). The e2e suite checks the same from a socket's side (`e2e/tests/e2e/faults.rs`).

use crate::helpers::*;
use rh_protocol::{Envelope, Event, subjects};
use serde_json::json;

#[tokio::test]
async fn a_change_while_nats_is_down_answers_without_its_seq_and_is_published_when_nats_returns() {
    let mut app = spawn_app().await;
    let team = team(&app).await;
    let conv = app.api.create_conversation(&team.ada, "Before").await.unwrap();

    app.nats.stop().await;
    let (s, v) =
        app.api.as_user(&team.ada).patch(&format!("/conversations/{conv}"), json!({"title": "During"})).await.unwrap();
    assert_eq!(
        (s.as_u16(), &v["title"], &v["seq"]),
        (200, &json!("During"), &json!(null)),
        "stored, seq not known: {v}"
    );
    let (s, v) = app.api.as_user(&team.ada).get(&format!("/conversations/{conv}")).await.unwrap();
    assert_eq!((s.as_u16(), &v["title"]), (200, &json!("During")), "the api reads the new title at once");
    // A conversation created now is stored, but takes no message until its conversation.created is out.
    let created = app.api.create_conversation(&team.ada, "Offline").await.unwrap();
    let (s, v) = app
        .api
        .as_user(&team.ada)
        .post(&format!("/conversations/{created}/messages"), json!({"text": "hello"}))
        .await
        .unwrap();
    assert_error(s, &v, 503, "unavailable");

    app.nats.restart().await.unwrap();
    outbox_drained(&app).await;
    let js = app.nats.jetstream().await.unwrap();
    let stream = js.get_stream(subjects::STREAM_CONV).await.unwrap();
    let last = stream.get_last_raw_message_by_subject(&subjects::conv_event(conv)).await.unwrap();
    let envelope: Envelope = serde_json::from_slice(&last.payload).unwrap();
    assert!(
        matches!(envelope.event, Event::ConversationRenamed { ref title, .. } if title == "During"),
        "{envelope:?}"
    );
    let (s, v) = app
        .api
        .as_user(&team.ada)
        .post(&format!("/conversations/{created}/messages"), json!({"text": "hello"}))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 202, "the new conversation takes messages once it is announced: {v}");
}
