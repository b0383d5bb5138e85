//! One conversation followed by this process: its local subscriptions and an in-memory tail of its recent events.
//!
//! A [`Feed`] has no JetStream consumer of its own: the process-wide [`crate::tap`] hands it the conversation's
//! events in stream order. Each event is turned into its `event` frame ONCE
//! ([`rh_protocol::frame::event_frame_json`] around the stored bytes, untouched); the same [`Utf8Bytes`]
//! (reference counted) is queued on every live socket and kept in the `Tail`, from which subscribers that are
//! behind the live position catch up (see [`crate::catch_up`]).
//!
//! Invariant, under the feed's lock: the feed has seen every event of its conversation up to `last_seq` (the
//! highest seq it delivered, or the tap's position when it was created), and the tail holds exactly the
//! conversation's events in `(tail.floor, last_seq]`.

use crate::compact::Outgoing;
use crate::conn::{Conn, SendError};
use crate::hub::Hub;
use crate::lock;
use axum::extract::ws::Utf8Bytes;
use rh_protocol::frame::event_frame_json;
use rh_protocol::{Envelope, Event, Permission};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// One conversation followed by this process.
pub struct Feed {
    pub(crate) conversation: Uuid,
    pub(crate) state: Mutex<FeedState>,
}

pub(crate) struct FeedState {
    /// The feed has seen every event of the conversation up to here.
    pub last_seq: u64,
    /// The conversation's events in `(tail.floor, last_seq]`.
    pub tail: Tail,
    /// By socket id (a socket has at most one subscription per conversation).
    pub entries: HashMap<u64, Entry>,
    /// Entries per user (with the user's name), kept with `entries` so presence asks for the unique viewers without
    /// walking every entry: presence asks after every join, and walking 10,000 entries per join was quadratic.
    pub users: HashMap<Uuid, (usize, String)>,
    /// Removed from the hub; no more entries may join.
    pub closed: bool,
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
    /// Deltas may be merged on this socket ([`crate::compact`]).
    pub compact: bool,
}

impl Feed {
    /// A feed that has seen everything up to `position` (the tap's position) and holds nothing yet.
    pub(crate) fn new(conversation: Uuid, position: u64, tail_limits: TailLimits) -> Feed {
        Feed {
            conversation,
            state: Mutex::new(FeedState {
                last_seq: position,
                tail: Tail::new(position, tail_limits),
                entries: HashMap::new(),
                users: HashMap::new(),
                closed: false,
            }),
        }
    }

