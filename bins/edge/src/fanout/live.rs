//! A feed's live subscription: the conversation's events as `RH_CONV` republishes them, gapless and in stream order.
//!
//! `RH_CONV` republishes every event it stores on `rh.live.conv.<id>.<kind>` (core NATS) with two headers:
//! `Nats-Sequence` (its stream seq, the `seq` clients resume from) and `Nats-Last-Sequence` (the seq of the previous
//! message on the same stored subject, `rh.conv.<id>.event` or `.delta`). A feed subscribes
//! `rh.live.conv.<id>.*`, so NATS delivers this edge only the conversations its sockets follow.
//!
//! ## Start: subscribe, then anchor
//! The subscription is registered at the server first (a flush), then the feed is anchored at the stream's last seq
//! `P`: every event stored after that is republished after the subscription existed, so it reaches the feed;
//! subscribers catch up to `P` from the tail or the stream ([`super::catch_up`]).
//!
//! ## Gapless and ordered
//! Core NATS delivers in order but may lose messages: a slow consumer (the server disconnects this client), a
//! reconnect, a broken route inside a cluster. The feed keeps, per kind, `known[kind]`: it has seen every message of
//! that kind up to there. A message `(seq, kind, last)` is delivered when `last <= known[kind]` (its predecessor was
//! seen). Otherwise — or when the client reconnected since the last message (its `connects` count moved) — the feed
//! first *repairs*: it reads the conversation's events after `last_seq` and before that message from the stream
//! (the same leader-routed `next_by_subj` gets as a catch-up), delivers them and the message, then goes on. A
//! message at or below `last_seq` is a duplicate (e.g. republished again by a new stream leader) and is skipped. A
//! loss of the LAST messages of a burst is seen by the idle check: [`IDLE_CHECK`] after the last message (or a
//! reconnect), the feed asks the stream for the conversation's last seq and repairs if it is ahead and that event
//! was stored [`IN_FLIGHT`] ago or more (a younger one may still be on its way: a busy broker republishes late, and
//! repairing what is merely late made every feed read the stream at once under load).
//!
//! With tracing on, each delivered event gets a `deliver` span continuing the trace its headers carry (the
//! worker's job, the api's request): the last hop of one answer's trace, up to the frames queued on the sockets.
//!
//! Why not filtered JetStream consumers updated as interest changes: measured in `docs/edge-fanout.md`.

use super::feed::Feed;
use super::registry::Registry;
use super::tail::Decoded;
use async_nats::jetstream::stream::RawMessageErrorKind;
use futures::StreamExt;
use rh_protocol::subjects;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use uuid::Uuid;

