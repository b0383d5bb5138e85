//! nats-server killed mid-stream and started again on the same port and data (issue 10): the jobs are redelivered
//! and finish, viewers see every response to its end, and the transcript holds every message and completed
//! response exactly once — `RH_AUDIT` (the writer's copy of the events) and its source position survive the
//! restart, so nothing is copied twice or skipped.

use crate::helpers::*;
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

    let asked = ask_questions(&t, conv, RESPONSES, "/sim tokens=100 rate=25").await?;
    let rids: Vec<Uuid> = asked.keys().copied().collect();
    v.until_deltas(rids[0], 5).await?;

    t.stack.nats.stop().await;
    tokio::time::sleep(OUTAGE).await;
    t.stack.nats.restart().await?;

    // Every response ends on the viewer's socket, its last attempt complete and gapless.
    let texts = ended_texts(&mut v, &rids).await?;
    for (rid, text) in &texts {
        assert_eq!(&stored_response(&t.api, &t.owner, conv, *rid).await?, text, "response {rid}");
    }

    assert_stored_exactly_once(&t, conv, &asked).await?;

    // And the conversation goes on: a new message after the restart is answered and stored.
    let rid = response_id(&t.api.send_message(&t.owner, conv, "/sim tokens=5 rate=100\nafter").await?)?;
    v.until_response_end(rid).await?;
    let text = check_response(&v.seen, rid)?;
    assert_eq!(stored_response(&t.api, &t.owner, conv, rid).await?, text);
    Ok(())
}
