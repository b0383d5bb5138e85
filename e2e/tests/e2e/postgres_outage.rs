//! PostgreSQL stopped while responses stream (issue 10): the api answers clear 503s, viewers keep watching live,
//! and once PostgreSQL is back every message and completed response is in the transcript exactly once — even
//! though `RH_CONV` (made small here) dropped those events long before, and the audit writer was killed meanwhile:
//! they waited in `RH_AUDIT` (`nats/README.md`).
//!
//! The database runs on a private PostgreSQL server ([`rh_testkit::PgCluster`]) so the test can really stop it.

use crate::helpers::*;
use rh_protocol::Event;
use rh_testkit::{PgCluster, StackOptions};
use std::time::Duration;
use uuid::Uuid;

const RESPONSES: usize = 3;
/// Much less than the responses' deltas: every event of this test is dropped from `RH_CONV` during the outage.
const SMALL_CONV: i64 = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_stream_answers_503_keeps_streaming_and_loses_nothing() -> anyhow::Result<()> {
    let pg = PgCluster::start()?;
    let topology = rh_bus::Topology { conv_max_bytes: SMALL_CONV, ..rh_bus::Topology::default() };
    let options = StackOptions { topology, pg_admin_url: Some(pg.admin_url()), ..StackOptions::default() };
    let mut t = team(options).await?;
    let conv = t.api.create_conversation(&t.owner, "Outage").await?;
    let h = history_seq(&t.api, &t.owner, conv).await?;
    let mut v = Viewer::join(&t.stack.ws_url(), &t.owner, conv, Some(h)).await?;

    let asked = ask_questions(&t, conv, RESPONSES, "/sim tokens=150 rate=30").await?;
    let rids: Vec<Uuid> = asked.keys().copied().collect();
    v.until_deltas(rids[0], 5).await?;

    pg.stop()?;
    // The api says clearly that it cannot serve, in its JSON error shape.
    let owner_api = t.api.as_user(&t.owner);
    for (what, (status, body)) in [
        ("history", owner_api.get(&format!("/conversations/{conv}")).await?),
        (
            "send",
            owner_api.post(&format!("/conversations/{conv}/messages"), serde_json::json!({"text": "hello?"})).await?,
        ),
    ] {
        assert_eq!(status.as_u16(), 503, "{what} during the outage: {body}");
        assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{what}: {body}");
    }
    // The writer dies too; whatever it held in memory is gone with it.
    t.stack.audit.as_mut().ok_or_else(|| anyhow::anyhow!("no audit writer"))?.kill().await;

    // The live stream goes on: every response streams to its end, complete and in order.
    let texts = ended_texts(&mut v, &rids).await?;
    // RH_CONV has dropped the messages' events by now: the transcript can only come from RH_AUDIT.
    let js = async_nats::jetstream::new(t.stack.nats.client().await?);
    let conv_stream = js.get_stream(rh_protocol::subjects::STREAM_CONV).await?;
    for s in v.seen.iter().filter(|s| matches!(s.event.event, Event::MessageCreated { .. })) {
        assert!(conv_stream.direct_get(s.seq).await.is_err(), "RH_CONV still holds the event at {}", s.seq);
    }
    let last_seq = v.seen.last().map(|s| s.seq).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(1)).await;

    pg.resume()?;
    let audit = t.stack.audit.as_ref().ok_or_else(|| anyhow::anyhow!("no audit writer"))?.respawn().await?;
    t.stack.audit = Some(audit);

    // Everything is in the history, with the text the viewers saw, at the positions they saw.
    let history = rh_testkit::eventually(Duration::from_secs(60), "the whole transcript after the outage", || async {
        let v = t.api.conversation(&t.owner, conv).await.ok()?;
        (v["seq"].as_u64()? >= last_seq).then_some(v)
    })
    .await?;
    let messages = history["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages.len(), 2 * RESPONSES, "{messages:?}");
    for (rid, text) in &texts {
        let m = messages.iter().find(|m| m["id"] == rid.to_string()).expect("the response is in the history");
        assert_eq!((m["status"].as_str(), m["text"].as_str()), (Some("complete"), Some(text.as_str())));
        let asked_by = asked[rid].to_string();
        assert!(messages.iter().any(|m| m["id"] == asked_by && m["role"] == "user"), "message {asked_by}");
    }
    assert_stored_exactly_once(&t, conv, &asked).await
}
