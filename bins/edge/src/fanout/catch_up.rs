//! Catch-up: sending a subscriber behind the live position what it missed, `(after_seq, feed.last_seq]`, then
//! turning it live (see [`super::registry`] for the hand-over rule). A subscriber of a feed that is not anchored
//! yet waits for the anchor first.
//!
//! - From the feed's in-memory tail when the position is inside it: a late joiner of a streaming response, or a
//!   socket reconnecting with its last `seq`, costs the broker nothing and is served in batches as large as the
//!   socket's queue has room for, under the feed's lock.
//! - With `compact` (the web client asks for it) the socket's writer sends each run of consecutive deltas of
//!   such a batch as ONE merged delta ([`super::compact`]): a late joiner of a response 2,000 tokens in gets it in
//!   a handful of frames instead of hundreds, which is most of what a burst of late joiners costs the edge, the
//!   network and the clients.
//! - What is older than the tail is read from JetStream, one "next message of `rh.conv.<id>.*` from seq"
//!   request per event (`$JS.API.STREAM.MSG.GET` with `next_by_subj`). No consumer is created, so any number of
//!   sockets can catch up at once without the broker's consumer bookkeeping (the first design's replay consumer
//!   per socket hit nats-server's consumer limit). The request goes to the stream leader, never to a replica that
//!   could be behind (a direct get may be answered by one). What was read is prepended to the tail, so the next
//!   subscriber from that position catches up from memory: typically the first subscriber of a conversation on
//!   this node reads `(history_seq, anchor]` (usually one request that finds nothing) and everyone after it is
//!   served from memory.
//! - A position the stream no longer covers — retention (`max_age`, `max_bytes`) dropped events after it, and the
//!   conversation's stored history (`grant_seq`) has moved past it, so some of what dropped may have been this
//!   conversation's — ends the subscription with `cannot_recover`: the client reloads history over HTTP and
//!   subscribes again from the `seq` it covers (Centrifugo's rule). The stream cannot say whose events it dropped,
//!   so this errs towards a reload, which is always correct; a client whose conversation did not change since its
//!   position (`grant_seq <= after_seq`) simply continues. Only positions older than both the tail and the stored
//!   history pay for the check (one stream-info request), and catch-ups from the stream under a signed grant: its
//!   access answer may be up to a minute old, so the access changes after it must still be there to replay.

use super::feed::Feed;
use super::registry::Registry;
use super::tail::{Decoded, Effect};
use crate::lock;
use crate::socket::conn::Conn;
use anyhow::Context as _;
use async_nats::jetstream::stream::RawMessageErrorKind;
use rh_protocol::frame::ErrorCode;
use rh_protocol::{ServerFrame, subjects};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Where a subscription catches up from, and how.
#[derive(Debug, Clone, Copy)]
pub struct CatchUpFrom {
    /// The client has everything up to here.
    pub after_seq: u64,
    /// Access events above it were not reflected in the grant...
    pub grant_seq: u64,
    /// ...and those up to here predate the join, so the catch-up applies them (the feed applies later ones);
    /// `None`: up to the feed's anchor (the subscription joined before it).
    pub joined_at: Option<u64>,
    /// The socket's writer may merge runs of deltas ([`super::compact`]).
    pub compact: bool,
    /// The grant is the client's signed one, read up to a minute ago: access events after `grant_seq` must all
    /// still be in the stream, so a catch-up that reads the stream checks that it keeps them.
    pub signed: bool,
}

/// One catching-up subscription.
struct CatchUp<'a> {
    reg: &'a Registry,
    feed: &'a Feed,
    conn: &'a Arc<Conn>,
    generation: u64,
    from: CatchUpFrom,
    /// Access events up to here are this catch-up's to apply (known once the feed is anchored).
    joined_at: u64,
}

/// Why a catch-up ended without turning live, other than the subscription or the socket ending.
#[derive(Debug, thiserror::Error)]
enum CatchUpError {
    #[error(
        "the stream starts at seq {first_seq}, after the position {after_seq} and the conversation has changed since"
    )]
    CannotRecover { after_seq: u64, first_seq: u64 },
    #[error(transparent)]
    Broker(#[from] anyhow::Error),
}

enum Step {
    /// Send these from the tail; then the client has everything up to `reaches`.
    Memory { batch: Vec<Decoded>, reaches: u64 },
    /// Read `(pos, until]` from JetStream: older than the tail.
    Stream { until: u64 },
}

impl Registry {
    /// Catches a subscription up from `after_seq`, then turns it live. Runs in the subscribe command's task; ends
    /// early when the subscription or the socket ends. On a broker error the subscription ends with an
    /// `unavailable` error frame (the client subscribes again with its last seq).
    pub async fn catch_up(
        &self,
        feed: Arc<Feed>,
        conn: &Arc<Conn>,
        generation: u64,
        from: CatchUpFrom,
        cancel: CancellationToken,
        started: Instant,
    ) {
        let conversation = feed.conversation;
        let job = async {
            if !feed.started().await {
                return Err(CatchUpError::Broker(anyhow::anyhow!("could not start following the conversation")));
            }
            let joined_at = from.joined_at.unwrap_or_else(|| lock(&feed.state).anchored_at);
            CatchUp { reg: self, feed: &feed, conn, generation, from, joined_at }.run().await
        };
        let result = tokio::select! {
            _ = cancel.cancelled() => Ok(false),
            _ = conn.closed().cancelled() => Ok(false),
            r = job => r,
        };
        match result {
            Ok(true) => self.metrics.catch_up_seconds.observe(started.elapsed().as_secs_f64()),
            Ok(false) => {}
            Err(e) => {
                let (code, message) = match &e {
                    CatchUpError::CannotRecover { .. } => {
                        tracing::info!(%conversation, "{e}");
                        (
                            ErrorCode::CannotRecover,
                            "what you missed is no longer kept; reload the conversation and subscribe from its seq",
                        )
                    }
                    CatchUpError::Broker(e) => {
                        tracing::warn!(%conversation, error = %format!("{e:#}"), "catch-up failed");
                        (
                            ErrorCode::Unavailable,
                            "could not catch up on this conversation; subscribe again with your last seq",
                        )
                    }
                };
                if self.end_subscription(conn, conversation, Some(generation)) {
                    let _ = conn.send_frame(&ServerFrame::error(code, message, Some(conversation.to_string())));
                }
            }
        }
    }
}

