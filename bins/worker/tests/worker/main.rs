//! The worker binary against a real nats-server (JetStream): what a viewer of the conversation's subject sees.
//!
//! Each test starts its own nats-server, creates the topology, spawns `target/debug/worker` (built by
//! `cargo build -p worker`; `cargo test -p worker` builds it too), publishes `GenerateJob`s on `rh.jobs.generate`
//! and reads the conversation's events back from stream `RH_CONV`.

mod fencing;
mod openai;

use anyhow::{Context as _, bail, ensure};
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use rh_llm::{GenerateRequest, Simulated};
use rh_protocol::rpc::{ChatMessage, GenerateJob, ModelList, StopControl};
use rh_protocol::{Envelope, Event, subjects};
use rh_testkit::{NatsServer, Service};
use std::time::Duration;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(30);

/// A nats-server with RelayHub's topology.
pub struct Bus {
    pub nats: NatsServer,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
}

impl Bus {
    pub async fn start() -> anyhow::Result<Bus> {
        let nats = NatsServer::start().await?;
        let js = nats.jetstream().await?;
        let client = js.client();
        Ok(Bus { nats, client, js })
    }

    pub async fn worker(&self, env: &[(&str, &str)]) -> anyhow::Result<Service> {
        let mut all = vec![("RH_NATS_URL", self.nats.url()), ("RH_WORKER_OPS_LISTEN", "127.0.0.1:0")];
        all.extend_from_slice(env);
        Service::spawn("worker", &all).await
    }

    pub async fn publish_job(&self, job: &GenerateJob) -> anyhow::Result<()> {
        self.js.publish(subjects::JOBS_GENERATE, serde_json::to_vec(job)?.into()).await?.await?;
        Ok(())
    }

    /// Records a stop the way the api does: KV `rh_stops[conv]`, then `StopControl` on `rh.ctl.<conv>.stop`.
    pub async fn stop(&self, conv: Uuid, by: Uuid, at_us: i64) -> anyhow::Result<()> {
        let control = StopControl { conversation_id: conv, requested_by: by, at_us, response_id: None };
        let kv = self.js.get_key_value(subjects::KV_STOPS).await?;
        kv.put(conv.to_string(), serde_json::to_vec(&control)?.into()).await?;
        self.client.publish(subjects::stop_control(conv), serde_json::to_vec(&control)?.into()).await?;
        self.client.flush().await?;
        Ok(())
    }

    /// Reads conversation `conv`'s events from the start of the stream.
    pub async fn reader(&self, conv: Uuid) -> anyhow::Result<Reader> {
        let stream = self.js.get_stream(subjects::STREAM_CONV).await?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig { filter_subject: subjects::conv_all(conv), ..Default::default() })
            .await?;
        Ok(Reader { messages: consumer.messages().await?, seen: Vec::new() })
    }
}

pub struct Reader {
    messages: pull::Ordered,
    pub seen: Vec<Envelope>,
}

impl Reader {
    /// The next event, or an error after `WAIT`.
    pub async fn next(&mut self) -> anyhow::Result<Envelope> {
        let msg = tokio::time::timeout(WAIT, self.messages.next())
            .await
            .context("no event in time")?
            .context("event stream ended")??;
        let env: Envelope = serde_json::from_slice(&msg.payload)?;
        ensure!(
            msg.subject.ends_with(if env.event.is_delta() { ".delta" } else { ".event" }),
            "subject {}",
            msg.subject
        );
        self.seen.push(env.clone());
        Ok(env)
    }

    /// Reads until `response_id` ends (completed / failed / stopped) and returns that end event.
    pub async fn until_end(&mut self, response_id: Uuid) -> anyhow::Result<Event> {
        loop {
            let e = self.next().await?.event;
            if e.is_response_end() && e.response_id() == Some(response_id) {
                return Ok(e);
            }
        }
    }

    /// Reads until `n` deltas of `response_id` have been seen.
    pub async fn until_deltas(&mut self, response_id: Uuid, n: usize) -> anyhow::Result<()> {
        while deltas(&self.seen, response_id, None).len() < n {
            self.next().await?;
        }
        Ok(())
    }
}

/// `(attempt, index, text)` of the deltas of `response_id` (of one attempt if given), in stream order.
pub fn deltas(seen: &[Envelope], rid: Uuid, of_attempt: Option<u32>) -> Vec<(u32, u32, String)> {
    seen.iter()
        .filter_map(|e| match &e.event {
            Event::ResponseDelta { response_id, attempt, index, text, .. }
                if *response_id == rid && of_attempt.is_none_or(|a| a == *attempt) =>
            {
                Some((*attempt, *index, text.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The attempts of every `response.started` of `rid`, in stream order.
pub fn started_attempts(seen: &[Envelope], rid: Uuid) -> Vec<u32> {
    seen.iter()
        .filter_map(|e| match &e.event {
            Event::ResponseStarted { response_id, attempt, .. } if *response_id == rid => Some(*attempt),
            _ => None,
        })
        .collect()
}

/// Checks what a client relies on for one attempt: deltas indexed 0..n without gap or duplicate whose
/// concatenation is `final_text`. Returns the number of deltas.
pub fn check_deltas(seen: &[Envelope], rid: Uuid, attempt: u32, final_text: &str) -> anyhow::Result<usize> {
    let ds = deltas(seen, rid, Some(attempt));
    for (i, (_, index, _)) in ds.iter().enumerate() {
        if *index as usize != i {
            bail!("delta {i} has index {index}: {:?}", ds.iter().map(|d| d.1).collect::<Vec<_>>());
        }
    }
    let joined: String = ds.iter().map(|d| d.2.as_str()).collect();
    ensure!(joined == final_text, "deltas {joined:?} != final text {final_text:?}");
    Ok(ds.len())
}

pub fn job(conv: Uuid, model: &str, text: &str) -> GenerateJob {
    GenerateJob {
        conversation_id: conv,
        response_id: Uuid::now_v7(),
        message_id: Uuid::now_v7(),
        model: model.into(),
        temperature: None,
        max_tokens: None,
        messages: vec![
            ChatMessage { role: "system".into(), content: "You are helpful.".into() },
            ChatMessage { role: "user".into(), content: text.into() },
        ],
        requested_by: Uuid::new_v4(),
        requested_at_us: rh_protocol::now_us(),
    }
}

/// The text the simulated provider produces for `job` (deterministic).
pub fn simulated_text(job: &GenerateJob) -> String {
    Simulated::default().tokens_for(&GenerateRequest::from(job)).concat()
}

/// The value of metric `name` on the worker's /metrics.
pub async fn metric(worker: &Service, name: &str) -> anyhow::Result<f64> {
    rh_testkit::init_crypto();
    let body = reqwest::get(format!("{}/metrics", worker.http_url())).await?.text().await?;
    let full = format!("relayhub_worker_{name} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&full))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("metric {full} not in {body}"))
}

/// Jobs still waiting or unacked in `RH_JOBS`.
pub async fn jobs_left(bus: &Bus) -> anyhow::Result<u64> {
    let mut stream = bus.js.get_stream(subjects::STREAM_JOBS).await?;
    Ok(stream.info().await?.state.messages)
}

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
