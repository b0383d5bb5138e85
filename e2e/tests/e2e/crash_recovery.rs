//! Crashes lose nothing: a worker killed mid-response, an audit writer killed during a burst.

use crate::helpers::*;
use rh_protocol::Event;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_whose_worker_is_killed_is_finished_by_another_worker() -> anyhow::Result<()> {
    let mut t = team(sim_env(&[("RH_JOB_ACK_WAIT_SECS", "2")])).await?;
    let conv = t.api.create_conversation(&t.owner, "Crash test").await?;
    let h = history_seq(&t.api, &t.owner, conv).await?;
    let mut v = Viewer::join(&t.stack.ws_url(), &t.owner, conv, Some(h)).await?;
    let rid = response_id(&t.api.send_message(&t.owner, conv, "/sim tokens=150 rate=50\nexplain").await?)?;

    v.until_deltas(rid, 15).await?;
    t.stack.workers[0].kill().await;
    let replacement = t.stack.spawn_worker().await?;
    t.stack.workers.push(replacement);

    v.until_response_end(rid).await?;
    // Viewers were told the partial response restarted: a second response.started with a higher attempt.
    let attempts: Vec<u32> = v
        .seen
        .iter()
        .filter_map(|s| match s.event.event {
            Event::ResponseStarted { response_id, attempt, .. } if response_id == rid => Some(attempt),
            _ => None,
        })
        .collect();
    assert!(attempts.len() >= 2 && attempts.windows(2).all(|w| w[0] < w[1]), "attempts {attempts:?}");
    let text = check_response(&v.seen, rid)?;
    assert_eq!(stored_response(&t.api, &t.owner, conv, rid).await?, text);
    let pg = t.stack.db.connect().await?;
    let n: i64 = pg.query_one("SELECT count(*) FROM messages WHERE id = $1", &[&rid]).await?.get(0);
    assert_eq!(n, 1, "the response is stored once");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_audit_writer_during_a_burst_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    const N: usize = 150;
    let mut t =
        team(rh_testkit::StackOptions { api_env: api_env_without_reply_limits(), ..Default::default() }).await?;
    let conv = t.api.create_conversation(&t.owner, "Burst").await?;
    let pg = t.stack.db.connect().await?;

    let api = t.api.clone();
    let owner = t.owner.clone();
    let burst = tokio::spawn(async move {
        let mut ids = Vec::new();
        for i in 0..N {
            let reply = api.send_message(&owner, conv, &format!("/sim tokens=2 rate=1000\nmessage {i}")).await?;
            ids.push(reply["message_id"].as_str().unwrap_or_default().to_owned());
        }
        anyhow::Ok(ids)
    });

    // Kill the audit writer once it has written part of the burst, then start it again.
    rh_testkit::eventually(WAIT, "some messages stored", || async {
        let n: i64 =
            pg.query_one("SELECT count(*) FROM messages WHERE conversation_id = $1", &[&conv]).await.ok()?.get(0);
        (n >= 10).then_some(())
    })
    .await?;
    let audit = t.stack.audit.as_mut().ok_or_else(|| anyhow::anyhow!("no audit"))?;
    audit.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restarted = audit.respawn().await?;
    t.stack.audit = Some(restarted);
    let ids = burst.await??;
    assert_eq!(ids.len(), N);

    let (users, assistants) = rh_testkit::eventually(Duration::from_secs(60), "the whole burst stored", || async {
        let row = pg
            .query_one(
                "SELECT count(*) FILTER (WHERE role = 'user'), count(*) FILTER (WHERE role = 'assistant' AND status = 'complete')
                   FROM messages WHERE conversation_id = $1",
                &[&conv],
            )
            .await
            .ok()?;
        let (u, a): (i64, i64) = (row.get(0), row.get(1));
        (u as usize == N && a as usize == N).then_some((u, a))
    })
    .await?;
    assert_eq!((users, assistants), (N as i64, N as i64));
    let total: i64 = pg.query_one("SELECT count(*) FROM messages WHERE conversation_id = $1", &[&conv]).await?.get(0);
    assert_eq!(total, 2 * N as i64, "nothing duplicated");
    for id in &ids {
        let id = uuid::Uuid::parse_str(id)?;
        let n: i64 = pg.query_one("SELECT count(*) FROM messages WHERE id = $1", &[&id]).await?.get(0);
        assert_eq!(n, 1, "message {id} stored once");
    }

    // The writer applied the conversation up to its last event in the stream.
    let js = async_nats::jetstream::new(t.stack.nats.client().await?);
    let stream = js.get_stream(rh_protocol::subjects::STREAM_CONV).await?;
    let last = stream.get_last_raw_message_by_subject(&rh_protocol::subjects::conv_event(conv)).await?;
    let applied = rh_testkit::eventually(WAIT, "applied_seq to reach the last event", || async {
        let a: i64 = pg.query_one("SELECT applied_seq FROM conversations WHERE id = $1", &[&conv]).await.ok()?.get(0);
        (a as u64 == last.sequence).then_some(a)
    })
    .await?;
    assert_eq!(applied as u64, last.sequence);
    Ok(())
}
