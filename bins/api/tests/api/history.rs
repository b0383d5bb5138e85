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
    publish(
        &app,
        conv,
        Event::ResponseDelta { response_id, attempt: 1, index: 0, text: "Hel".into(), from_index: None },
    )
    .await;
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

/// The history rule as `rh_store::history` documents it, computed in Rust: the old iterative search (lower `H` to
/// just below the earliest row it cuts) checked against the definition (the largest clean position), then floored.
fn reference_history_seq(applied: i64, created: i64, rows: &[(i64, Option<i64>)]) -> i64 {
    let cuts = |h: i64| rows.iter().filter(|(s, f)| *s <= h && f.is_none_or(|f| f > h)).map(|(s, _)| *s).min();
    let mut h = applied;
    while let Some(start) = cuts(h) {
        h = start - 1;
    }
    let largest_clean = (i64::MIN / 2..=applied).rev().find(|p| cuts(*p).is_none()).unwrap();
    assert_eq!(h, largest_clean, "the search finds the largest clean position");
    h.max(created - 1).max(0)
}

/// `history::load` and `history::grants` (one SQL statement each, sharing one definition)
/// agree with the rule on many random transcripts — interleaved, nested, still streaming, finished beyond
/// `applied_seq` — and `grants` answers for each person exactly like `conversations::access`.
#[tokio::test]
async fn one_statement_history_seq_matches_the_rule_on_random_transcripts() {
    use rh_store::{conversations, history};
    use uuid::Uuid;

    let db = rh_testkit::TestDb::create().await.unwrap();
    let pg = db.connect().await.unwrap();
    let (org, owner, viewer, stranger) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    pg.execute("INSERT INTO orgs (id, name) VALUES ($1, 'Acme')", &[&org]).await.unwrap();
    for (id, name) in [(owner, "Ada"), (viewer, "Cy"), (stranger, "Dee")] {
        pg.execute(
            "INSERT INTO users (id, org_id, email, name, password_hash, role) VALUES ($1, $2, $3, $4, 'x', 'member')",
            &[&id, &org, &format!("{id}@acme.test"), &name],
        )
        .await
        .unwrap();
    }

    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move |n: i64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % n as u64) as i64
    };
    for case in 0..150 {
        let conv = Uuid::new_v4();
        let (created, applied) = (rand(8), rand(60));
        let deleted = case % 10 == 9;
        pg.execute(
            "INSERT INTO conversations (id, org_id, owner_id, title, model, created_seq, applied_seq, deleted_at) \
             VALUES ($1, $2, $3, 't', 'm', $4, $5, CASE WHEN $6 THEN now() END)",
            &[&conv, &org, &owner, &created, &applied, &deleted],
        )
        .await
        .unwrap();
        let permission = ["view", "respond"][case % 2];
        pg.execute(
            "INSERT INTO shares (conversation_id, user_id, permission, granted_by) VALUES ($1, $2, $3, $4)",
            &[&conv, &viewer, &permission, &owner],
        )
        .await
        .unwrap();
        let mut rows = Vec::new();
        for _ in 0..rand(12) {
            let seq = 1 + rand(50);
            let final_seq = match rand(4) {
                0 => None,
                1 => Some(seq),
                _ => Some(seq + rand(25)),
            };
            let id = Uuid::new_v4();
            let (role, status) = if final_seq.is_none() { ("assistant", "streaming") } else { ("user", "complete") };
            pg.execute(
                "INSERT INTO messages (id, conversation_id, role, author_id, status, seq, final_seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&id, &conv, &role, &owner, &status, &seq, &final_seq],
            )
            .await
            .unwrap();
            rows.push((id, seq, final_seq));
        }

        let spans: Vec<(i64, Option<i64>)> = rows.iter().map(|(_, s, f)| (*s, *f)).collect();
        let want = reference_history_seq(applied, created, &spans);
        let mut want_ids: Vec<(i64, Uuid)> =
            rows.iter().filter(|(_, _, f)| f.is_some_and(|f| f <= want)).map(|(id, s, _)| (*s, *id)).collect();
        want_ids.sort();
        let want_ids: Vec<Uuid> = want_ids.into_iter().map(|(_, id)| id).collect();

        let what = format!("case {case}: applied {applied}, created {created}, rows {spans:?}");
        let loaded = history::load(db.db(), conv).await.unwrap();
        assert_eq!(loaded.seq, want, "load: {what}");
        assert_eq!(loaded.messages.iter().map(|m| m.id).collect::<Vec<_>>(), want_ids, "load rows: {what}");
        assert!(loaded.messages.iter().all(|m| m.author_name.as_deref() == Some("Ada")), "{what}");
        // The three people asked at once, as a burst of subscribes is answered.
        let grants = history::grants(db.db(), conv, &[owner, viewer, stranger]).await.unwrap();
        for user in [owner, viewer, stranger] {
            let access = conversations::access(db.db(), conv, user).await.unwrap().map(|(_, p)| p);
            let grant = grants.iter().find(|(u, _, _)| *u == user);
            assert_eq!(grant.map(|(_, p, _)| *p), access, "grant permission: {what}");
            if let Some((_, _, seq)) = grant {
                assert_eq!(*seq, want, "grant history_seq: {what}");
            }
        }
    }
    // Unknown conversation: no grant, history_seq 0, empty history.
    let unknown = Uuid::new_v4();
    assert_eq!(history::grants(db.db(), unknown, &[owner]).await.unwrap(), vec![]);
    assert_eq!(
        history::load(db.db(), unknown).await.unwrap(),
        history::History { seq: 0, messages: vec![], has_more: false }
    );
}