impl CatchUp<'_> {
    fn conversation(&self) -> Uuid {
        self.feed.conversation
    }

    /// `Ok(true)` once live, `Ok(false)` if the subscription ended.
    async fn run(&self) -> Result<bool, CatchUpError> {
        let mut pos = self.from.after_seq;
        loop {
            let Some(room) = self.room().await else { return Ok(false) };
            let step = {
                let mut st = lock(&self.feed.state);
                if self.feed.closed().is_cancelled() {
                    return Ok(false);
                }
                let (last_seq, floor) = (st.last_seq, st.tail.floor());
                match st.entries.get_mut(&self.conn.id) {
                    Some(e) if e.generation == self.generation => {
                        if pos >= last_seq {
                            e.live = true;
                            e.last_seq = pos;
                            return Ok(true);
                        }
                    }
                    _ => return Ok(false),
                }
                if pos < floor {
                    Step::Stream { until: floor }
                } else {
                    let batch = st.tail.after(pos, room);
                    // All of the tail above `pos` fits: once sent, the client has everything up to `last_seq`
                    // (which need not be an event of this conversation: the feed's anchor).
                    let reaches = if batch.len() < room { last_seq } else { pos };
                    Step::Memory { batch, reaches }
                }
            };
            match step {
                Step::Memory { batch, reaches } => {
                    self.reg.metrics.catch_up_events.with_label_values(&["memory"]).inc_by(batch.len() as u64);
                    for d in &batch {
                        if !self.send(d) {
                            return Ok(false);
                        }
                        pos = d.seq;
                    }
                    pos = pos.max(reaches);
                }
                Step::Stream { until } => match self.read_stream(pos, until).await? {
                    Some(reached) => pos = reached,
                    None => return Ok(false),
                },
            }
        }
    }

    /// Free frames in the socket's queue beyond the reserve, once there are some; `None` if the socket closed.
    async fn room(&self) -> Option<usize> {
        loop {
            if self.conn.is_closed() {
                return None;
            }
            let room = self.conn.queue_room().saturating_sub(self.reg.catch_up_reserve);
            if room > 0 {
                return Some(room);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sends one missed event and applies its access effect if it predates the join. False: the subscription ended.
    fn send(&self, d: &Decoded) -> bool {
        if self.conn.send_outgoing(d.outgoing(self.from.compact)).is_err() {
            return false;
        }
        if let Some(effect) = d.effect
            && d.seq > self.from.grant_seq
            && d.seq <= self.joined_at
            && effect.affects(self.conn.user.id)
        {
            self.reg.apply(effect, self.conn, self.conversation(), self.generation);
            if matches!(effect, Effect::Revoke(_)) {
                return false;
            }
        }
        true
    }

    /// Sends the conversation's events in `(from, until]` from JetStream and prepends them to the tail. Returns
    /// `until`, or `None` if the subscription ended.
    async fn read_stream(&self, from: u64, until: u64) -> Result<Option<u64>, CatchUpError> {
        // Only a position behind the stored history can have lost something: a client subscribing from its HTTP
        // history's `seq` (the usual case) costs no stream-info request.
        if self.from.grant_seq > from || self.from.signed {
            let info = self.reg.stream.get_info().await.context("reading the stream's state")?;
            let first_seq = info.state.first_sequence;
            if from + 1 < first_seq {
                return Err(CatchUpError::CannotRecover { after_seq: from, first_seq });
            }
        }
        let filter = subjects::conv_all(self.conversation());
        let max_bytes = lock(&self.feed.state).tail.max_bytes();
        let (mut read, mut read_bytes) = (Vec::new(), 0usize);
        let mut pos = from;
        loop {
            let request = self.reg.stream.raw_message_builder().sequence(pos + 1).next_by_subject(filter.clone());
            let msg = match request.send().await {
                Ok(msg) if msg.sequence <= until => msg,
                Ok(_) => break,
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => break,
                Err(e) => return Err(anyhow::Error::new(e).context("reading the conversation from the stream").into()),
            };
            pos = msg.sequence;
            self.reg.metrics.catch_up_events.with_label_values(&["stream"]).inc();
            let Some(d) = Decoded::new(self.conversation(), msg.sequence, msg.subject.as_str(), &msg.payload) else {
                continue;
            };
            if self.room().await.is_none() || !self.send(&d) {
                return Ok(None);
            }
            read_bytes += d.size();
            if read_bytes <= max_bytes {
                read.push(d);
            }
        }
        if read_bytes <= max_bytes {
            let mut st = lock(&self.feed.state);
            if st.tail.floor() == until {
                st.tail.prepend(from, read);
            }
        }
        Ok(Some(until))
    }
}
