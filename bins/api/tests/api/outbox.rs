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

/// Many changes at once, half through a second replica: each answers with its event's stream seq. The leading
/// replica's waiters get their seqs handed over by its relay, the other replica's read them from the table.
#[tokio::test]
async fn many_changes_at_once_on_two_replicas_each_answer_with_their_seq() {
    let app = spawn_app().await;
    let (_replica, other) = spawn_replica(&app, &[]).await;
    let team = team(&app).await;
    let mut convs = Vec::new();
    for i in 0..24 {
        convs.push(app.api.create_conversation(&team.ada, &format!("Burst {i}")).await.unwrap());
    }
    let renames = convs.iter().enumerate().map(|(i, conv)| {
        let api = if i % 2 == 0 { &app.api } else { &other };
        let ada = &team.ada;
        async move { api.as_user(ada).patch(&format!("/conversations/{conv}"), json!({"title": "Renamed"})).await }
    });
    let answers = futures::future::join_all(renames).await;
    for (conv, answer) in convs.iter().zip(answers) {
        let (s, v) = answer.unwrap();
        assert_eq!(s.as_u16(), 200, "{v}");
        let seq = v["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {v}"));
        let events = conv_events(&app, *conv).await;
        let renamed = events.iter().find(|(_, e)| matches!(e.event, Event::ConversationRenamed { .. }));
        assert_eq!(renamed.map(|(seq, _)| *seq), Some(seq), "the answer's seq is the event's: {events:?}");
    }
}
