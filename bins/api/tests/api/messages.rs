use crate::helpers::*;
use async_nats::jetstream;
use futures::StreamExt;
use rh_protocol::rpc::{GenerateJob, ResponseClaim, StopControl};
use rh_protocol::{Event, subjects};
use serde_json::json;

/// The generation jobs waiting in the work-queue stream `RH_JOBS` (read by sequence: nothing is consumed).
async fn jobs(js: &jetstream::Context) -> Vec<GenerateJob> {
    let mut stream = js.get_stream(subjects::STREAM_JOBS).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut out = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            out.push(serde_json::from_slice(&m.payload).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn a_message_is_published_and_queued_for_the_workers() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Chat").await;
    app.api
        .as_user(&team.ada)
        .patch(&format!("/conversations/{conv}/settings"), json!({"system_prompt": "Be brief.", "temperature": 0.2}))
        .await
        .unwrap();

    let (s, v) = app
        .api
        .as_user(&team.ben)
        .post(
            &format!("/conversations/{conv}/messages"),
            json!({"text": "/sim tokens=3\nWhat next?", "client_msg_id": "c-1"}),
        )
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 202, "{v}");
    let message_id: uuid::Uuid = v["message_id"].as_str().unwrap().parse().unwrap();
    let response_id: uuid::Uuid = v["response_id"].as_str().unwrap().parse().unwrap();
    let seq = v["seq"].as_u64().unwrap();

    let events = conv_events(&app, conv).await;
    let (event_seq, env) = events.iter().find(|(_, e)| e.event.kind() == "message.created").unwrap();
    assert_eq!(*event_seq, seq, "the reply's seq is the event's stream position");
    assert_eq!(env.actor, Some(team.ben.user_id));
    assert_eq!(
        env.event,
        Event::MessageCreated {
            message_id,
            author_id: team.ben.user_id,
            author_name: "Ben Okafor".into(),
            text: "/sim tokens=3\nWhat next?".into(),
            client_msg_id: Some("c-1".into()),
            response_id,
            copied_from: None,
            edit_of: None,
        }
    );

    let jobs = jobs(&app.js).await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(
        (job.conversation_id, job.response_id, job.message_id, job.requested_by),
        (conv, response_id, message_id, team.ben.user_id)
    );
    assert_eq!(job.model, "sim-1");
    assert!((job.temperature.unwrap() - 0.2).abs() < 1e-6);
    let roles: Vec<_> = job.messages.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect();
    assert_eq!(roles, [("system", "Be brief."), ("user", "/sim tokens=3\nWhat next?")]);

    // Blank or oversized text is refused before anything is published.
    for text in [json!(""), json!("   "), json!("x".repeat(32_001)), json!(5)] {
        let (s, v) = app
            .api
            .as_user(&team.ben)
            .post(&format!("/conversations/{conv}/messages"), json!({"text": text}))
            .await
            .unwrap();
        assert_error(s, &v, 400, "bad_request");
    }
    assert_eq!(conv_events(&app, conv).await.len(), events.len());
}

#[tokio::test]
async fn stop_is_recorded_and_sent_to_the_worker() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Stoppable").await;
    let mut control = app.nc.subscribe(subjects::stop_control(conv)).await.unwrap();
    barrier(&app.nc).await;
    let before = rh_protocol::now_us();

    let (s, _) = app.api.as_user(&team.ben).post(&format!("/conversations/{conv}/stop"), json!({})).await.unwrap();
    assert_eq!(s.as_u16(), 202);
    let m = tokio::time::timeout(WAIT, control.next()).await.unwrap().unwrap();
    let stop: StopControl = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!((stop.conversation_id, stop.requested_by), (conv, team.ben.user_id));
    assert!(stop.at_us >= before);

    let kv = app.js.get_key_value(subjects::KV_STOPS).await.unwrap();
    let stored = kv.get(conv.to_string()).await.unwrap().expect("a stop time in rh_stops");
    let at: i64 = std::str::from_utf8(&stored).unwrap().parse().unwrap();
    assert_eq!(at, stop.at_us);
}

/// The claim of one answer, as the api and the workers read it in KV `rh_stops`.
async fn claim(app: &App, conv: uuid::Uuid, response: uuid::Uuid) -> Option<ResponseClaim> {
    let kv = app.js.get_key_value(subjects::KV_STOPS).await.unwrap();
    let stored = rh_bus::claims::read(&kv, &subjects::response_claim(conv, response)).await.unwrap();
    stored.map(|s| s.claim)
}