/// How long after the last message (or a reconnect) a feed checks the stream for a trailing loss.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);
/// How old the stream's last event must be before the idle check takes it for lost rather than still on its way.
const IN_FLIGHT: Duration = Duration::from_secs(5);
/// How long a new feed keeps trying to subscribe and anchor before its subscribers get `unavailable`.
const START_PATIENCE: Duration = Duration::from_secs(10);
/// Longest pause between attempts to start or repair while the broker does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Why a feed could not start or repair.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("subscribing to the conversation's live subject: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    #[error("registering the subscription: {0}")]
    Flush(#[from] async_nats::client::FlushError),
    #[error("reading the stream's state: {0}")]
    Info(#[from] async_nats::jetstream::stream::InfoError),
    #[error("reading the conversation from the stream: {0}")]
    Read(#[from] async_nats::jetstream::stream::RawMessageError),
}

/// The two stored subjects of a conversation, each with its own `Nats-Last-Sequence` chain.
#[derive(Clone, Copy)]
enum Kind {
    Event = 0,
    Delta = 1,
}

impl Kind {
    fn of(subject: &str) -> Kind {
        if subject.ends_with(".delta") { Kind::Delta } else { Kind::Event }
    }
}

/// Follows the feed's conversation until the feed closes. Spawned by [`Registry::join`] for a new feed.
pub(crate) async fn follow(reg: Arc<Registry>, feed: Arc<Feed>) {
    let started = tokio::select! {
        _ = feed.closed().cancelled() => return,
        r = start_with_retries(&reg, &feed) => r,
    };
    let Some(mut sub) = started else {
        feed.fail();
        return;
    };
    let anchor = feed.last_seq();
    let mut link = Link { known: [anchor; 2], connects: connects(&reg), idle_check: false };
    loop {
        tokio::select! {
            _ = feed.closed().cancelled() => return,
            msg = sub.next() => {
                let Some(msg) = msg else { return };
                reg.metrics.events_in.inc();
                link.receive(&reg, &feed, msg).await;
            }
            // Restarted by every message: fires once the feed has been quiet for IDLE_CHECK.
            _ = tokio::time::sleep(IDLE_CHECK) => {
                if link.idle_check || link.connects != connects(&reg) {
                    link.check_idle(&reg, &feed).await;
                }
            }
        }
    }
}

fn connects(reg: &Registry) -> u64 {
    reg.nats.statistics().connects.load(Ordering::Relaxed)
}

/// [`start`], retried (a NATS reconnect in progress) for up to [`START_PATIENCE`]; `None` if it never succeeded.
async fn start_with_retries(reg: &Registry, feed: &Feed) -> Option<async_nats::Subscriber> {
    let give_up = tokio::time::Instant::now() + START_PATIENCE;
    let mut failures = 0u32;
    loop {
        match start(reg, feed).await {
            Ok(sub) => return Some(sub),
            Err(e) => {
                failures += 1;
                tracing::warn!(conversation = %feed.conversation, error = %e, failures, "could not follow the conversation");
                if tokio::time::Instant::now() >= give_up {
                    return None;
                }
                tokio::time::sleep((Duration::from_millis(100) * failures).min(MAX_BACKOFF)).await;
            }
        }
    }
}

/// Subscribes the live subject, makes sure the server has the subscription, and anchors the feed.
async fn start(reg: &Registry, feed: &Feed) -> Result<async_nats::Subscriber, LiveError> {
    let sub = reg.nats.subscribe(subjects::live_conv_all(feed.conversation)).await?;
    reg.nats.flush().await?;
    let position = reg.stream.get_info().await?.state.last_sequence;
    feed.anchor(position, reg.limits);
    Ok(sub)
}

/// What a feed knows about its subscription's continuity.
struct Link {
    /// Per [`Kind`]: every message of that kind up to here was seen.
    known: [u64; 2],
    /// The client's connection count when the last message was checked.
    connects: u64,
    /// A message arrived since the last idle check.
    idle_check: bool,
}

impl Link {
    async fn receive(&mut self, reg: &Registry, feed: &Feed, msg: async_nats::Message) {
        let header = |name: &str| msg.headers.as_ref()?.get(name)?.as_str().parse::<u64>().ok();
        let (Some(seq), last) = (header("Nats-Sequence"), header("Nats-Last-Sequence").unwrap_or(0)) else {
            tracing::warn!(subject = %msg.subject, "live message without Nats-Sequence, skipped");
            return;
        };
        self.idle_check = true;
        let kind = Kind::of(msg.subject.as_str());
        let now = connects(reg);
        if seq <= feed.last_seq() {
            return;
        }
        if now != self.connects || last > self.known[kind as usize] {
            tracing::info!(conversation = %feed.conversation, seq, last, "gap in the live subscription; repairing");
            self.connects = now;
            // Only what is missing before this message: everything after it comes on the subscription (which
            // delivered this one), so the repair never chases the stream's tail while new events keep coming.
            self.repair(reg, feed, seq).await;
            if seq <= feed.last_seq() {
                return;
            }
        }
        let span = rh_telemetry::hop_span!("deliver", conversation = %feed.conversation, seq);
        rh_telemetry::trace::follow_nats(&span, msg.headers.as_ref());
        let _in_span = span.enter();
        if matches!(kind, Kind::Delta)
            && let Some(stored) = msg.headers.as_ref().and_then(|h| h.get("Nats-Time-Stamp"))
            && let Ok(stored) = chrono::DateTime::parse_from_rfc3339(stored.as_str())
        {
            let lag_us = rh_protocol::now_us().saturating_sub(stored.timestamp_micros()).max(0);
            reg.metrics.broker_lag_seconds.observe(lag_us as f64 / 1e6);
        }
        deliver(reg, feed, seq, msg.subject.as_str(), &msg.payload, true);
        self.known[kind as usize] = seq;
    }

    /// The idle check: is the stream ahead of the feed (lost trailing messages)?
    async fn check_idle(&mut self, reg: &Registry, feed: &Feed) {
        self.idle_check = false;
        self.connects = connects(reg);
        let (last, stored_us) =
            match reg.stream.get_last_raw_message_by_subject(&subjects::conv_all(feed.conversation)).await {
                Ok(m) => (m.sequence, m.time.unix_timestamp_nanos() / 1000),
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return,
                Err(e) => {
                    tracing::warn!(conversation = %feed.conversation, error = %e, "idle check failed");
                    self.idle_check = true;
                    return;
                }
            };
        if last <= feed.last_seq() {
            return;
        }
        if i128::from(rh_protocol::now_us()) - stored_us < IN_FLIGHT.as_micros() as i128 {
            // Stored moments ago: on a busy broker it is still on its way on the subscription. Reading it from the
            // stream now would load the broker for nothing (and under load every feed did, which made the lag
            // worse); look again once it is old enough to be lost.
            self.idle_check = true;
            return;
        }
        tracing::info!(conversation = %feed.conversation, last, "live subscription missed the last events; repairing");
        self.repair(reg, feed, last + 1).await;
    }

    /// Delivers the conversation's events after the feed's `last_seq` and before `until` from the stream, retrying
    /// until it succeeds or the feed closes. Afterwards every kind is known up to the feed's `last_seq`.
    async fn repair(&mut self, reg: &Registry, feed: &Feed, until: u64) {
        reg.metrics.live_repairs.inc();
        let mut failures = 0u32;
        loop {
            match read_after(reg, feed, until).await {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(conversation = %feed.conversation, error = %e, failures, "repair failed; retrying");
                    let backoff = (Duration::from_millis(100) * failures).min(MAX_BACKOFF);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = feed.closed().cancelled() => return,
                    }
                }
            }
        }
        let last = feed.last_seq();
        self.known = [last; 2];
    }
}

