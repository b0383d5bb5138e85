//! Limits seen from a socket: an AI reply refused by the api's shared bucket reaches the sender as a
//! `rate_limited` error frame with its wait, and leaves no message behind.

use crate::helpers::*;
use rh_protocol::{ClientFrame, ServerFrame};
use rh_testkit::StackOptions;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_over_the_reply_limit_gets_a_rate_limited_frame_and_stores_nothing() -> anyhow::Result<()> {
    let api_env = [("RH_LIMIT_USER_REPLIES_BURST", "1"), ("RH_LIMIT_USER_REPLIES_PER_MIN", "0.0007")];
    let api_env = api_env.map(|(k, v)| (k.to_owned(), v.to_owned())).into();
    let t = team(StackOptions { api_env, ..Default::default() }).await?;
    let conv = t.api.create_conversation(&t.owner, "Limited").await?;
    let mut viewer = Viewer::join(&t.stack.ws_url(), &t.owner, conv, None).await?;

    // One after the other: two sends in flight at once race for the one token.
    let send = |id: &str| ClientFrame::SendMessage {
        conversation_id: conv,
        text: "/sim tokens=2\nhello".into(),
        client_msg_id: id.into(),
        edit_of: None,
    };
    viewer.ws.send(&send("m-1")).await?;
    viewer
        .until_frame(|f| matches!(f, ServerFrame::MessageAccepted { client_msg_id, .. } if client_msg_id == "m-1"))
        .await?;
    viewer.ws.send(&send("m-2")).await?;
    let refused = viewer.until_frame(|f| matches!(f, ServerFrame::Error { .. })).await?;
    let ServerFrame::Error { code, reference, retry_after_ms, .. } = &refused else { unreachable!() };
    assert_eq!((code.as_str(), reference.as_deref()), ("rate_limited", Some("m-2")), "{refused:?}");
    assert!(retry_after_ms.is_some_and(|ms| ms > 60_000), "{refused:?}");

    // Only the first message is in the transcript once its response completed (which may have come while the
    // refusal was awaited).
    let completed = |kind: &str| kind == "response.completed";
    if !viewer.seen.iter().any(|s| completed(s.event.event.kind())) {
        viewer.until_frame(|f| matches!(f, ServerFrame::Event { event, .. } if completed(event.event.kind()))).await?;
    }
    let pg = t.stack.db.connect().await?;
    let stored = rh_testkit::eventually(WAIT, "the first message stored", || async {
        let n: i64 = pg
            .query_one("SELECT count(*) FROM messages WHERE conversation_id = $1 AND role = 'user'", &[&conv])
            .await
            .ok()?
            .get(0);
        (n >= 1).then_some(n)
    })
    .await?;
    assert_eq!(stored, 1);
    let created = viewer.seen.iter().filter(|s| s.event.event.kind() == "message.created").count();
    assert_eq!(created, 1, "the socket saw one message.created");
    Ok(())
}

/// `POST /conversations/{conv}/messages` on `api` as `who`: the status, and the body.
async fn post_message(api: &rh_testkit::Api, who: &rh_testkit::Session, conv: uuid::Uuid, text: &str) -> (u16, Value) {
    let (status, body) =
        api.as_user(who).post(&format!("/conversations/{conv}/messages"), json!({"text": text})).await.unwrap();
    (status.as_u16(), body)
}

