//! What a feed keeps and sends: each event decoded ONCE into its `event` frame (`Decoded`), and the
//! conversation's recent events in memory (`Tail`), from which subscribers behind the live position catch up.

use super::compact::Outgoing;
use axum::extract::ws::Utf8Bytes;
use rh_protocol::frame::event_frame_json;
use rh_protocol::{Envelope, Event, Permission};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

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
    pub(super) fn new(floor: u64, limits: TailLimits) -> Tail {
        Tail { events: VecDeque::new(), floor, bytes: 0, limits }
    }

    /// Events above this seq (up to the feed's `last_seq`) are all here.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    pub(super) fn push(&mut self, d: Decoded) {
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