    /// Called by the tap with each of the conversation's events, in stream order: fans it out to the live entries,
    /// keeps it in the tail, then applies its access effect.
    pub(crate) fn deliver(&self, hub: &Hub, d: Decoded) {
        let mut affected: Vec<(Arc<Conn>, u64)> = Vec::new();
        let effect = d.effect;
        {
            let mut st = lock(&self.state);
            if st.closed || d.seq <= st.last_seq {
                return;
            }
            st.last_seq = d.seq;
            for e in st.entries.values_mut() {
                if e.live && e.last_seq < d.seq {
                    e.last_seq = d.seq;
                    if e.conn.send_outgoing(d.outgoing(e.compact)) == Err(SendError::Lagged) {
                        hub.metrics.slow_consumers_dropped.inc();
                        tracing::info!(user = %e.conn.user.id, "slow socket closed");
                    }
                }
            }
            if let Some(effect) = effect {
                for e in st.entries.values() {
                    if d.seq > e.grant_seq && effect.affects(e.conn.user.id) {
                        affected.push((e.conn.clone(), e.generation));
                    }
                }
            }
            st.tail.push(d);
        }
        if let Some(effect) = effect {
            for (conn, generation) in affected {
                hub.apply(effect, &conn, self.conversation, generation);
            }
        }
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

/// How much a `Tail` keeps (`--feed-tail-bytes`, `--feed-tail-secs`).
#[derive(Debug, Clone, Copy)]
pub struct TailLimits {
    pub max_bytes: usize,
    pub max_age: Duration,
}

/// Bytes counted per event besides its frame (the deque slot, the effect, the timestamp).
const EVENT_OVERHEAD: usize = 64;

/// The conversation's most recent events, oldest first: every event in `(floor, last_seq]`. Bounded by bytes and
/// by age; evicting the oldest event raises `floor` to its seq.
pub(crate) struct Tail {
    events: VecDeque<Decoded>,
    floor: u64,
    bytes: usize,
    limits: TailLimits,
}

impl Tail {
    fn new(floor: u64, limits: TailLimits) -> Tail {
        Tail { events: VecDeque::new(), floor, bytes: 0, limits }
    }

    /// Events above this seq (up to the feed's `last_seq`) are all here.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    fn push(&mut self, d: Decoded) {
        self.bytes += d.size();
        self.events.push_back(d);
        self.evict_over_limits();
    }

    /// Drops the oldest events while the tail is over its byte limit or they are over its age limit; the floor
    /// rises with each.
    fn evict_over_limits(&mut self) {
        let now = Instant::now();
        while let Some(front) = self.events.front()
            && (self.bytes > self.limits.max_bytes || now.duration_since(front.at) > self.limits.max_age)
            && let Some(old) = self.events.pop_front()
        {
            self.bytes -= old.size();
            self.floor = old.seq;
        }
    }

    /// Up to `max` events with seq > `pos`, oldest first. `pos` must be at or above [`Tail::floor`].
    pub fn after(&self, pos: u64, max: usize) -> Vec<Decoded> {
        let start = self.events.partition_point(|d| d.seq <= pos);
        self.events.range(start..).take(max).cloned().collect()
    }

    /// The byte limit (a catch-up from JetStream collects no more than this to prepend).
    pub fn max_bytes(&self) -> usize {
        self.limits.max_bytes
    }

    /// Extends the tail back to `from`: `older` are ALL the conversation's events in `(from, floor]`, oldest first
    /// (read from JetStream by a catch-up). Later subscribers with a position in that range then catch up from
    /// memory. Events beyond the age limit are not kept.
    pub fn prepend(&mut self, from: u64, older: Vec<Decoded>) {
        if from >= self.floor || older.iter().any(|d| d.seq <= from || d.seq > self.floor) {
            return;
        }
        for d in older.into_iter().rev() {
            self.bytes += d.size();
            self.events.push_front(d);
        }
        self.floor = from;
        self.evict_over_limits();
    }
}

/// What an event does to subscriptions, besides being delivered.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Effect {
    /// End subscriptions of this user, or of everyone (`None`: the conversation was deleted).
    Revoke(Option<Uuid>),
    Permission(Uuid, Permission),
}

impl Effect {
    /// Only `.event` subjects carry access events; deltas (the bulk of the traffic) are never decoded.
    fn of(subject: &str, json: &str) -> Option<Effect> {
        if !subject.ends_with(".event") || !(json.contains("participant.") || json.contains("conversation.deleted")) {
            return None;
        }
        let env: Envelope = serde_json::from_str(json).ok()?;
        match env.event {
            Event::ParticipantRemoved { user_id } => Some(Effect::Revoke(Some(user_id))),
            Event::ConversationDeleted {} => Some(Effect::Revoke(None)),
            Event::ParticipantChanged { user_id, permission } => Some(Effect::Permission(user_id, permission)),
            _ => None,
        }
    }

    pub fn affects(&self, user: Uuid) -> bool {
        match self {
            Effect::Revoke(None) => true,
            Effect::Revoke(Some(u)) | Effect::Permission(u, _) => *u == user,
        }
    }
}

/// A stream message ready to send: its `event` frame, built once.
#[derive(Clone)]
pub(crate) struct Decoded {
    pub seq: u64,
    pub frame: Utf8Bytes,
    pub effect: Option<Effect>,
    /// A `response.delta`, decoded once (for merging runs of deltas for compact subscriptions).
    pub delta: Option<Arc<Envelope>>,
    /// When this process received it (for the tail's age limit).
    at: Instant,
}

