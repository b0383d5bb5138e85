//! One generation job, from pickup to the final ack.
//!
//! The order of what a viewer sees for one attempt is: `response.started{attempt}`, `response.delta{attempt,
//! index 0..}` with no gap, then exactly one of `response.completed` / `response.failed` / `response.stopped`.
//! The job message is acked only after all of those are stored, so a worker that dies at any point leaves the job
//! to be redelivered, and the next worker starts a new attempt (its `response.started` tells viewers to drop the
//! partial text of the earlier one). The job is kept in progress (in-progress acks) from pickup to its ack, so it
//! is not delivered again while it runs; if it is anyway (the consumer's leader changed, or the process stalled
//! past `ack_wait`), the later attempt takes the claim and the earlier one publishes nothing more ([`crate::claim`]).
//!
//! At pickup the worker takes the response's claim ([`rh_bus::claims`]): `queued` → `running` by compare-and-set.
//! If the api got there first (the answer was stopped while no worker held it, and the api ended it), or the
//! response has ended already (a delivery after a lost ack), the job is acked and dropped without an event; a
//! stop asked while an earlier attempt ran (`stop_requested`) ends it as stopped without generating. The claim
//! is removed once the end is stored, before the job is acked.
//!
//! | module | what it does |
//! |---|---|
//! | this one | pickup (claim, stop record, attempts) and the generation loop: tokens, stops, coalescing, shutdown |
//! | `stream` | the provider's token stream as `select!` branches, and the deltas it becomes |
//! | `end` | how a job ends: the end event, waiting until it is stored, releasing the claim, the ack |

mod end;
mod stream;

use crate::claim::{self, Pickup};
use crate::metrics::Metrics;
use crate::publisher::Publisher;
use async_nats::jetstream::{self, AckKind, kv};
use end::{Done, End, Requeue, dropped, finish};
use futures::StreamExt;
use rh_llm::{GenerateRequest, Provider, TokenStream};
use rh_protocol::rpc::{GenerateJob, StopControl};
use rh_protocol::{Envelope, Event, subjects};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stream::{describe, flush, next_token, sleep_until, started_stream};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

/// After this many deliveries a job is given up with `response.failed` instead of being tried again (a job that
/// keeps killing workers must not loop forever).
pub const MAX_ATTEMPTS: u32 = 10;

/// A job for a model this worker does not serve goes back to the pool (after [`HAND_ON_DELAY`], so that another
/// worker's pull request takes it) this many deliveries at most; then the worker takes it and fails it with the
/// reason, as when no worker serves the model.
const HAND_ON_LIMIT: u32 = 50;
const HAND_ON_DELAY: Duration = Duration::from_millis(50);

/// Whether `provider` serves `model` (one with no list accepts anything its upstream does).
fn serves(provider: &dyn Provider, model: &str) -> bool {
    let models = provider.models();
    models.is_empty() || models.iter().any(|m| m == model)
}

/// What every job needs; shared by all jobs of the process.
pub struct JobContext {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    /// Where the events go ([`crate::publisher`] says why not on `client`).
    pub publishing: crate::publisher::Connection,
    pub stops: kv::Store,
    pub provider: Arc<dyn Provider>,
    pub metrics: Metrics,
    pub ack_wait: Duration,
    pub coalesce: rh_llm::Coalesce,
}

/// A stop as recorded in KV `rh_stops` or published on `rh.ctl.<conv>.stop`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stop {
    pub at_us: i64,
    pub by: Option<Uuid>,
    /// Only this answer; `None`: every answer of the conversation requested before `at_us`.
    pub response_id: Option<Uuid>,
}

/// Reads a stop record: a [`StopControl`] as JSON, or just the time in µs (as text or a JSON number).
pub fn parse_stop(bytes: &[u8]) -> Option<Stop> {
    if let Ok(c) = serde_json::from_slice::<StopControl>(bytes) {
        return Some(Stop { at_us: c.at_us, by: Some(c.requested_by), response_id: c.response_id });
    }
    let text = std::str::from_utf8(bytes).ok()?.trim().trim_matches('"');
    text.parse::<i64>().ok().map(|at_us| Stop { at_us, by: None, response_id: None })
}

