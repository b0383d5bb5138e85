//! The history rule of `GET /conversations/{id}`: `seq` = least(applied_seq, first streaming seq − 1), messages =
//! rows final at or before `seq`. The transcript is written by the audit writer's own code (`rh_store::transcript`)
//! from the real stream; the worker's events are published as a worker would.

use crate::helpers::*;
use rh_protocol::{Envelope, Event};
use serde_json::Value;

async fn publish(app: &App, conv: uuid::Uuid, event: Event) -> u64 {
    rh_bus::publish_event_acked(&app.js, &Envelope::new(conv, None, event)).await.unwrap()
}

fn ids(v: &Value) -> Vec<String> {
    v["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn history_covers_exactly_the_stream_prefix_up_to_seq() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "History").await;

    let sent = app.api.send_message(&team.ben, conv, "first question").await.unwrap();
    let message_id: uuid::Uuid = sent["message_id"].as_str().unwrap().parse().unwrap();
    let response_id: uuid::Uuid = sent["response_id"].as_str().unwrap().parse().unwrap();
    let message_seq = sent["seq"].as_u64().unwrap();

    // Before the audit writer caught up, history is empty and covers nothing of the message.
    let v = app.api.conversation(&team.cy, conv).await.unwrap();
    assert!(v["seq"].as_u64().unwrap() < message_seq);
    assert!(ids(&v).is_empty());

    // A response is streaming: history stops just before it starts.
    let started =
        publish(&app, conv, Event::ResponseStarted { response_id, message_id, model: "sim-1".into(), attempt: 1 })
            .await;
    publish(&app, conv, Event::ResponseDelta { response_id, attempt: 1, index: 0, text: "Hel".into() }).await;
    apply_transcript(&app, conv).await;
    let v = app.api.conversation(&team.cy, conv).await.unwrap();
    assert_eq!(v["seq"].as_u64().unwrap(), started - 1);
    assert_eq!(ids(&v), [message_id.to_string()]);
    let m = &v["messages"][0];
    assert_eq!(
        (m["role"].as_str(), m["author_name"].as_str(), m["text"].as_str()),
        (Some("user"), Some("Ben Okafor"), Some("first question"))
    );
    assert_eq!(m["seq"].as_u64(), Some(message_seq));
    let grant: rh_protocol::rpc::AccessGrant = rh_bus::request(
        &app.nc,
        rh_protocol::subjects::API_ACCESS,
        &rh_protocol::rpc::AccessRequest { user_id: team.cy.user_id, conversation_id: conv },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(grant.history_seq, started - 1, "the socket grant agrees with HTTP history");

    // Completed: history covers the response too.
    let done = publish(
        &app,
        conv,
        Event::ResponseCompleted { response_id, attempt: 1, model: "sim-1".into(), text: "Hello".into() },
    )
    .await;
    apply_transcript(&app, conv).await;
    let v = app.api.conversation(&team.ada, conv).await.unwrap();
    assert_eq!(v["seq"].as_u64().unwrap(), done);
    assert_eq!(ids(&v), [message_id.to_string(), response_id.to_string()]);
    let r = &v["messages"][1];
    assert_eq!(
        (r["role"].as_str(), r["status"].as_str(), r["text"].as_str()),
        (Some("assistant"), Some("complete"), Some("Hello"))
    );
    assert_eq!(r["reply_to"], message_id.to_string());

    // The next job's context carries the transcript.
    app.api.send_message(&team.ben, conv, "second").await.unwrap();
    let stream = app.js.get_stream(rh_protocol::subjects::STREAM_JOBS).await.unwrap();
    let last = stream.get_last_raw_message_by_subject(rh_protocol::subjects::JOBS_GENERATE).await.unwrap();
    let job: rh_protocol::rpc::GenerateJob = serde_json::from_slice(&last.payload).unwrap();
    let context: Vec<_> = job.messages.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect();
    assert_eq!(context, [("user", "first question"), ("assistant", "Hello"), ("user", "second")]);
}
