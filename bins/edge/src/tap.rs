//! The tap: ONE JetStream ordered push consumer per edge process over all of `RH_CONV` (`rh.conv.>`), routing each
//! event to the [`crate::feed::Feed`] of its conversation, if this process follows it.
//!
//! ## Why one consumer per process, not one per conversation
//! The first design had one ordered consumer per followed conversation plus a short-lived one per subscriber
//! catching up. At 1,000 conversations × 10 viewers, nats-server refused new consumers ("maximum consumers limit
//! reached") and spent most of the machine's CPU on consumer bookkeeping (`loadtest/RESULTS.md`, scenario b).
//! With the tap the broker does one thing per event per edge: deliver it once. The cost moves to the edge, which
//! sees every conversation's events and skips the ones it does not follow: a subject parse and a map lookup,
//! about a microsecond, paid once per event per edge node rather than per socket.
//!
//! A JetStream consumer rather than a core subscription because the live events must carry their stream `seq`
//! (a core subscription does not get it), and an ordered consumer detects gaps and re-creates itself from the last
//! seq it saw, so the tap is gapless. If the consumer fails anyway (NATS restart, missed heartbeats) the tap
//! re-creates it from its last position: the feeds see nothing of it. While it cannot, `/readyz` says 503.
//!
//! ## Position
//! `Feeds::tap_seq` is the last stream seq the tap processed. It is advanced and the conversation's feed looked up
//! under the same lock under which [`crate::hub::Hub::join`] creates feeds, so a feed created at position `P` gets
//! exactly the events after `P` from the tap; its subscribers catch up to `P` from the stream.

use crate::feed::Decoded;
use crate::hub::Hub;
use crate::lock;
use anyhow::Context as _;
use async_nats::jetstream::consumer::{DeliverPolicy, push};
use futures::StreamExt;
use rh_protocol::subjects;
use rh_telemetry::Health;
use std::sync::Arc;
use std::time::Duration;

/// Longest pause between attempts to re-create a failed tap.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Runs the tap from `Feeds::tap_seq` until shutdown.
pub async fn run(hub: Arc<Hub>, health: Health) {
    let node = hub.node_id.simple().to_string();
    let name = format!("edge-{}-tap", &node[..12]);
    let mut failures = 0u32;
    loop {
        let from = hub.tap_seq();
        let result = tokio::select! {
            r = follow(&hub, &name, from, &health) => r,
            _ = hub.shutdown.cancelled() => return,
        };
        let error = match result {
            Ok(()) => "the consumer ended".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        failures = if hub.tap_seq() > from { 1 } else { failures + 1 };
        if failures > 1 {
            health.set_ready(false);
        }
        tracing::warn!(%error, failures, position = hub.tap_seq(), "conversation tap interrupted; resuming");
        let _ = hub.js.delete_consumer_from_stream(&name, subjects::STREAM_CONV).await;
        let backoff = (Duration::from_millis(100) * failures).min(MAX_BACKOFF);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = hub.shutdown.cancelled() => return,
        }
    }
}

async fn follow(hub: &Hub, name: &str, from: u64, health: &Health) -> anyhow::Result<()> {
    let config = push::OrderedConfig {
        deliver_subject: hub.nats.new_inbox(),
        name: Some(name.to_owned()),
        filter_subject: subjects::STREAM_CONV_SUBJECTS.to_owned(),
        deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from + 1 },
        ..Default::default()
    };
    let consumer =
        hub.js.create_consumer_on_stream(config, subjects::STREAM_CONV).await.context("creating the tap's consumer")?;
    let mut messages = consumer.messages().await.context("subscribing to the tap")?;
    if !hub.shutdown.is_cancelled() {
        health.set_ready(true);
    }
    while let Some(msg) = messages.next().await {
        let msg = msg.context("reading the tap")?;
        let busy = std::time::Instant::now();
        let seq = match msg.info() {
            Ok(info) => info.stream_sequence,
            Err(e) => {
                tracing::warn!(error = %e, "stream message without JetStream info, skipped");
                continue;
            }
        };
        hub.metrics.events_in.inc();
        let subject = msg.subject.as_str();
        let Some(conversation) = subjects::conversation_of(subject) else { continue };
        let feed = {
            let mut feeds = lock(&hub.feeds);
            feeds.tap_seq = feeds.tap_seq.max(seq);
            feeds.map.get(&conversation).cloned()
        };
        if let Some(feed) = feed
            && let Some(d) = Decoded::new(conversation, seq, subject, &msg.payload)
        {
            if let Some(delta) = &d.delta {
                let lag_us = rh_protocol::now_us().saturating_sub(delta.ts_us).max(0);
                hub.metrics.tap_lag_seconds.observe(lag_us as f64 / 1e6);
            }
            feed.deliver(hub, d);
        }
        hub.metrics.tap_busy_seconds.inc_by(busy.elapsed().as_secs_f64());
    }
    Ok(())
}