/// Waits until `api` accepts `text` in `conv` (the slot of the answer in progress came back); its reply.
async fn sent_once_free(
    api: &rh_testkit::Api,
    who: &rh_testkit::Session,
    conv: uuid::Uuid,
    text: &str,
) -> anyhow::Result<Value> {
    rh_testkit::eventually(WAIT, "a send accepted again", || async {
        let (status, body) = post_message(api, who, conv, text).await;
        (status == 202).then_some(body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_in_progress_holds_its_slot_until_it_completes_is_stopped_or_its_worker_crashes() -> anyhow::Result<()>
{
    // One answer at a time per conversation, counted by both api replicas; a crashed worker's job comes back
    // after 2 s.
    let limits = [("RH_LIMIT_CONVERSATION_RESPONSES", "1")];
    let api_env = limits.map(|(k, v)| (k.to_owned(), v.to_owned())).into();
    let mut options = sim_env(&[("RH_JOB_ACK_WAIT_SECS", "2")]);
    options.api_env = api_env;
    let mut t = team(options).await?;
    let replica = t.stack.spawn_api(&limits).await?;
    let api_b = rh_testkit::Api::new(&replica.http_url());
    let conv = t.api.create_conversation(&t.owner, "One at a time").await?;
    t.api.share(&t.owner, conv, &t.ben, "respond").await?;
    let h = history_seq(&t.api, &t.owner, conv).await?;
    let mut v = Viewer::join(&t.stack.ws_url(), &t.owner, conv, Some(h)).await?;
    // Long enough that each check below runs while the answer is still being generated, even on busy cores.
    let slow = "/sim tokens=200 rate=40\nexplain slowly";
    let longest = "/sim tokens=800 rate=40\nexplain at length";
    let quick = "/sim tokens=2 rate=1000\nagain";

    // Completed: while it runs, a send on the other replica, and one from a socket, are refused.
    let (status, first) = post_message(&t.api, &t.owner, conv, slow).await;
    assert_eq!(status, 202, "{first}");
    let (status, refused) = post_message(&api_b, &t.ben, conv, "me too").await;
    assert_eq!((status, refused["error"]["code"].as_str()), (429, Some("rate_limited")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap_or_default().contains("conversation"), "{refused}");
    v.ws.send(&ClientFrame::SendMessage {
        conversation_id: conv,
        text: "from the socket".into(),
        client_msg_id: "s-1".into(),
        edit_of: None,
    })
    .await?;
    let frame = v.until_frame(|f| matches!(f, ServerFrame::Error { .. })).await?;
    let ServerFrame::Error { code, retry_after_ms, .. } = &frame else { unreachable!() };
    assert_eq!((code.as_str(), *retry_after_ms), ("rate_limited", Some(5000)), "{frame:?}");
    v.until_response_end(response_id(&first)?).await?;
    let after_completed = sent_once_free(&api_b, &t.ben, conv, quick).await?;
    v.until_response_end(response_id(&after_completed)?).await?;

    // Stopped.
    let stopped = sent_once_free(&t.api, &t.owner, conv, longest).await?;
    let rid = response_id(&stopped)?;
    v.until_deltas(rid, 2).await?;
    assert_eq!(post_message(&api_b, &t.ben, conv, "still busy").await.0, 429);
    t.api.as_user(&t.owner).post(&format!("/conversations/{conv}/stop"), json!({"response_id": rid})).await?;
    v.until_response_end(rid).await?;
    let after_stop = sent_once_free(&t.api, &t.ben, conv, quick).await?;
    v.until_response_end(response_id(&after_stop)?).await?;

    // Its worker killed mid-answer: the slot stays taken (no second answer starts meanwhile) until the
    // replacement worker's retry ends the answer, then it comes back.
    let crashed = sent_once_free(&t.api, &t.owner, conv, slow).await?;
    let rid = response_id(&crashed)?;
    v.until_deltas(rid, 5).await?;
    t.stack.workers[0].kill().await;
    assert_eq!(post_message(&api_b, &t.ben, conv, "while it is down").await.0, 429);
    let replacement = t.stack.spawn_worker().await?;
    t.stack.workers.push(replacement);
    v.until_response_end(rid).await?;
    sent_once_free(&api_b, &t.ben, conv, quick).await?;

    // Nothing refused was stored: the six accepted messages only.
    let pg = t.stack.db.connect().await?;
    let stored = rh_testkit::eventually(WAIT, "six messages stored", || async {
        let sql = "SELECT count(*) FROM messages WHERE conversation_id = $1 AND role = 'user'";
        let n: i64 = pg.query_one(sql, &[&conv]).await.ok()?.get(0);
        (n >= 6).then_some(n)
    })
    .await?;
    assert_eq!(stored, 6);
    Ok(())
}