/// No worker runs in these tests: each answer stays queued until someone stops it, and then the api ends it.
#[tokio::test]
async fn stopping_one_queued_answer_ends_it_and_leaves_the_others_waiting() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Two questions").await;
    let send = |who: rh_testkit::Session, text: &'static str| {
        let api = app.api.as_user(&who);
        async move {
            let (s, v) = api.post(&format!("/conversations/{conv}/messages"), json!({ "text": text })).await.unwrap();
            assert_eq!(s.as_u16(), 202, "{v}");
            v["response_id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap()
        }
    };
    let ada_answer = send(team.ada.clone(), "First?").await;
    let ben_answer = send(team.ben.clone(), "Second?").await;
    assert!(matches!(claim(&app, conv, ada_answer).await, Some(ResponseClaim::Queued { .. })));

    // Cy (View only) may not stop anything; a broken body is a 400; neither changes the claim.
    let stop = format!("/conversations/{conv}/stop");
    let (s, v) = app.api.as_user(&team.cy).post(&stop, json!({ "response_id": ada_answer })).await.unwrap();
    assert_error(s, &v, 403, "forbidden");
    let (s, v) = app.api.as_user(&team.ben).post(&stop, json!({ "response_id": "not-an-id" })).await.unwrap();
    assert_error(s, &v, 400, "bad_request");
    assert!(matches!(claim(&app, conv, ada_answer).await, Some(ResponseClaim::Queued { .. })));

    // Ben stops Ada's answer (twice: the second changes nothing): ended once, by the api, stopped by Ben.
    for _ in 0..2 {
        let (s, v) = app.api.as_user(&team.ben).post(&stop, json!({ "response_id": ada_answer })).await.unwrap();
        assert_eq!(s.as_u16(), 202, "{v}");
    }
    let ends: Vec<Event> =
        conv_events(&app, conv).await.into_iter().map(|(_, e)| e.event).filter(|e| e.is_response_end()).collect();
    assert_eq!(
        ends,
        [Event::ResponseStopped {
            response_id: ada_answer,
            attempt: 0,
            text: String::new(),
            stopped_by: Some(team.ben.user_id)
        }]
    );
    assert_eq!(claim(&app, conv, ada_answer).await, Some(ResponseClaim::Stopped { by: team.ben.user_id }));
    assert!(matches!(claim(&app, conv, ben_answer).await, Some(ResponseClaim::Queued { .. })), "Ben's still waits");

    // The transcript shows it stopped, as viewers saw it.
    apply_transcript(&app, conv).await;
    let (_, v) = app.api.as_user(&team.cy).get(&format!("/conversations/{conv}")).await.unwrap();
    let stored = v["messages"].as_array().unwrap().iter().find(|m| m["id"] == ada_answer.to_string()).cloned();
    assert_eq!(stored.unwrap()["status"], "stopped");
}

/// A long conversation whose transcript is larger than a NATS message: sending still works, and the job carries
/// the system prompt, the newest turns that fit and the new message — the oldest turns are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_context_is_capped_to_fit_in_a_nats_message() {
    // 41 messages from Ben (no worker ends them): over the default limits, which this test is not about.
    let app = spawn_app_with(&[("RH_LIMIT_USER_REPLIES_BURST", "0"), ("RH_LIMIT_CONVERSATION_RESPONSES", "0")]).await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Long").await;
    let settings = json!({"system_prompt": "Be brief."});
    app.api.as_user(&team.ada).patch(&format!("/conversations/{conv}/settings"), settings).await.unwrap();
    // 40 turns of 30,000 characters: 1.2 MB of transcript, more than the server's 1 MiB max payload.
    let turn = |i: usize| format!("turn {i:02} {}", "x".repeat(30_000 - 8));
    for i in 0..40 {
        app.api.send_message(&team.ben, conv, &turn(i)).await.unwrap();
    }
    apply_transcript(&app, conv).await;

    let sent = app.api.send_message(&team.ben, conv, "and now?").await.expect("accepted despite the long history");
    let job = jobs(&app.js).await.into_iter().last().unwrap();
    assert_eq!(job.response_id.to_string(), sent["response_id"].as_str().unwrap());
    let size = serde_json::to_vec(&job).unwrap().len();
    assert!(size < 1024 * 1024, "the job fits in a NATS message: {size} bytes");
    let roles: Vec<&str> = job.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!((roles[0], job.messages[0].content.as_str()), ("system", "Be brief."));
    assert_eq!(job.messages.last().unwrap().content, "and now?");
    let earlier: Vec<&str> = job.messages[1..job.messages.len() - 1].iter().map(|m| &m.content[..7]).collect();
    assert!(earlier.len() >= 20 && earlier.len() < 40, "{} turns kept", earlier.len());
    let newest: Vec<String> = (40 - earlier.len()..40).map(|i| turn(i)[..7].to_owned()).collect();
    assert_eq!(earlier, newest, "the newest turns, in order; the oldest dropped");
}

#[tokio::test]
async fn an_untitled_conversation_is_titled_from_its_first_message() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let ada = app.api.as_user(&team.ada);
    let (s, v) = ada.post("/conversations", json!({})).await.unwrap();
    assert_eq!(s.as_u16(), 201, "{v}");
    let conv = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["title"], "New conversation");
    let send = |text: &'static str| {
        let ada = app.api.as_user(&team.ada);
        let path = format!("/conversations/{conv}/messages");
        async move { ada.post(&path, json!({ "text": text })).await.unwrap() }
    };
    let (s, v) = send("/sim tokens=3\n## Plan the Q3 launch of the billing page").await;
    assert_eq!(s.as_u16(), 202, "{v}");
    let (_, v) = ada.get(&format!("/conversations/{conv}")).await.unwrap();
    assert_eq!(v["title"], "Plan the Q3 launch of the billing page");
    let renamed = conv_events(&app, conv.parse().unwrap()).await;
    assert!(renamed.iter().any(|(_, e)| e.event
        == Event::ConversationRenamed {
            renamed_by: team.ada.user_id,
            renamed_by_name: "Ada Lovelace".into(),
            title: "Plan the Q3 launch of the billing page".into(),
            from_first_message: true,
        }));
    // Only the first: a later message, or a conversation with a title of its own, keeps its title.
    send("/sim tokens=3\nSomething else entirely").await;
    let (_, v) = ada.get(&format!("/conversations/{conv}")).await.unwrap();
    assert_eq!(v["title"], "Plan the Q3 launch of the billing page");
    let named = shared_conversation(&app, &team, "Chosen title").await;
    let (s, _) = ada.post(&format!("/conversations/{named}/messages"), json!({"text": "Hello there"})).await.unwrap();
    assert_eq!(s.as_u16(), 202);
    let (_, v) = ada.get(&format!("/conversations/{named}")).await.unwrap();
    assert_eq!(v["title"], "Chosen title");
}
