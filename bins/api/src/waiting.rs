//! Answers no worker has started: after `--ai-wait-secs` in the `queued` state of their claim
//! ([`rh_bus::claims`]) every viewer is told the AI is unavailable (`response.delayed`, once per answer; the job
//! stays queued and starts when a worker returns), and they count in `responses_waiting_for_worker` and in
//! `/readyz`, which stays 200 (the api serves; pulling it out of a load balancer would help nobody) with the body
//! `ready, degraded: ai workers: N answers waiting with no worker`.
//!
//! It lives in the api because the api is what is still there when the worker pool is not (a watcher in the
//! workers would go down with them), and it already writes the `queued` claims. Each api process watches the
//! claims (KV `rh_stops`, keys `response.>`) and keeps only the queued ones in memory; several replicas announce
//! the same answer with the same event id (derived from the response id), which JetStream stores once.

use crate::state::AppState;
use async_nats::jetstream::kv;
use futures::StreamExt;
use rh_protocol::rpc::ResponseClaim;
use rh_protocol::{Envelope, Event, subjects};
use rh_telemetry::Health;
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

/// How often waiting answers are checked; the unavailable state shows at most this much after the wait.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Distinguishes a `response.delayed` event id from the response id it is derived from.
const DELAYED_EVENT_MASK: u128 = 0x5d3e_11a7_0000_0000_0000_0000_0000_0000;

#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error("watching the response claims: {0}")]
    Watch(#[from] kv::WatchError),
    #[error("the claims watch ended")]
    Ended,
    #[error("claims watch: {0}")]
    Next(#[from] kv::WatcherError),
}

/// One queued answer.
struct Queued {
    conversation_id: Uuid,
    queued_at_us: i64,
    announced: bool,
}

/// Runs for the life of the process; a broken watch is started again (with the current state of every claim).
pub async fn run(state: AppState, health: Health) {
    let wait = Duration::from_secs(state.settings.ai_wait_secs);
    loop {
        if let Err(e) = watch(&state, &health, wait).await {
            tracing::warn!(error = %e, "response claims watch failed; starting again");
        }
        report(&state, &health, 0);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn watch(state: &AppState, health: &Health, wait: Duration) -> Result<(), WatchError> {
    let mut entries = state.stops.watch_with_history(subjects::RESPONSE_CLAIMS_ALL).await?;
    let mut queued: HashMap<Uuid, Queued> = HashMap::new();
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            entry = entries.next() => match entry {
                Some(entry) => apply(&mut queued, entry?),
                None => return Err(WatchError::Ended),
            },
            _ = check.tick() => {
                let waiting = announce(state, &mut queued, wait).await;
                report(state, health, waiting);
            }
        }
    }
}

/// Keeps `queued` in step with one claim change: a queued claim is added, anything else removes it.
fn apply(queued: &mut HashMap<Uuid, Queued>, entry: kv::Entry) {
    let Some((conversation_id, response_id)) = subjects::parse_response_claim(&entry.key) else { return };
    let claim = match entry.operation {
        kv::Operation::Put => serde_json::from_slice::<ResponseClaim>(&entry.value).ok(),
        kv::Operation::Delete | kv::Operation::Purge => None,
    };
    match claim {
        Some(ResponseClaim::Queued { queued_at_us }) => {
            queued.entry(response_id).or_insert(Queued { conversation_id, queued_at_us, announced: false });
        }
        _ => {
            queued.remove(&response_id);
        }
    }
}

/// The gauge and `/readyz`'s degraded note.
fn report(state: &AppState, health: &Health, waiting: i64) {
    state.metrics.responses_waiting_for_worker.set(waiting);
    health.set_degraded("ai workers", (waiting > 0).then(|| format!("{waiting} answers waiting with no worker")));
}

/// Announces the answers that have waited longer than `wait` (once each); returns how many are waiting.
async fn announce(state: &AppState, queued: &mut HashMap<Uuid, Queued>, wait: Duration) -> i64 {
    let cutoff = rh_protocol::now_us() - i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
    let mut waiting = 0;
    for (response_id, q) in queued.iter_mut() {
        if q.queued_at_us > cutoff {
            continue;
        }
        waiting += 1;
        if q.announced {
            continue;
        }
        let mut envelope = Envelope::new(
            q.conversation_id,
            None,
            Event::ResponseDelayed { response_id: *response_id, queued_at_us: q.queued_at_us },
        );
        envelope.event_id = Uuid::from_u128(response_id.as_u128() ^ DELAYED_EVENT_MASK);
        match rh_bus::publish_event_acked(&state.js, &envelope).await {
            Ok(_) => {
                q.announced = true;
                tracing::warn!(%response_id, conversation = %q.conversation_id, "no worker has started this answer");
            }
            Err(e) => tracing::warn!(error = %e, %response_id, "could not announce a waiting answer"),
        }
    }
    waiting
}