/// Runs `msg` (a [`GenerateJob`]) to its end. `abort` is cancelled when the process gives up on running jobs
/// (shutdown grace period over): the job is then handed back at once for another worker to take.
pub async fn run(ctx: Arc<JobContext>, msg: jetstream::Message, abort: CancellationToken) {
    let delivered = msg.info().map(|i| u32::try_from(i.delivered.max(1)).unwrap_or(u32::MAX)).unwrap_or(1);
    let job: GenerateJob = match serde_json::from_slice(&msg.payload) {
        Ok(job) => job,
        Err(e) => {
            // Not a job we can ever do: terminate it rather than redeliver it forever.
            tracing::error!(error = %e, "malformed generation job, terminating it");
            ctx.metrics.jobs_failed.inc();
            if let Err(e) = msg.ack_with(AckKind::Term).await {
                tracing::warn!(error = %e, "could not terminate the malformed job");
            }
            return;
        }
    };
    if !serves(ctx.provider.as_ref(), &job.model) && delivered < HAND_ON_LIMIT {
        // The api offers every worker's models: another worker of the pool serves this one.
        tracing::debug!(model = %job.model, delivered, "not served here, handing the job on");
        ctx.metrics.jobs_handed_on.inc();
        if let Err(e) = msg.ack_with(AckKind::Nak(Some(HAND_ON_DELAY))).await {
            tracing::warn!(error = %e, "could not hand the job on; it comes back after ack_wait");
        }
        return;
    }
    let (conversation, response) = (job.conversation_id, job.response_id);
    let span = tracing::info_span!(
        "job",
        %conversation,
        %response,
        delivered,
        attempt = tracing::field::Empty,
        trace_id = tracing::field::Empty
    );
    // The api's trace goes on here; every event published inside the span carries it on to the edges.
    rh_telemetry::trace::follow_nats(&span, msg.headers.as_ref());
    async move {
        ctx.metrics.jobs_running.inc();
        let progress = keep_in_progress(&msg, ctx.ack_wait);
        let end = generate(&ctx, &msg, &job, abort).await;
        drop(progress);
        ctx.metrics.jobs_running.dec();
        if let Ok(Done::Superseded) = end {
            // Neither ack nor nak: the message belongs to the later delivery now.
            ctx.metrics.jobs_superseded.inc();
            tracing::warn!("a later attempt took the response over while this one ran: it publishes the end");
        }
        if let Err(why) = end {
            ctx.metrics.jobs_requeued.inc();
            tracing::warn!(reason = %why, "handing the job back for redelivery");
            if let Err(e) = msg.ack_with(AckKind::Nak(why.delay())).await {
                tracing::warn!(error = %e, "could not nak the job; it comes back after ack_wait");
            }
        }
    }
    .instrument(span)
    .await
}

/// Sends in-progress acks every third of `ack_wait` until dropped: from pickup to the ack or nak, not only while
/// tokens flow. A pickup (a new publishing connection, the claim, the stop record) slower than `ack_wait` on a busy
/// machine would otherwise have JetStream deliver the job again while it still runs: two attempts at once.
fn keep_in_progress(msg: &jetstream::Message, ack_wait: Duration) -> AbortOnDrop {
    let msg = msg.clone();
    AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(ack_wait / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = msg.ack_with(AckKind::Progress).await {
                tracing::warn!(error = %e, "in-progress ack failed");
            }
        }
    }))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Everything but the requeue: `Err` asks the caller to nak the message.
