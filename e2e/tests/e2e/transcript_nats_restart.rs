//! nats-server killed mid-stream and started again on the same port and data (issue 10): the jobs are redelivered
//! and finish, viewers see every response to its end, and the transcript holds every message and completed
//! response exactly once — `RH_AUDIT` (the writer's copy of the events) and its source position survive the
//! restart, so nothing is copied twice or skipped.

use crate::helpers::*;
use rh_protocol::Event;
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

/// The worker pipelines its publishes. NATS killed while deltas are in flight must not leave any attempt with a
/// hole — delta N missing while N+1 is stored — on a viewer's socket or in the stream (the chaos bench's `gap`
/// violations): an attempt cut by the outage is a gapless prefix, replaced by the next attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_while_deltas_are_in_flight_leaves_no_viewer_a_hole() -> anyhow::Result<()> {
    const KILLS: usize = 3;
    // Many small deltas back to back: a kill almost always finds some on the wire.
    let mut t = team(sim_env(&[("RH_JOB_ACK_WAIT_SECS", "2"), ("RH_COALESCE_MS", "1")])).await?;
    let conv = t.api.create_conversation(&t.owner, "NATS kill, deltas in flight").await?;
    let h = history_seq(&t.api, &t.owner, conv).await?;
    let mut v = Viewer::join(&t.stack.ws_url(), &t.owner, conv, Some(h)).await?;

    let asked = ask_questions(&t, conv, 4, "/sim tokens=1500 rate=500").await?;
    let rids: Vec<Uuid> = asked.keys().copied().collect();
    for _ in 0..KILLS {
        for _ in 0..20 {
            v.until_event(|s| s.event.event.is_delta()).await?;
        }
        t.stack.nats.restart().await?;
    }

    for rid in &rids {
        let ended = |s: &Seen| s.event.event.is_response_end() && s.event.event.response_id() == Some(*rid);
        if !v.seen.iter().any(ended) {
            v.until_response_end(*rid).await?;
        }
    }
    let seen: Vec<&Event> = v.seen.iter().map(|s| &s.event.event).collect();
    let stored = crate::faults::stored_events(&t, conv).await?;
    let in_stream: Vec<&Event> = stored.iter().map(|(_, e)| &e.event).collect();
    let mut attempts = 0;
    for rid in &rids {
        attempts += assert_every_attempt_gapless(&seen, *rid).map_err(|e| e.context("on the viewer's socket"))?;
        assert_every_attempt_gapless(&in_stream, *rid).map_err(|e| e.context("in RH_CONV"))?;
        let text = check_response(&v.seen, *rid)?;
        assert_eq!(stored_response(&t.api, &t.owner, conv, *rid).await?, text, "response {rid}");
    }
    // The kills did cut attempts (else this proved nothing).
    assert!(attempts > rids.len(), "{attempts} attempts for {} responses", rids.len());
    assert_stored_exactly_once(&t, conv, &asked).await?;
    Ok(())
}

/// Every attempt of `response_id` in `events` starts once, after the lower ones, and has deltas 0, 1, 2… in order with none missing (a cut attempt
/// stops early); returns how many attempts there were.
fn assert_every_attempt_gapless(events: &[&Event], response_id: Uuid) -> anyhow::Result<usize> {
    let mut next: std::collections::BTreeMap<u32, u32> = Default::default();
    for e in events.iter().filter(|e| e.response_id() == Some(response_id)) {
        match e {
            Event::ResponseStarted { attempt, .. } => {
                anyhow::ensure!(next.keys().all(|a| a < attempt), "attempt {attempt} after {:?}", next.keys());
                next.insert(*attempt, 0);
            }
            Event::ResponseDelta { attempt, index, from_index, .. } => {
                let expected = next.get_mut(attempt).ok_or_else(|| anyhow::anyhow!("delta before its start"))?;
                let first = from_index.unwrap_or(*index);
                anyhow::ensure!(first == *expected, "attempt {attempt}: delta {first}, expected {expected} (a hole)");
                *expected = index + 1;
            }
            _ => {}
        }
    }
    Ok(next.len())
}