impl Decoded {
    /// The frame of the stored event `payload` at `seq` on `subject`; `None` (logged) if it is not UTF-8.
    pub fn new(conversation: Uuid, seq: u64, subject: &str, payload: &[u8]) -> Option<Decoded> {
        let Ok(json) = std::str::from_utf8(payload) else {
            tracing::warn!(seq, %conversation, "event is not UTF-8, skipped");
            return None;
        };
        let effect = Effect::of(subject, json);
        let delta = if subject.ends_with(".delta") {
            serde_json::from_str::<Envelope>(json)
                .ok()
                .filter(|e| matches!(e.event, Event::ResponseDelta { .. }))
                .map(Arc::new)
        } else {
            None
        };
        let frame = event_frame_json(conversation, seq, json).into();
        Some(Decoded { seq, frame, effect, delta, at: Instant::now() })
    }

    /// Bytes it counts for in a tail (a decoded delta holds its text twice).
    pub fn size(&self) -> usize {
        let decoded = match self.delta.as_deref().map(|e| &e.event) {
            Some(Event::ResponseDelta { text, .. }) => text.len() + 160,
            _ => 0,
        };
        self.frame.len() + decoded + EVENT_OVERHEAD
    }

    /// What to queue for a socket: with `compact`, a delta carries what the writer needs to merge it.
    pub fn outgoing(&self, compact: bool) -> Outgoing {
        let delta = if compact { self.delta.clone().map(|e| (self.seq, e)) } else { None };
        Outgoing { frame: self.frame.clone(), delta }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> Decoded {
        let event =
            Event::ResponseStarted { response_id: Uuid::nil(), message_id: Uuid::nil(), model: "m".into(), attempt: 1 };
        let mut envelope = Envelope::new(Uuid::nil(), None, event);
        envelope.ts_us = 1; // the same size for every seq of the same number of digits
        let json = serde_json::to_string(&envelope).expect("json");
        Decoded::new(Uuid::nil(), seq, "rh.conv.x.event", json.as_bytes()).expect("utf-8")
    }

    fn seqs(v: &[Decoded]) -> Vec<u64> {
        v.iter().map(|d| d.seq).collect()
    }

    #[test]
    fn tail_serves_events_after_a_position_and_evicts_oldest_first() {
        let size = event(99).size(); // every seq below has two digits: same size
        let mut tail = Tail::new(10, TailLimits { max_bytes: 3 * size, max_age: Duration::from_secs(60) });
        for seq in [12, 15, 16] {
            tail.push(event(seq));
        }
        assert_eq!(tail.floor(), 10);
        assert_eq!(seqs(&tail.after(10, 10)), [12, 15, 16]);
        assert_eq!(seqs(&tail.after(13, 10)), [15, 16]);
        assert_eq!(seqs(&tail.after(12, 1)), [15]);
        tail.push(event(20));
        assert_eq!(tail.floor(), 12, "the oldest event went, and the floor with it");
        assert_eq!(seqs(&tail.after(12, 10)), [15, 16, 20]);
    }

    #[test]
    fn prepend_extends_the_tail_back_only_with_a_contiguous_range() {
        let limits = TailLimits { max_bytes: 1 << 20, max_age: Duration::from_secs(60) };
        let mut tail = Tail::new(10, limits);
        tail.push(event(14));
        tail.prepend(4, vec![event(8), event(11)]);
        assert_eq!(tail.floor(), 10, "11 is above the floor: not the range (4, 10], refused");
        tail.prepend(4, vec![event(5), event(8)]);
        assert_eq!(tail.floor(), 4);
        assert_eq!(seqs(&tail.after(4, 10)), [5, 8, 14]);
        tail.prepend(1, vec![]);
        assert_eq!(tail.floor(), 1, "an empty range is knowledge too: nothing in (1, 4]");
    }
}