async fn generate(
    ctx: &JobContext,
    msg: &jetstream::Message,
    job: &GenerateJob,
    abort: CancellationToken,
) -> Result<Done, Requeue> {
    let conv = job.conversation_id;
    let picked_up = Instant::now();
    // Subscribe before reading KV: a stop that lands between the two is then seen on the subject.
    let mut stop_sub = ctx.client.subscribe(subjects::stop_control(conv)).await?;
    let events = ctx.publishing.context().await?;
    let mut publisher = Publisher::new(events, ctx.metrics.publish_ack_seconds.clone());

    let attempt = match claim::take(ctx, job).await? {
        Pickup::Ours(attempt) => attempt,
        Pickup::EndedByApi => {
            tracing::info!("stopped before any worker took it, and ended by the api: dropping the job");
            claim::release(ctx, job, 0).await;
            return Ok(dropped(ctx, msg).await);
        }
        Pickup::Ended => {
            tracing::info!("the response has ended already (an earlier delivery's ack was lost): dropping the job");
            return Ok(dropped(ctx, msg).await);
        }
        Pickup::StopRequested { by, attempt } => {
            tracing::info!("stop requested while an earlier attempt ran, not generating");
            return finish(ctx, msg, job, attempt, &mut publisher, String::new(), End::Stopped(Some(by))).await;
        }
    };
    tracing::Span::current().record("attempt", attempt);

    // A stop recorded before the pickup (or before a crash) ends the job without generating anything.
    match ctx.stops.get(conv.to_string()).await {
        Ok(Some(bytes)) => {
            if let Some(stop) = parse_stop(&bytes).filter(|s| s.at_us > job.requested_at_us) {
                tracing::info!("stop recorded before pickup, not generating");
                return finish(ctx, msg, job, attempt, &mut publisher, String::new(), End::Stopped(stop.by)).await;
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not read rh_stops; generating anyway"),
    }

    if attempt > MAX_ATTEMPTS {
        let error = format!("gave up after {MAX_ATTEMPTS} attempts");
        return finish(ctx, msg, job, attempt, &mut publisher, String::new(), End::Failed(error)).await;
    }

    ctx.metrics.jobs_started.inc();
    tracing::info!(model = %job.model, "generating");
    let started = Envelope::new(
        conv,
        None,
        Event::ResponseStarted {
            response_id: job.response_id,
            message_id: job.message_id,
            model: job.model.clone(),
            attempt,
        },
    );
    publisher.publish(started).await?;

    let mut start = Some(ctx.provider.generate(GenerateRequest::from(job)));
    let mut tokens: Option<TokenStream> = None;
    let mut text = String::new();
    let mut pending = String::new();
    let mut index: u32 = 0;
    let mut flush_at: Option<tokio::time::Instant> = None;
    let mut stop_open = true;
    let mut first_token = true;

    let end = loop {
        tokio::select! {
            biased;
            _ = abort.cancelled() => {
                break End::Requeue(Requeue::ShuttingDown);
            }
            e = publisher.failed() => break End::Requeue(e.into()),
            m = stop_sub.next(), if stop_open => match m {
                Some(m) => match parse_stop(&m.payload) {
                    Some(stop) if stop.response_id.is_some_and(|r| r != job.response_id) => {}
                    Some(stop) if stop.response_id.is_some() || stop.at_us > job.requested_at_us => {
                        break End::Stopped(stop.by)
                    }
                    Some(_) => tracing::debug!("ignoring a stop older than the job"),
                    None => tracing::warn!("unreadable stop control message"),
                },
                None => stop_open = false,
            },
            r = started_stream(&mut start), if start.is_some() => {
                start = None;
                match r {
                    Ok(stream) => tokens = Some(stream),
                    Err(e) => break End::Failed(describe(&e)),
                }
            }
            _ = sleep_until(flush_at), if flush_at.is_some() => {
                flush_at = None;
                flush(ctx, &mut publisher, job, attempt, &mut index, &mut pending).await?;
            }
            t = next_token(&mut tokens), if tokens.is_some() => match t {
                Some(Ok(token)) => {
                    if first_token {
                        first_token = false;
                        ctx.metrics.time_to_first_token.observe(picked_up.elapsed().as_secs_f64());
                    }
                    ctx.metrics.tokens_generated.inc();
                    text.push_str(&token);
                    pending.push_str(&token);
                    if flush_at.is_none() {
                        let streaming = ctx.metrics.jobs_running.get().max(0) as u64;
                        flush_at = Some(tokio::time::Instant::now() + ctx.coalesce.window(streaming));
                    }
                }
                Some(Err(e)) => break End::Failed(describe(&e)),
                None => break End::Completed,
            },
        }
    };
    // Dropping the token stream cancels the generation (closes the HTTP request).
    drop(tokens);
    drop(start);
    drop(stop_sub);
    if let End::Requeue(why) = end {
        return Err(why);
    }
    // Whatever was generated goes out as a last delta, so the deltas always add up to the final text.
    flush(ctx, &mut publisher, job, attempt, &mut index, &mut pending).await?;
    finish(ctx, msg, job, attempt, &mut publisher, text, end).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_records_in_either_shape() {
        let by = Uuid::new_v4();
        let c = StopControl { conversation_id: Uuid::new_v4(), requested_by: by, at_us: 42, response_id: None };
        let json = serde_json::to_vec(&c).unwrap_or_default();
        assert_eq!(parse_stop(&json), Some(Stop { at_us: 42, by: Some(by), response_id: None }));
        assert_eq!(
            parse_stop(b"1700000000000000"),
            Some(Stop { at_us: 1_700_000_000_000_000, by: None, response_id: None })
        );
        assert_eq!(parse_stop(b"\"17\""), Some(Stop { at_us: 17, by: None, response_id: None }));
        assert_eq!(parse_stop(b"nope"), None);
    }
}
