//! How a job ends: its end event, stored after everything before it is, then the claim released and the job acked.

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
    /// Hand the job back to JetStream without an end event.
    Requeue(Requeue),
}

/// Why a job goes back to JetStream without an end event.
#[derive(Debug, thiserror::Error)]
pub(super) enum Requeue {
    #[error("subscribing to stop control: {0}")]
    StopControl(#[from] async_nats::SubscribeError),
    #[error(transparent)]
    Connect(#[from] crate::publisher::ConnectError),
    #[error(transparent)]
    Claim(#[from] crate::claim::TakeError),
    #[error(transparent)]
    Publish(#[from] crate::publisher::PublishFailure),
    #[error("shutting down")]
    ShuttingDown,
}

impl Requeue {
    /// Before the next delivery: none when this worker shuts down (another one takes the job), a second otherwise
    /// (the broker is reconnecting or electing a leader).
    pub(super) fn delay(&self) -> Option<Duration> {
        match self {
            Requeue::ShuttingDown => None,
            _ => Some(Duration::from_secs(1)),
        }
    }
}

/// How a job that was not handed back ended.
pub(super) enum Done {
    /// Its end is published and the message acked (or it was dropped: ended by the api, or ended already).
    Ended,
    /// A later attempt holds the response's claim, or has ended the response (JetStream delivered the job again
    /// while this attempt ran): it publishes the end, this one publishes nothing more.
    Superseded,
}

/// Publishes the end event once everything before it is stored, waits until it is stored too, then acks the job.
pub(super) async fn finish(
    ctx: &JobContext,
    msg: &jetstream::Message,
    job: &GenerateJob,
    attempt: u32,
    publisher: &mut Publisher,
    text: String,
    end: End,
) -> Result<Done, Requeue> {
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
        End::Requeue(why) => return Err(why),
    };
    if claim::superseded(ctx, job, attempt).await {
        return Ok(Done::Superseded);
    }
    let kind = event.kind();
    publisher.finish(Envelope::new(job.conversation_id, None, event)).await?;
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
