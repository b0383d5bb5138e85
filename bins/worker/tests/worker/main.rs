//! The worker binary against a real nats-server (JetStream): what a viewer of the conversation's subject sees.
//!
//! Each test starts its own nats-server, creates the topology, spawns `target/debug/worker` (built by
//! `cargo build -p worker`; `cargo test -p worker` builds it too), publishes `GenerateJob`s on `rh.jobs.generate`
//! and reads the conversation's events back from stream `RH_CONV`.
//!
//! This file holds the helpers; the tests are in `streaming` (what one job publishes, the models offered), `stop`,
//! `handover` (a killed worker, a long job, SIGTERM, the shutdown grace), `fencing` and `openai`.

mod fencing;
mod handover;
mod openai;
mod stop;
mod streaming;

use anyhow::{Context as _, bail, ensure};
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use rh_llm::{GenerateRequest, Simulated};
use rh_protocol::rpc::{ChatMessage, GenerateJob, StopControl};
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
