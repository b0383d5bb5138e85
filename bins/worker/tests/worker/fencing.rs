//! Attempt fencing at the level of one worker: what the response's claim (KV `rh_stops`) makes a delivery do.
//! The whole path, with a real leader change on a 3-node cluster, is `e2e/tests/e2e/nats_cluster_jobs.rs`.

use super::*;
use rh_protocol::rpc::ResponseClaim;

/// The response's end events of `rid` in what `r` read.
fn ends(r: &Reader, rid: Uuid) -> Vec<Event> {
    r.seen.iter().map(|e| e.event.clone()).filter(|e| e.is_response_end() && e.response_id() == Some(rid)).collect()
}

/// Reads everything the worker published in `conv` so far: a last job's end comes after all of it.
async fn read_to_the_end(bus: &Bus, r: &mut Reader, conv: Uuid) -> anyhow::Result<()> {
    let last = job(conv, "sim-1", "/sim tokens=3 rate=1000\nlast one");
    bus.publish_job(&last).await?;
    r.until_end(last.response_id).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_delivered_again_after_its_response_ended_is_dropped() -> anyhow::Result<()> {
    let bus = Bus::start().await?;
    let worker = bus.worker(&[]).await?;
    let conv = Uuid::new_v4();
    let mut r = bus.reader(conv).await?;
    let j = job(conv, "sim-1", "/sim tokens=20 rate=400\nanswer once");
    bus.publish_job(&j).await?;
    r.until_end(j.response_id).await?;
    // Acked, so its claim is removed (just before the ack).
    rh_testkit::eventually(Duration::from_secs(5), "the first delivery acked", || async {
        (jobs_left(&bus).await.ok()? == 0).then_some(())
    })
    .await?;

    // The same job once more, as JetStream delivers it again when the first delivery's ack was lost (a consumer
    // without a leader at that moment): the claim, removed at the end, says the response has ended.
    bus.publish_job(&j).await?;
    rh_testkit::eventually(Duration::from_secs(10), "the second delivery dropped", || async {
        (metric(&worker, "jobs_dropped_total").await.ok()? == 1.0).then_some(())
    })
    .await?;
    read_to_the_end(&bus, &mut r, conv).await?;
    assert_eq!(started_attempts(&r.seen, j.response_id), [1], "started once");
    assert_eq!(ends(&r, j.response_id).len(), 1, "ended once: {:?}", ends(&r, j.response_id));
    rh_testkit::eventually(Duration::from_secs(5), "every delivery acked", || async {
        (jobs_left(&bus).await.ok()? == 0).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_response_a_later_attempt_ended_publishes_no_end() -> anyhow::Result<()> {
    let bus = Bus::start().await?;
    let worker = bus.worker(&[]).await?;
    let conv = Uuid::new_v4();
    let mut r = bus.reader(conv).await?;
    let j = job(conv, "sim-1", "/sim tokens=60 rate=40\noverlapping attempts");
    bus.publish_job(&j).await?;
    r.until_deltas(j.response_id, 2).await?;

    // What a second delivery does while this attempt runs, when it is the faster one: it takes the claim as
    // attempt 2 (compare-and-set on the revision the first attempt wrote), ends the response and removes the claim.
    let kv = bus.js.get_key_value(subjects::KV_STOPS).await?;
    let key = subjects::response_claim(conv, j.response_id);
    let Some(held) = rh_bus::claims::read(&kv, &key).await? else { bail!("no claim while generating") };
    assert_eq!(held.claim, ResponseClaim::Running { attempt: 1 });
    ensure!(rh_bus::claims::swap(&kv, &key, Some(held.revision), &ResponseClaim::Running { attempt: 2 }).await?);
    rh_bus::claims::remove(&kv, &key).await?;

    rh_testkit::eventually(Duration::from_secs(10), "the first attempt superseded", || async {
        (metric(&worker, "jobs_superseded_total").await.ok()? == 1.0).then_some(())
    })
    .await?;
    read_to_the_end(&bus, &mut r, conv).await?;
    assert!(ends(&r, j.response_id).is_empty(), "attempt 1 ended the response: {:?}", ends(&r, j.response_id));
    assert_eq!(metric(&worker, "jobs_completed_total").await?, 1.0, "only the last job");
    Ok(())
}

/// A broker that acks late is not a lost message: with nats-server frozen for longer than async-nats's 5 s default
/// ack wait while an answer streams, the attempt waits for its acks (`--publish-ack-timeout-secs`) and ends once,
/// as attempt 1. Handing it back instead let the next attempt answer again after an end already stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_acks_late_does_not_make_the_worker_answer_again() -> anyhow::Result<()> {
    let bus = Bus::start().await?;
    let worker = bus.worker(&[]).await?;
    let conv = Uuid::new_v4();
    let mut r = bus.reader(conv).await?;
    let j = job(conv, "sim-1", "/sim tokens=60 rate=20\nwhile the broker is frozen");
    bus.publish_job(&j).await?;
    r.until_deltas(j.response_id, 3).await?;

    bus.nats.pause()?;
    tokio::time::sleep(Duration::from_secs(7)).await;
    bus.nats.resume()?;

    r.until_end(j.response_id).await?;
    read_to_the_end(&bus, &mut r, conv).await?;
    assert_eq!(started_attempts(&r.seen, j.response_id), [1], "started once");
    assert_eq!(ends(&r, j.response_id).len(), 1, "ended once: {:?}", ends(&r, j.response_id));
    assert_eq!(metric(&worker, "jobs_requeued_total").await?, 0.0, "no attempt handed back");
    Ok(())
}
