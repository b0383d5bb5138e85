//! nats-server killed mid-stream and started again on the same port and data (issue 10): the jobs are redelivered
//! and finish, viewers see every response to its end, and the transcript holds every message and completed
//! response exactly once — `RH_AUDIT` (the writer's copy of the events) and its source position survive the
//! restart, so nothing is copied twice or skipped.

use crate::helpers::*;
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

const RESPONSES: usize = 3;
/// How long NATS stays down: longer than the clients' first reconnect attempts, shorter than a job's ack wait
/// would need to matter.
const OUTAGE: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_mid_stream_and_restarted_leaves_the_transcript_exactly_once() -> anyhow::Result<()> {
    let mut t = team(sim_env(&[("RH_JOB_ACK_WAIT_SECS", "2")])).await?;
    let conv = t.api.create_conversation(&t.owner, "NATS restart").await?;
    let h = history_seq(&t.api, &t.owner, conv).await?;
    let mut v = Viewer::join(&t.stack.ws_url(), &t.owner, conv, Some(h)).await?;

    let mut asked = HashMap::new();
    for i in 0..RESPONSES {
        let reply = t.api.send_message(&t.owner, conv, &format!("/sim tokens=100 rate=25\nquestion {i}")).await?;
        asked.insert(response_id(&reply)?, Uuid::parse_str(reply["message_id"].as_str().unwrap_or_default())?);
    }
    let rids: Vec<Uuid> = asked.keys().copied().collect();
    v.until_deltas(rids[0], 5).await?;

    t.stack.nats.stop().await;
    tokio::time::sleep(OUTAGE).await;
    t.stack.nats.restart().await?;

    // Every response ends on the viewer's socket, its last attempt complete and gapless.
    let mut texts = HashMap::new();
    for rid in &rids {
        let ended = |s: &Seen| s.event.event.is_response_end() && s.event.event.response_id() == Some(*rid);
        if !v.seen.iter().any(ended) {
            v.until_response_end(*rid).await?;
        }
        texts.insert(*rid, check_response(&v.seen, *rid)?);
    }
    for (rid, text) in &texts {
        assert_eq!(&stored_response(&t.api, &t.owner, conv, *rid).await?, text, "response {rid}");
    }

    let db = t.stack.db.connect().await?;
    let ids: Vec<Uuid> = asked.iter().flat_map(|(r, m)| [*r, *m]).collect();
    let count = |sql: &'static str| {
        let db = &db;
        let ids = ids.clone();
        async move { db.query_one(sql, &[&ids, &conv]).await.map(|r| r.get::<_, i64>(0)) }
    };
    let stored = count("SELECT count(*) FROM messages WHERE id = ANY($1) AND conversation_id = $2").await?;
    let all = count("SELECT count(*) FROM messages WHERE conversation_id = $2 OR id = ANY($1)").await?;
    assert_eq!((stored, all), (ids.len() as i64, ids.len() as i64), "each exactly once, nothing else");

    // And the conversation goes on: a new message after the restart is answered and stored.
    let rid = response_id(&t.api.send_message(&t.owner, conv, "/sim tokens=5 rate=100\nafter").await?)?;
    v.until_response_end(rid).await?;
    let text = check_response(&v.seen, rid)?;
    assert_eq!(stored_response(&t.api, &t.owner, conv, rid).await?, text);
    Ok(())
}
