//! What one job publishes: `response.started`, gapless deltas whose text adds up, one end; the models the pool
//! offers, and a model it does not serve.

use super::*;
use rh_protocol::rpc::ModelList;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_streams_started_then_gapless_deltas_then_completed() -> anyhow::Result<()> {
    let bus = Bus::start().await?;
    let worker = bus.worker(&[]).await?;
    let conv = Uuid::new_v4();
    let mut r = bus.reader(conv).await?;
    let j = job(conv, "sim-2", "/sim tokens=60 rate=400\nWrite the launch plan");
    bus.publish_job(&j).await?;

    let first = r.next().await?;
    match &first.event {
        Event::ResponseStarted { response_id, message_id, model, attempt } => {
            assert_eq!(
                (*response_id, *message_id, model.as_str(), *attempt),
                (j.response_id, j.message_id, "sim-2", 1)
            );
        }
        other => bail!("first event is {other:?}"),
    }
    assert_eq!(first.conversation_id, conv);
    assert_eq!(first.actor, None, "the AI has no actor");
    let end = r.until_end(j.response_id).await?;
    let Event::ResponseCompleted { attempt, model, text, .. } = end else { bail!("ended with {end:?}") };
    assert_eq!((attempt, model.as_str()), (1, "sim-2"));
    assert_eq!(text, simulated_text(&j), "same prompt, same text");
    let n = check_deltas(&r.seen, j.response_id, 1, &text)?;
    // 60 tokens at 400/s is ~150 ms: coalescing every 30 ms gives a handful of deltas, not one per token.
    assert!((2..40).contains(&n), "{n} deltas");

    // The same prompt in another conversation gives the same text again.
    let conv2 = Uuid::new_v4();
    let mut r2 = bus.reader(conv2).await?;
    let j2 = GenerateJob { conversation_id: conv2, response_id: Uuid::now_v7(), ..j.clone() };
    bus.publish_job(&j2).await?;
    let Event::ResponseCompleted { text: text2, .. } = r2.until_end(j2.response_id).await? else {
        bail!("not completed")
    };
    assert_eq!(text2, text);

    // The pool answers which models it serves.
    let models: ModelList =
        rh_bus::request(&bus.client, subjects::WORKER_MODELS, &serde_json::json!({}), Duration::from_secs(5)).await?;
    let ids: Vec<&str> = models.models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["sim-1", "sim-2"]);
    assert!(models.models.iter().all(|m| m.provider == "simulated"));

    rh_testkit::eventually(Duration::from_secs(5), "jobs acked", || async {
        (jobs_left(&bus).await.ok()? == 0).then_some(())
    })
    .await?;
    assert_eq!(metric(&worker, "jobs_completed_total").await?, 2.0);
    assert!(metric(&worker, "deltas_published_total").await? >= 4.0);
    assert_eq!(metric(&worker, "tokens_generated_total").await?, 120.0);
    assert_eq!(metric(&worker, "time_to_first_token_seconds_count").await?, 2.0);
    let ready = reqwest::get(format!("{}/readyz", worker.http_url())).await?.status();
    assert!(ready.is_success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_model_fails_the_response() -> anyhow::Result<()> {
    let bus = Bus::start().await?;
    let _worker = bus.worker(&[("RH_SIM_MODELS", "tiny")]).await?;
    let conv = Uuid::new_v4();
    let mut r = bus.reader(conv).await?;
    let j = job(conv, "sim-1", "hello");
    bus.publish_job(&j).await?;
    let end = r.until_end(j.response_id).await?;
    let Event::ResponseFailed { error, text, attempt, .. } = end else { bail!("ended with {end:?}") };
    assert!(error.contains("unknown model"), "{error}");
    assert_eq!((text.as_str(), attempt), ("", 1));
    let models: ModelList =
        rh_bus::request(&bus.client, subjects::WORKER_MODELS, &serde_json::json!({}), Duration::from_secs(5)).await?;
    assert_eq!(models.models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["tiny"]);
    Ok(())
}
