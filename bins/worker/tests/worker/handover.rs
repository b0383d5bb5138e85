//! A job outliving its worker, or its ack wait: a killed worker's job finished by another, a long job kept in
//! progress, SIGTERM letting a job finish, and a job handed on at once when the shutdown grace is over.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_is_finished_by_another_worker_as_attempt_2() -> anyhow::Result<()> {
    let bus = Bus::start().await?;
    let env = [("RH_JOB_ACK_WAIT_SECS", "2")];
    let mut first = bus.worker(&env).await?;
    let conv = Uuid::new_v4();
    let mut r = bus.reader(conv).await?;
    let j = job(conv, "sim-1", "/sim tokens=150 rate=50\nexplain the outage");
    bus.publish_job(&j).await?;
    r.until_deltas(j.response_id, 4).await?;
    first.kill().await;
    let second = bus.worker(&env).await?;

    let end = r.until_end(j.response_id).await?;
    let Event::ResponseCompleted { attempt, text, .. } = end else { bail!("ended with {end:?}") };
    assert_eq!(attempt, 2);
    assert_eq!(started_attempts(&r.seen, j.response_id), [1, 2]);
    // The second attempt starts again from index 0 and carries the whole text on its own.
    check_deltas(&r.seen, j.response_id, 2, &text)?;
    assert_eq!(text, simulated_text(&j));
    assert!(!deltas(&r.seen, j.response_id, Some(1)).is_empty());
    rh_testkit::eventually(Duration::from_secs(5), "job acked", || async {
        (jobs_left(&bus).await.ok()? == 0).then_some(())
    })
    .await?;
    assert_eq!(metric(&second, "jobs_completed_total").await?, 1.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_outlives_its_ack_wait_without_being_redelivered() -> anyhow::Result<()> {
    let bus = Bus::start().await?;
    // Two workers, ack_wait 1 s, a 3 s response: only in-progress acks keep the other worker from taking it.
    let env = [("RH_JOB_ACK_WAIT_SECS", "1")];
    let _a = bus.worker(&env).await?;
    let _b = bus.worker(&env).await?;
    let conv = Uuid::new_v4();
    let mut r = bus.reader(conv).await?;
    let j = job(conv, "sim-1", "/sim tokens=90 rate=30\nslow and steady");
    bus.publish_job(&j).await?;
    let end = r.until_end(j.response_id).await?;
    let Event::ResponseCompleted { attempt, text, .. } = end else { bail!("ended with {end:?}") };
    assert_eq!(attempt, 1);
    assert_eq!(started_attempts(&r.seen, j.response_id), [1]);
    check_deltas(&r.seen, j.response_id, 1, &text)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_running_job_finish_then_exits() -> anyhow::Result<()> {
    let bus = Bus::start().await?;
    let mut worker = bus.worker(&[]).await?;
    let conv = Uuid::new_v4();
    let mut r = bus.reader(conv).await?;
    let j = job(conv, "sim-1", "/sim tokens=40 rate=40\nfinish what you started");
    bus.publish_job(&j).await?;
    r.until_deltas(j.response_id, 1).await?;
    worker.terminate(Duration::from_secs(15)).await;
    // The response was finished by the terminating worker: no second attempt, nothing left in the queue.
    let end = r.until_end(j.response_id).await?;
    assert!(matches!(end, Event::ResponseCompleted { attempt: 1, .. }), "{end:?}");
    assert_eq!(jobs_left(&bus).await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_still_running_after_the_shutdown_grace_goes_straight_to_another_worker() -> anyhow::Result<()> {
    let bus = Bus::start().await?;
    // ack_wait stays at 30 s: the handover below must not wait for it.
    let mut leaving = bus.worker(&[("RH_WORKER_SHUTDOWN_GRACE_SECS", "1")]).await?;
    let conv = Uuid::new_v4();
    let mut r = bus.reader(conv).await?;
    let j = job(conv, "sim-1", "/sim tokens=400 rate=50\na very long answer");
    bus.publish_job(&j).await?;
    r.until_deltas(j.response_id, 2).await?;
    let _staying = bus.worker(&[("RH_SIM_TOKENS_PER_SEC", "1000")]).await?;
    let t0 = std::time::Instant::now();
    leaving.terminate(Duration::from_secs(15)).await;

    // Generation speed comes from the job's /sim line, so the second attempt takes ~8 s; the point is that it
    // starts at once, not after the 30 s ack_wait.
    while started_attempts(&r.seen, j.response_id).len() < 2 {
        r.next().await?;
    }
    assert!(t0.elapsed() < Duration::from_secs(10), "handover took {:?}", t0.elapsed());
    let end = r.until_end(j.response_id).await?;
    let Event::ResponseCompleted { attempt, text, .. } = end else { bail!("ended with {end:?}") };
    assert_eq!(attempt, 2);
    check_deltas(&r.seen, j.response_id, 2, &text)?;
    Ok(())
}
