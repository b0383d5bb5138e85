//! Edit the last message and regenerate its answer (issue 14): who may, when, and what the next answer's context
//! is (only current versions). No worker runs here: the answers' ends are published as a worker would, and the
//! transcript is written with the audit writer's own code.

use crate::helpers::*;
use async_nats::jetstream;
use rh_protocol::rpc::{GenerateJob, MessageAccepted, RegenerateRpc};
use rh_protocol::{Envelope, Event, subjects};
use serde_json::{Value, json};
use uuid::Uuid;

/// The newest generation job in `RH_JOBS`.
async fn last_job(js: &jetstream::Context) -> GenerateJob {
    let mut stream = js.get_stream(subjects::STREAM_JOBS).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    serde_json::from_slice(&stream.get_raw_message(last).await.unwrap().payload).unwrap()
}

/// Ends answer `response_id` with `text`, as a worker would, and writes the transcript.
async fn answer(app: &App, conv: Uuid, response_id: Uuid, text: &str) {
    let event = Event::ResponseCompleted { response_id, attempt: 1, model: "sim-1".into(), text: text.into() };
    rh_bus::publish_event_acked(&app.js, &Envelope::new(conv, None, event)).await.unwrap();
    apply_transcript(app, conv).await;
}

fn ids(v: &Value) -> (Uuid, Uuid) {
    let id = |k: &str| v[k].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{k} in {v}"));
    (id("message_id"), id("response_id"))
}

fn context(job: &GenerateJob) -> Vec<&str> {
    job.messages.iter().map(|m| m.content.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_answer_sees_only_the_current_versions() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Versions").await;
    let ben = app.api.as_user(&team.ben);
    let path = |p: &str| format!("/conversations/{conv}/{p}");

    let (s, v) = ben.post(&path("messages"), json!({"text": "Q1"})).await.unwrap();
    assert_eq!(s.as_u16(), 202, "{v}");
    let (q1, a1) = ids(&v);
    answer(&app, conv, a1, "A1").await;

    // Regenerate (Ada, the owner, may too): the job answers Q1 again without A1.
    let (s, v) = app.api.as_user(&team.ada).post(&path("regenerate"), json!({"message_id": q1})).await.unwrap();
    assert_eq!(s.as_u16(), 202, "{v}");
    let (answered, a2) = ids(&v);
    assert_eq!(answered, q1);
    let job = last_job(&app.js).await;
    assert_eq!((job.response_id, job.message_id, job.requested_by), (a2, q1, team.ada.user_id));
    assert_eq!(context(&job), ["Q1"]);
    let (seq, requested) = conv_events(&app, conv).await.into_iter().last().unwrap();
    assert_eq!(seq, v["seq"].as_u64().unwrap());
    assert_eq!(
        requested.event,
        Event::ResponseRequested {
            response_id: a2,
            message_id: q1,
            requested_by: team.ada.user_id,
            requested_by_name: requested_name(&requested),
        }
    );
    // While it is being generated, the last turn stays as it is.
    apply_transcript(&app, conv).await;
    let (s, v) = ben.post(&path("regenerate"), json!({})).await.unwrap();
    assert_error(s, &v, 409, "response_in_progress");
    let (s, v) = ben.post(&path("messages"), json!({"text": "Q1 again", "edit_of": q1})).await.unwrap();
    assert_error(s, &v, 409, "response_in_progress");
    answer(&app, conv, a2, "A2").await;

    // The next message's context has A2, not A1.
    let (_, v) = ben.post(&path("messages"), json!({"text": "Q2"})).await.unwrap();
    let (q2, a3) = ids(&v);
    assert_eq!(context(&last_job(&app.js).await), ["Q1", "A2", "Q2"]);
    answer(&app, conv, a3, "A3").await;

    // Only Q2 is editable now, and only by Ben; Q1 is not the last any more.
    let (s, v) = ben.post(&path("messages"), json!({"text": "Q1 better", "edit_of": q1})).await.unwrap();
    assert_error(s, &v, 409, "conflict");
    let (s, v) = ben.post(&path("regenerate"), json!({"message_id": q1})).await.unwrap();
    assert_error(s, &v, 409, "conflict");
    let (s, v) =
        app.api.as_user(&team.ada).post(&path("messages"), json!({"text": "mine now", "edit_of": q2})).await.unwrap();
    assert_error(s, &v, 403, "forbidden");
    let (s, v) = ben.post(&path("messages"), json!({"text": "  ", "edit_of": q2})).await.unwrap();
    assert_error(s, &v, 400, "bad_request");

    // Ben edits Q2: its answer has the edited text last, after the same earlier turns.
    let (s, v) = ben.post(&path("messages"), json!({"text": "Q2 better", "edit_of": q2})).await.unwrap();
    assert_eq!(s.as_u16(), 202, "{v}");
    let (q2b, a4) = ids(&v);
    assert_eq!(context(&last_job(&app.js).await), ["Q1", "A2", "Q2 better"]);
    answer(&app, conv, a4, "A4").await;
    let (_, v) = ben.post(&path("messages"), json!({"text": "Q3"})).await.unwrap();
    let (q3, a5) = ids(&v);
    assert_eq!(context(&last_job(&app.js).await), ["Q1", "A2", "Q2 better", "A4", "Q3"]);
    answer(&app, conv, a5, "A5").await;

    // History keeps every version, in stream order, with what links them.
    let (_, v) = app.api.as_user(&team.cy).get(&format!("/conversations/{conv}")).await.unwrap();
    let rows: Vec<(&str, Option<&str>, Option<&str>)> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["text"].as_str().unwrap(), m["reply_to"].as_str(), m["edit_of"].as_str()))
        .collect();
    let (q1, q2, q2b, q3) = (q1.to_string(), q2.to_string(), q2b.to_string(), q3.to_string());
    assert_eq!(
        rows,
        [
            ("Q1", None, None),
            ("A1", Some(q1.as_str()), None),
            ("A2", Some(q1.as_str()), None),
            ("Q2", None, None),
            ("A3", Some(q2.as_str()), None),
            ("Q2 better", None, Some(q2.as_str())),
            ("A4", Some(q2b.as_str()), None),
            ("Q3", None, None),
            ("A5", Some(q3.as_str()), None),
        ]
    );
    // The audit log has both requests, and the edit names what it replaced (never any text).
    let (_, log) = app.api.as_user(&team.ada).get(&format!("/admin/audit?conversation_id={conv}")).await.unwrap();
    let entries = log["entries"].as_array().cloned().unwrap_or_default();
    let actions: Vec<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "response.requested").count(), 1, "{log}");
    assert_eq!(actions.iter().filter(|a| **a == "response.completed").count(), 5, "{log}");
    assert!(entries.iter().any(|e| e["detail"]["edit_of"] == q2.as_str()), "{log}");
    assert!(!log.to_string().contains("Q2 better"), "no text in the audit log");
}