/// History in pages: the newest page, then older ones with `before`, together are the whole history in order,
/// each turn once; and the newest page plus the stream after its `seq` misses nothing (a response still streams).
#[tokio::test]
async fn history_in_pages_keeps_the_seq_rule() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Pages").await;
    let mut sent_ids = Vec::new();
    for i in 0..5 {
        let sent = app.api.send_message(&team.ben, conv, &format!("question {i}")).await.unwrap();
        let message_id: uuid::Uuid = sent["message_id"].as_str().unwrap().parse().unwrap();
        let response_id: uuid::Uuid = sent["response_id"].as_str().unwrap().parse().unwrap();
        sent_ids.extend([message_id, response_id]);
        let started = Event::ResponseStarted { response_id, message_id, model: "sim-1".into(), attempt: 1 };
        publish(&app, conv, started).await;
        // The last response is still streaming when history is read.
        if i < 4 {
            let text = format!("answer {i}");
            publish(&app, conv, Event::ResponseCompleted { response_id, attempt: 1, model: "sim-1".into(), text })
                .await;
        }
    }
    apply_transcript(&app, conv).await;
    let cy = app.api.as_user(&team.cy);

    let (s, whole) = cy.get(&format!("/conversations/{conv}?limit=500")).await.unwrap();
    assert_eq!(s.as_u16(), 200, "{whole}");
    assert_eq!((whole["has_more"].as_bool(), whole["next_before"].is_null()), (Some(false), true), "{whole}");
    let history_seq = whole["seq"].as_u64().unwrap();
    assert_eq!(ids(&whole).len(), 9, "4 answered questions and the last one: {whole}");

    // Pages of 2, newest first, until none is left.
    let (_, newest) = cy.get(&format!("/conversations/{conv}?limit=2")).await.unwrap();
    assert_eq!(newest["seq"].as_u64(), Some(history_seq), "a page covers the same stream prefix");
    assert_eq!(ids(&newest), ids(&whole)[7..], "the newest page is the end of the history");
    let mut pages = vec![ids(&newest)];
    let mut page = newest;
    while page["has_more"] == true {
        let before = page["next_before"].as_u64().expect("next_before while has_more");
        assert_eq!(Some(before), page["messages"][0]["seq"].as_u64());
        page = cy.get(&format!("/conversations/{conv}?limit=2&before={before}")).await.unwrap().1;
        assert!(ids(&page).len() <= 2, "{page}");
        pages.push(ids(&page));
    }
    assert!(page["next_before"].is_null(), "{page}");
    let stitched: Vec<String> = pages.into_iter().rev().flatten().collect();
    assert_eq!(stitched, ids(&whole), "the pages are the history, in order, each turn once");

    // The history plus the stream after its seq: every message and response exactly once.
    let mut seen = ids(&whole);
    for (seq, env) in conv_events(&app, conv).await {
        match env.event {
            Event::MessageCreated { message_id, .. } if seq > history_seq => seen.push(message_id.to_string()),
            Event::ResponseStarted { response_id, .. } if seq > history_seq => seen.push(response_id.to_string()),
            _ => {}
        }
    }
    seen.sort();
    let mut want: Vec<String> = sent_ids.iter().map(|id| id.to_string()).collect();
    want.sort();
    assert_eq!(seen, want);

    // Bad paging parameters: 400.
    for query in ["limit=0", "limit=501", "before=0", "before=abc", "page=2"] {
        let (s, v) = cy.get(&format!("/conversations/{conv}?{query}")).await.unwrap();
        assert_error(s, &v, 400, "bad_request");
    }
}
