//! How a job ends: its end event, stored with everything before it, then the claim released and the job acked.

use super::JobContext;
use crate::claim;
use crate::publisher::Publisher;
use async_nats::jetstream::{self, AckKind};
use rh_protocol::rpc::GenerateJob;
use rh_protocol::{Envelope, Event};
use std::time::Duration;
use uuid::Uuid;

/// How a job ended.
pub(super) enum End {
    Completed,
    Failed(String),
    Stopped(Option<Uuid>),
    /// Hand the job back to JetStream without an end event (publishing broke, or shutdown): `delay` before the
    /// next delivery.
    Requeue {
        reason: String,
        delay: Option<Duration>,
    },
}

/// How a job that was not handed back ended.
pub(super) enum Done {
    /// Its end is published and the message acked (or it was dropped: ended by the api, or ended already).
    Ended,
    /// A later attempt holds the response's claim, or has ended the response (JetStream delivered the job again
    /// while this attempt ran): it publishes the end, this one publishes nothing more.
    Superseded,
}

/// Publishes the end event, waits until everything of this attempt is stored, then acks the job.
pub(super) async fn finish(
    ctx: &JobContext,
    msg: &jetstream::Message,
    job: &GenerateJob,
    attempt: u32,
    publisher: &mut Publisher,
    text: String,
    end: End,
) -> Result<Done, (String, Option<Duration>)> {
    let response_id = job.response_id;
    let (event, counter) = match end {
        End::Completed => (
            Event::ResponseCompleted { response_id, attempt, model: job.model.clone(), text },
            &ctx.metrics.jobs_completed,
        ),
        End::Failed(error) => {
            tracing::warn!(%error, "response failed");
            (Event::ResponseFailed { response_id, attempt, error, text }, &ctx.metrics.jobs_failed)
        }
        End::Stopped(stopped_by) => {
            (Event::ResponseStopped { response_id, attempt, text, stopped_by }, &ctx.metrics.jobs_stopped)
        }
        End::Requeue { reason, delay } => return Err((reason, delay)),
    };
    if claim::superseded(ctx, job, attempt).await {
        return Ok(Done::Superseded);
    }
    let kind = event.kind();
    let retry = Some(Duration::from_secs(1));
    publisher.publish(&Envelope::new(job.conversation_id, None, event)).await.map_err(|e| (e, retry))?;
    publisher.finish().await.map_err(|e| (e, retry))?;
    counter.inc();
    tracing::info!(end = kind, "response ended");
    claim::release(ctx, job, attempt).await;
    ack(ctx, msg).await;
    Ok(Done::Ended)
}

/// Acks a job that ends without an event of ours.
pub(super) async fn dropped(ctx: &JobContext, msg: &jetstream::Message) -> Done {
    ctx.metrics.jobs_dropped.inc();
    ack(ctx, msg).await;
    Done::Ended
}

/// Acks the job and waits for the consumer's answer, so we know it will not come back. As a request, not
/// async-nats's double ack, which takes any reply for that answer: also the "no responders" of a consumer that
/// has no leader. Unconfirmed, the job may be delivered again; that delivery finds the claim removed and is dropped.
async fn ack(ctx: &JobContext, msg: &jetstream::Message) {
    let Some(reply) = msg.reply.clone() else { return };
    if let Err(e) = ctx.client.request(reply, AckKind::Ack.into()).await {
        tracing::warn!(error = %e, "job ack not confirmed; it may be delivered again, and then dropped");
    }
}
