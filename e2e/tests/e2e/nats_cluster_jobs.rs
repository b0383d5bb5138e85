//! Attempt fencing across a leader change of `RH_JOBS`'s worker consumer (issue 10), on the 3-node cluster and
//! stack of `nats_cluster.rs`.
//!
//! The server that leads the consumer `workers` is killed (SIGKILL) while two answers run. Until the survivors
//! elect a new leader (raft's election timeout, 4 to 9 s) the consumer has none: in-progress acks and acks go
//! nowhere. The new leader finds both jobs past their ack wait (2 s) and delivers them again. What that proves,
//! on every run:
//!
//! - **The fence.** The long answer's first attempt is still generating (slowly, on worker A) when its
//!   redelivery reaches worker B, which takes the response's claim as attempt 2 and, generating fast, ends it
//!   first. Attempt 1, finding at its end that a later attempt has ended the response, publishes no end
//!   (`relayhub_worker_jobs_superseded_total`).
//! - **A lost ack.** The other answer is stopped right after the kill, so it ends while the consumer has no
//!   leader and its ack is lost; its redelivery finds the claim removed and is dropped
//!   (`relayhub_worker_jobs_dropped_total`) instead of being answered again.
//!
//! Every service connects to the two other servers only, and the meta group, the streams and the audit writer's
//! consumer are led by another server (moved there by leader stepdowns), so the kill takes nothing else: a broken
//! publishing connection would end an attempt by itself (requeue), and `nats_cluster.rs` covers reconnects.
//!
//! Checked from each viewer's side (three sockets on two edges) and in PostgreSQL: every response ends exactly
//! once, its `response.started` attempts strictly increase, the final text is the transcript's, and the
//! transcript holds each message and response once.

use crate::helpers::*;
use crate::nats_cluster::{Audience, REPLICAS, STREAMS, audience, spawn_worker, start_services};
use rh_protocol::{Event, subjects};
use rh_testkit::{Api, Group, NatsCluster, Service, Session, eventually};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

const WORKERS: Group<'static> = Group::Consumer(subjects::STREAM_JOBS, subjects::WORKER_CONSUMER);
/// The long answer: 25 s on worker A (10 tokens/s), a quarter of a second on worker B.
const LONG: &str = "/sim tokens=250\nthe long answer";
/// The answer stopped after the kill: its own rate, on whichever worker.
const STOPPED: &str = "/sim tokens=400 rate=20\nthe answer that is stopped";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_consumers_new_leader_delivers_again_is_still_answered_once() -> anyhow::Result<()> {
    let mut cluster = NatsCluster::start(REPLICAS).await?;
    let js = async_nats::jetstream::new(cluster.client().await?);
    // The server that leads the meta group leads everything else too; the next one is made to lead the workers
    // consumer, and killed. Every service connects to the two others only.
    let home = cluster.leader(&js, Group::Meta).await?;
    let victim = (home + 1) % REPLICAS;
    let survivors = cluster.url_without(victim).to_owned();
    let s = start_services(&survivors).await?;
    let Audience { api, owner, conv, mut viewers } = audience(&s).await?;
    // Worker A alone, one job at a time, slow: it takes the long answer.
    let a = spawn_worker(&survivors, &[("RH_WORKER_CONCURRENCY", "1"), ("RH_SIM_TOKENS_PER_SEC", "10")]).await?;
    for stream in STREAMS {
        cluster.move_leader(&js, Group::Stream(stream), home).await?;
    }
    cluster.move_leader(&js, Group::Consumer(subjects::STREAM_AUDIT, subjects::AUDIT_CONSUMER), home).await?;
    cluster.move_leader(&js, WORKERS, victim).await?;
    let mut asked = HashMap::new();
    let long = ask(&api, &owner, conv, LONG, &mut asked).await?;
    viewers[0].until_deltas(long, 2).await?;
    // Worker B, fast, takes the other answer (A is busy) and, later, the long answer's redelivery.
    let b = spawn_worker(&survivors, &[("RH_WORKER_CONCURRENCY", "1"), ("RH_SIM_TOKENS_PER_SEC", "1000")]).await?;
    let stopped = ask(&api, &owner, conv, STOPPED, &mut asked).await?;
    viewers[0].until_deltas(stopped, 2).await?;

    assert_eq!(cluster.leader(&js, WORKERS).await?, victim, "the consumer's leader, from its info");
    let killed = Instant::now();
    cluster.kill(victim).await;
    let (status, body) = api
        .as_user(&owner)
        .post(&format!("/conversations/{conv}/stop"), serde_json::json!({"response_id": stopped}))
        .await?;
    assert!(status.is_success(), "stop: {status} {body}");
    viewers[0].until_response_end(stopped).await?;
    let stop_ended = killed.elapsed();
    let elected = eventually(Duration::from_secs(30), "a new leader of the workers consumer", || async {
        cluster.leader(&js, WORKERS).await.ok().filter(|l| *l != victim).map(|_| killed.elapsed())
    })
    .await?;
    eprintln!(
        "killed rh-{victim}: the stopped answer ended after {stop_ended:?}, a new consumer leader by {elected:?}"
    );

    // Settled: no job waiting or unacked, neither worker generating (the first attempt of the long answer runs to
    // its end).
    let workers = [&a, &b];
    eventually(Duration::from_secs(60), "every job acked and both workers idle", || async {
        let mut consumer = js
            .get_stream(subjects::STREAM_JOBS)
            .await
            .ok()?
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(subjects::WORKER_CONSUMER)
            .await
            .ok()?;
        let info = consumer.info().await.ok()?;
        let running = sum(&workers, "jobs_running").await?;
        (info.num_pending == 0 && info.num_ack_pending == 0 && running == 0.0).then_some(())
    })
    .await?;
    eprintln!("settled {:?} after the kill", killed.elapsed());
    // A last answer: once a viewer has its end, it has everything published before.
    let last = ask(&api, &owner, conv, "/sim tokens=5 rate=100\nlast", &mut asked).await?;

    for v in &mut viewers {
        v.until_response_end(last).await?;
        for rid in [long, stopped, last] {
            let ends: Vec<&Event> = events_of(v, rid).filter(|e| e.is_response_end()).collect();
            assert_eq!(ends.len(), 1, "response {rid} ends once: {ends:?}");
            let started = started_attempts(v, rid);
            assert!(started.windows(2).all(|w| w[0] < w[1]), "response {rid} attempts {started:?}");
        }
        // The long answer restarted once, and its first attempt went on streaming after the second started.
        assert_eq!(started_attempts(v, long), [1, 2]);
        let restart = v.seen.iter().position(|s| started_as(&s.event.event, long, 2)).unwrap_or(v.seen.len());
        let overlapping = v.seen[restart..].iter().any(|s| is_delta_of(&s.event.event, long, 1));
        assert!(overlapping, "attempt 1 published deltas after attempt 2 started");
        assert_eq!(check_response(&v.seen, long)?, stored(&api, &owner, conv, long, "complete").await?);
        assert_eq!(started_attempts(v, stopped), [1]);
        assert_eq!(stopped_text(v, stopped)?, stored(&api, &owner, conv, stopped, "stopped").await?);
    }
    assert_stored_exactly_once_in(&s.db, conv, &asked).await?;
    // What happened on the workers: the long answer's first attempt was superseded, and the stopped answer's
    // delivery after its lost ack was dropped.
    assert_eq!(sum(&workers, "jobs_superseded_total").await, Some(1.0), "attempts superseded");
    assert_eq!(sum(&workers, "jobs_dropped_total").await, Some(1.0), "deliveries dropped");
    Ok(())
}