fn requested_name(env: &Envelope) -> String {
    match &env.event {
        Event::ResponseRequested { requested_by_name, .. } => requested_by_name.clone(),
        other => panic!("not a response.requested: {other:?}"),
    }
}

/// The socket path (`rh.api.regenerate`, `rh.api.send_message` with `edit_of`) refuses like REST: View Only
/// `forbidden`, another org's person `not_found`; nothing is published for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn those_who_may_not_respond_cannot_regenerate_or_edit() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Refusals").await;
    let (_, v) = app
        .api
        .as_user(&team.ben)
        .post(&format!("/conversations/{conv}/messages"), json!({"text": "Q"}))
        .await
        .unwrap();
    let (q, a) = ids(&v);
    answer(&app, conv, a, "A").await;
    let stranger = outsider(&app).await;
    let before = conv_events(&app, conv).await.len();

    for (who, code) in [(&team.cy, "forbidden"), (&stranger, "not_found")] {
        let req = RegenerateRpc { user_id: who.user_id, conversation_id: conv, message_id: Some(q) };
        let e = rh_bus::request::<_, MessageAccepted>(&app.nc, subjects::API_REGENERATE, &req, WAIT).await.unwrap_err();
        assert_eq!(e.rejection.map(|r| r.code.as_str()), Some(code));
        let (s, v) = app.api.as_user(who).post(&format!("/conversations/{conv}/regenerate"), json!({})).await.unwrap();
        assert_error(s, &v, if code == "forbidden" { 403 } else { 404 }, code);
        let (s, v) = app
            .api
            .as_user(who)
            .post(&format!("/conversations/{conv}/messages"), json!({"text": "x", "edit_of": q}))
            .await
            .unwrap();
        assert_error(s, &v, if code == "forbidden" { 403 } else { 404 }, code);
    }
    // A body that is not a regenerate request is a 400, after access.
    let (s, v) = app
        .api
        .as_user(&team.ben)
        .post(&format!("/conversations/{conv}/regenerate"), json!({"nope": 1}))
        .await
        .unwrap();
    assert_error(s, &v, 400, "bad_request");
    assert_eq!(conv_events(&app, conv).await.len(), before, "nothing published for a refusal");
}
