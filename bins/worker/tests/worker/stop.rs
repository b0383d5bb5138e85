//! Stops: mid-stream (the partial text, nothing after it) and before pickup (nothing generated).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_mid_stream_ends_with_the_partial_text_and_later_jobs_still_run() -> anyhow::Result<()> {
    let bus = Bus::start().await?;
    let _worker = bus.worker(&[]).await?;
    let conv = Uuid::new_v4();
    let owner = Uuid::new_v4();
    let mut r = bus.reader(conv).await?;
    let j = job(conv, "sim-1", "/sim tokens=300 rate=60\nA long answer please");
    bus.publish_job(&j).await?;
    r.until_deltas(j.response_id, 2).await?;

    // A stop from before this job was asked for (an earlier response's) does not stop it.
    let old =
        StopControl { conversation_id: conv, requested_by: owner, at_us: j.requested_at_us - 1, response_id: None };
    bus.client.publish(subjects::stop_control(conv), serde_json::to_vec(&old)?.into()).await?;
    let seen_before = deltas(&r.seen, j.response_id, None).len();
    r.until_deltas(j.response_id, seen_before + 2).await?;

    bus.stop(conv, owner, rh_protocol::now_us()).await?;
    let end = r.until_end(j.response_id).await?;
    let Event::ResponseStopped { attempt, text, stopped_by, .. } = end else { bail!("ended with {end:?}") };
    assert_eq!((attempt, stopped_by), (1, Some(owner)));
    check_deltas(&r.seen, j.response_id, 1, &text)?;
    let full = simulated_text(&j);
    assert!(!text.is_empty() && text.len() < full.len() && full.starts_with(&text), "partial {text:?}");

    // Nothing of that response follows the stop.
    let later = job(conv, "sim-1", "/sim tokens=5 rate=500\nnext question");
    bus.publish_job(&later).await?;
    let end = r.until_end(later.response_id).await?;
    assert!(matches!(end, Event::ResponseCompleted { .. }), "a job asked after the stop runs: {end:?}");
    let after_stop: Vec<&Envelope> = r
        .seen
        .iter()
        .skip_while(|e| !matches!(e.event, Event::ResponseStopped { .. }))
        .skip(1)
        .filter(|e| e.event.response_id() == Some(j.response_id))
        .collect();
    assert!(after_stop.is_empty(), "events after the stop: {after_stop:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stopped_before_pickup_never_starts_generating() -> anyhow::Result<()> {
    let bus = Bus::start().await?;
    let conv = Uuid::new_v4();
    let owner = Uuid::new_v4();
    let j = job(conv, "sim-1", "/sim tokens=50 rate=100\nnever mind");
    bus.publish_job(&j).await?;
    // Stopped while no worker was running (or while the job waited in the queue).
    bus.stop(conv, owner, j.requested_at_us + 1).await?;
    let worker = bus.worker(&[]).await?;

    let mut r = bus.reader(conv).await?;
    let end = r.until_end(j.response_id).await?;
    let Event::ResponseStopped { attempt, text, stopped_by, .. } = end else { bail!("ended with {end:?}") };
    assert_eq!((attempt, text.as_str(), stopped_by), (1, "", Some(owner)));
    assert!(started_attempts(&r.seen, j.response_id).is_empty(), "no response.started: {:?}", r.seen);
    assert!(deltas(&r.seen, j.response_id, None).is_empty());
    rh_testkit::eventually(Duration::from_secs(5), "job acked", || async {
        (jobs_left(&bus).await.ok()? == 0).then_some(())
    })
    .await?;
    assert_eq!(metric(&worker, "jobs_started_total").await?, 0.0);
    assert_eq!(metric(&worker, "jobs_stopped_total").await?, 1.0);
    Ok(())
}