/// Sends `text` as `who`; records the response's and the message's ids in `asked`.
async fn ask(
    api: &Api,
    who: &Session,
    conv: Uuid,
    text: &str,
    asked: &mut HashMap<Uuid, Uuid>,
) -> anyhow::Result<Uuid> {
    let reply = api.send_message(who, conv, text).await?;
    let rid = response_id(&reply)?;
    asked.insert(rid, Uuid::parse_str(reply["message_id"].as_str().unwrap_or_default())?);
    Ok(rid)
}

/// The sum of a counter over `workers`.
async fn sum(workers: &[&Service], name: &str) -> Option<f64> {
    let mut total = 0.0;
    for w in workers {
        let text = reqwest::get(format!("{}/metrics", w.http_url())).await.ok()?.text().await.ok()?;
        let line = format!("relayhub_worker_{name} ");
        total += text.lines().find_map(|l| l.strip_prefix(&line))?.trim().parse::<f64>().ok()?;
    }
    Some(total)
}

fn events_of(v: &Viewer, rid: Uuid) -> impl Iterator<Item = &Event> {
    v.seen.iter().map(|s| &s.event.event).filter(move |e| e.response_id() == Some(rid))
}

fn started_attempts(v: &Viewer, rid: Uuid) -> Vec<u32> {
    events_of(v, rid)
        .filter_map(|e| match e {
            Event::ResponseStarted { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect()
}

fn started_as(e: &Event, rid: Uuid, attempt: u32) -> bool {
    matches!(e, Event::ResponseStarted { response_id, attempt: a, .. } if *response_id == rid && *a == attempt)
}

fn is_delta_of(e: &Event, rid: Uuid, attempt: u32) -> bool {
    matches!(e, Event::ResponseDelta { response_id, attempt: a, .. } if *response_id == rid && *a == attempt)
}

/// The text of a stopped response as a viewer has it: its deltas, which must add up to the end's text.
fn stopped_text(v: &Viewer, rid: Uuid) -> anyhow::Result<String> {
    let deltas: String = events_of(v, rid)
        .filter_map(|e| match e {
            Event::ResponseDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let end = events_of(v, rid).find(|e| e.is_response_end());
    let Some(Event::ResponseStopped { text, .. }) = end else { anyhow::bail!("ended with {end:?}") };
    anyhow::ensure!(*text == deltas, "stopped with {text:?}, deltas {deltas:?}");
    Ok(text.clone())
}

/// The response's text in the transcript once its status is `status`.
async fn stored(api: &Api, who: &Session, conv: Uuid, rid: Uuid, status: &str) -> anyhow::Result<String> {
    eventually(WAIT, "the response in the transcript", || async {
        let history = api.conversation(who, conv).await.ok()?;
        let m = history["messages"].as_array()?.iter().find(|m| m["id"] == rid.to_string())?.clone();
        (m["status"] == status).then(|| m["text"].as_str().unwrap_or_default().to_owned())
    })
    .await
}