/// Reads and delivers the events of the feed's conversation after its `last_seq` and before `until` (one more at
/// most: a read that finds the event at `until` delivers it too).
async fn read_after(reg: &Registry, feed: &Feed, until: u64) -> Result<(), LiveError> {
    let conversation: Uuid = feed.conversation;
    let filter = subjects::conv_all(conversation);
    loop {
        let from = feed.last_seq() + 1;
        if from >= until {
            return Ok(());
        }
        let msg = match reg.stream.raw_message_builder().sequence(from).next_by_subject(filter.clone()).send().await {
            Ok(msg) => msg,
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        reg.metrics.events_repaired.inc();
        let span = rh_telemetry::hop_span!("deliver", %conversation, seq = msg.sequence, repaired = true);
        rh_telemetry::trace::follow_nats(&span, Some(&msg.headers));
        let _in_span = span.enter();
        deliver(reg, feed, msg.sequence, msg.subject.as_str(), &msg.payload, false);
    }
}

/// Delivers one stored event to the feed's subscribers, live or repaired; one that cannot be decoded (not UTF-8,
/// logged) moves the position past it. `live`: it came on the subscription, so its delta's lag is observed.
fn deliver(reg: &Registry, feed: &Feed, seq: u64, subject: &str, payload: &[u8], live: bool) {
    match Decoded::new(feed.conversation, seq, subject, payload) {
        Some(d) => {
            if live && let Some(delta) = &d.delta {
                let lag_us = rh_protocol::now_us().saturating_sub(delta.ts_us).max(0);
                reg.metrics.live_lag_seconds.observe(lag_us as f64 / 1e6);
            }
            reg.settle(feed.conversation, feed.deliver(d));
        }
        None => feed.skip_to(seq),
    }
}
