//! The durable consumer `audit` on stream `RH_AUDIT` (the copy of `RH_CONV`'s durable events that is kept until
//! this consumer acks it).

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::PullConsumer, consumer::pull};
use rh_protocol::subjects;
use std::time::Duration;

/// How long a delivered event may stay unacked before JetStream delivers it again.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// Most events delivered and not yet acked.
pub const MAX_ACK_PENDING: i64 = 1024;

/// The consumer's configuration: durable, every event `RH_AUDIT` holds (the non-delta events of `RH_CONV`),
/// explicit acks. In a work-queue stream an acked event is removed.
pub fn config() -> pull::Config {
    pull::Config {
        durable_name: Some(subjects::AUDIT_CONSUMER.to_owned()),
        description: Some("RelayHub audit writer: transcript and audit log to PostgreSQL".to_owned()),
        filter_subject: subjects::AUDIT_FILTER.to_owned(),
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: MAX_ACK_PENDING,
        ..Default::default()
    }
}

/// Gets the consumer, creating it if it does not exist (an existing one is used as it is).
pub async fn ensure(js: &jetstream::Context) -> anyhow::Result<PullConsumer> {
    let stream = js.get_stream(subjects::STREAM_AUDIT).await.context("stream RH_AUDIT")?;
    let consumer: PullConsumer =
        stream.get_or_create_consumer(subjects::AUDIT_CONSUMER, config()).await.context("consumer audit")?;
    Ok(consumer)
}

/// Number of events delivered (to this process or a dead predecessor) and not acked.
pub async fn ack_pending(consumer: &mut PullConsumer) -> anyhow::Result<usize> {
    Ok(consumer.info().await.context("consumer info")?.num_ack_pending)
}

/// Makes JetStream deliver again, at once and in stream order, everything after the consumer's ack floor
/// (ADR-60 consumer reset, nats-server 2.14+).
///
/// Without this, events held unacked by a killed predecessor (or by a dropped pull stream) would only come back
/// after [`ACK_WAIT`], after newer events, and `applied_seq` would run ahead of events not yet written.
/// Our own acks are flushed first so the ack floor is current.
pub async fn rewind_to_ack_floor(client: &async_nats::Client, js: &jetstream::Context) -> anyhow::Result<()> {
    client.flush().await.context("flush acks")?;
    let subject = format!("CONSUMER.RESET.{}.{}", subjects::STREAM_AUDIT, subjects::AUDIT_CONSUMER);
    let reply: serde_json::Value =
        js.request(subject, &serde_json::json!({})).await.context("consumer reset request")?;
    if let Some(error) = reply.get("error") {
        anyhow::bail!("consumer reset refused: {error}");
    }
    Ok(())
}
