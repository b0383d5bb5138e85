//! One conversation followed by this process: its local subscriptions and an in-memory tail of its recent events.
//!
//! A [`Feed`] is fed by its own live subscription ([`super::live`]), in stream order. Each event is turned into its
//! `event` frame ONCE (`Decoded`); the same [`axum::extract::ws::Utf8Bytes`] (reference counted) is queued on
//! every live socket and kept in the `Tail`, from which subscribers that are behind the live position catch up
//! (see [`super::catch_up`]).
//!
//! A feed starts *unanchored*: its live subscription is being set up and it does not know yet from which position it
//! will see everything. Once anchored at `P` (the stream's last seq after the subscription was registered), the
//! invariant holds, under the feed's lock: the feed has seen every event of its conversation up to `last_seq`, and
//! the tail holds exactly the conversation's events in `(tail.floor, last_seq]`.

use super::tail::{Decoded, Effect, Tail, TailLimits};
use crate::lock;
use crate::socket::conn::{Conn, SendError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Where a feed's live subscription is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Subscribing and anchoring: subscribers wait.
    Starting,
    /// Anchored: events after `last_seq` arrive in order.
    Live,
    /// Could not subscribe or anchor: its subscribers end with `unavailable`, the next subscribe starts a new feed.
    Failed,
}

/// One conversation followed by this process.
pub struct Feed {
    pub(crate) conversation: Uuid,
    pub(crate) state: Mutex<FeedState>,
    phase: watch::Sender<Phase>,
    /// Cancelled when the last local subscriber leaves: the live subscription ends.
    closed: CancellationToken,
}

pub(crate) struct FeedState {
    /// The feed has seen every event of the conversation up to here (once anchored).
    pub last_seq: u64,
    /// Where it was anchored.
    pub anchored_at: u64,
    /// The conversation's events in `(tail.floor, last_seq]`.
    pub tail: Tail,
    /// By socket id (a socket has at most one subscription per conversation).
    pub entries: HashMap<u64, Entry>,
    /// Entries per user (with the user's name), kept with `entries` so presence asks for the unique viewers without
    /// walking every entry: presence asks after every join, and walking 10,000 entries per join was quadratic.
    pub users: HashMap<Uuid, (usize, String)>,
    /// Sockets whose person is composing, by socket id: the person and until when (see
    /// [`super::Registry::set_typing`]). A socket's entry goes with its subscription.
    pub typing: HashMap<u64, (Uuid, std::time::Instant)>,
}

pub(crate) struct Entry {
    pub conn: Arc<Conn>,
    pub generation: u64,
    /// Highest seq sent to this socket.
    pub last_seq: u64,
    /// False while it catches up; the feed only sends to live entries.
    pub live: bool,
    /// `history_seq` of the grant: access events at or below it were already reflected in the grant.
    pub grant_seq: u64,
    /// Deltas may be merged on this socket ([`super::compact`]).
    pub compact: bool,
}

/// An access effect to apply to one subscription, returned by [`Feed::deliver`] (applied outside the feed's lock).
pub(crate) struct Apply {
    pub conn: Arc<Conn>,
    pub generation: u64,
    pub effect: Effect,
}

/// What [`Feed::deliver`] leaves to its caller.
#[derive(Default)]
pub(crate) struct Delivered {
    /// Sockets closed because their queue was full.
    pub dropped: u64,
    pub apply: Vec<Apply>,
}

impl Feed {
    /// A feed that is not anchored yet.
    pub(crate) fn new(conversation: Uuid, tail_limits: TailLimits) -> Feed {
        Feed {
            conversation,
            state: Mutex::new(FeedState {
                last_seq: 0,
                anchored_at: 0,
                tail: Tail::new(0, tail_limits),
                entries: HashMap::new(),
                users: HashMap::new(),
                typing: HashMap::new(),
            }),
            phase: watch::Sender::new(Phase::Starting),
            closed: CancellationToken::new(),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Waits until the feed is anchored (`true`) or failed to (`false`).
    pub(crate) async fn started(&self) -> bool {
        let mut rx = self.phase.subscribe();
        match rx.wait_for(|p| *p != Phase::Starting).await {
            Ok(p) => *p == Phase::Live,
            Err(_) => false,
        }
    }

    /// Anchors the feed: it has seen everything up to `position` (its subscribers catch up to there).
    pub(crate) fn anchor(&self, position: u64, tail_limits: TailLimits) {
        {
            let mut st = lock(&self.state);
            st.last_seq = position;
            st.anchored_at = position;
            st.tail = Tail::new(position, tail_limits);
        }
        self.phase.send_replace(Phase::Live);
    }

    pub(crate) fn fail(&self) {
        self.phase.send_replace(Phase::Failed);
    }

    pub(crate) fn close(&self) {
        self.closed.cancel();
    }

    pub(crate) fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// Moves the position past an event that cannot be sent (not UTF-8; logged when decoded).
    pub(crate) fn skip_to(&self, seq: u64) {
        let mut st = lock(&self.state);
        st.last_seq = st.last_seq.max(seq);
    }

    pub(crate) fn last_seq(&self) -> u64 {
        lock(&self.state).last_seq
    }

    /// One of the conversation's events, in stream order: fans it out to the live entries and keeps it in the tail.
    /// Returns the access effects for the caller to apply (they end or change subscriptions, which takes other
    /// locks) and how many sockets it dropped as too slow.
    pub(crate) fn deliver(&self, d: Decoded) -> Delivered {
        let mut out = Delivered::default();
        let mut st = lock(&self.state);
        if self.closed.is_cancelled() || d.seq <= st.last_seq {
            return out;
        }
        st.last_seq = d.seq;
        for e in st.entries.values_mut() {
            if e.live && e.last_seq < d.seq {
                e.last_seq = d.seq;
                if e.conn.send_outgoing(d.outgoing(e.compact)) == Err(SendError::Lagged) {
                    out.dropped += 1;
                    tracing::info!(user = %e.conn.user.id, "slow socket closed");
                }
            }
        }
        if let Some(effect) = d.effect {
            for e in st.entries.values() {
                if d.seq > e.grant_seq && effect.affects(e.conn.user.id) {
                    out.apply.push(Apply { conn: e.conn.clone(), generation: e.generation, effect });
                }
            }
        }
        st.tail.push(d);
        out
    }
}

impl FeedState {
    /// Adds an entry; false if the socket already had one (replaced; same user).
    pub fn add(&mut self, conn_id: u64, entry: Entry) -> bool {
        let conn = entry.conn.clone();
        match self.entries.insert(conn_id, entry) {
            Some(_) => false,
            None => {
                self.users.entry(conn.user.id).or_insert_with(|| (0, conn.user.name.clone())).0 += 1;
                true
            }
        }
    }

    pub fn remove(&mut self, conn_id: u64) {
        self.typing.remove(&conn_id);
        if let Some(e) = self.entries.remove(&conn_id)
            && let std::collections::hash_map::Entry::Occupied(mut u) = self.users.entry(e.conn.user.id)
        {
            u.get_mut().0 -= 1;
            if u.get().0 == 0 {
                u.remove();
            }
        }
    }
}
