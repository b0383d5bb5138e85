//! What one viewer must have seen, checked event by event.
//!
//! Rules (from the ordering contract, `docs/protocol.md` "Positions"):
//! - `seq` strictly increases on a subscription, reconnects included (a viewer resumes with its last `seq`): an
//!   equal `seq` is a duplicate, a smaller one is out of order.
//! - A response begins with `response.started{attempt}`; a later attempt starts over (its text replaces the
//!   earlier attempt's). Its `response.delta` indexes count 0, 1, 2, ... per attempt: a skipped index is a gap,
//!   a repeated one a duplicate.
//! - `response.completed.text` equals the concatenated deltas of its attempt, and nothing of the response
//!   arrives after its end. Failed and stopped responses are violations here: the scenario never stops them.
//!
//! The hot path does not decode the full [`rh_protocol::Envelope`] (serde's tagged + flattened enums buffer the
//! whole object first); it reads the few fields it checks into [`WireEvent`]. A unit test keeps the two in step.

use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use uuid::Uuid;

/// The fields of an event envelope (`{"type", "ts_us", ...}`) the checks need.
#[derive(Debug, Deserialize)]
pub struct WireEvent<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    pub ts_us: i64,
    #[serde(default)]
    pub response_id: Option<Uuid>,
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default)]
    pub index: Option<u32>,
    /// Set on a merged delta (compact catch-up): it stands for deltas `from_index..=index`.
    #[serde(default)]
    pub from_index: Option<u32>,
    #[serde(default)]
    pub text: Option<String>,
}

/// The fields of an edge frame (`{"type":"event","conversation_id","seq","event":{...}}`) the hot path needs.
#[derive(Debug, Deserialize)]
pub struct WireFrame<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default, borrow)]
    pub event: Option<&'a serde_json::value::RawValue>,
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    Completed,
    Failed,
    Stopped,
}

/// One response as this viewer has seen it.
#[derive(Debug, Default)]
struct Response {
    attempt: u32,
    started: bool,
    next_index: u32,
    text: String,
    end: Option<(EndKind, u64)>,
}

/// What an event was, for the caller's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A duplicate or out-of-order position: the event was not applied.
    Rejected,
    Delta,
    Started {
        response_id: Uuid,
        first: bool,
    },
    Ended {
        response_id: Uuid,
        kind: EndKind,
        text_hash: u64,
    },
    Other,
}

/// The checks of one viewer (all its subscriptions to one conversation, reconnects included).
#[derive(Debug, Default)]
pub struct Checker {
    last_seq: u64,
    responses: HashMap<Uuid, Response>,
    /// Violations found since the caller last drained them: (kind, detail).
    pub violations: Vec<(&'static str, String)>,
}

/// Stable hash of a response text (to compare viewers without keeping every text).
pub fn text_hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl Checker {
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Resumes after `seq` (the position a subscription starts after).
    pub fn start_after(&mut self, seq: u64) {
        self.last_seq = self.last_seq.max(seq);
    }

    fn violation(&mut self, kind: &'static str, detail: String) {
        self.violations.push((kind, detail));
    }

    /// Applies one event; `seq` is `None` where the transport has no positions (the NATS baseline).
    pub fn on_event(&mut self, seq: Option<u64>, ev: &WireEvent<'_>) -> Seen {
        if let Some(seq) = seq {
            if seq <= self.last_seq {
                let kind = if seq == self.last_seq { "duplicate_seq" } else { "out_of_order_seq" };
                self.violation(kind, format!("{} at seq {seq} after seq {}", ev.kind, self.last_seq));
                return Seen::Rejected;
            }
            self.last_seq = seq;
        }
        let kind = ev.kind.as_ref();
        let is_response = matches!(
            kind,
            "response.started" | "response.delta" | "response.completed" | "response.failed" | "response.stopped"
        );
        if !is_response {
            return Seen::Other;
        }
        let (Some(rid), Some(attempt)) = (ev.response_id, ev.attempt) else {
            self.violation("malformed_event", format!("{kind} without response_id/attempt"));
            return Seen::Other;
        };
        let r = self.responses.entry(rid).or_default();
        if let Some((end, _)) = r.end {
            let detail = format!("{kind} of response {rid} after it ended ({end:?})");
            self.violation("event_after_end", detail);
            return Seen::Other;
        }
        match kind {
            "response.started" => {
                if r.started && attempt <= r.attempt {
                    let detail = format!("response {rid}: started attempt {attempt} again (current {})", r.attempt);
                    self.violation("duplicate_start", detail);
                    return Seen::Other;
                }
                let first = !r.started;
                *r = Response { attempt, started: true, next_index: 0, text: String::new(), end: None };
                Seen::Started { response_id: rid, first }
            }
            "response.delta" => {
                let (Some(index), Some(text)) = (ev.index, ev.text.as_deref()) else {
                    self.violation("malformed_event", format!("delta of {rid} without index/text"));
                    return Seen::Delta;
                };
                if !r.started {
                    let detail = format!("delta {index} of response {rid} before its response.started");
                    self.violation("delta_without_start", detail);
                    return Seen::Delta;
                }
                if attempt != r.attempt {
                    let detail = format!("delta of attempt {attempt} while attempt {} streams ({rid})", r.attempt);
                    self.violation("wrong_attempt", detail);
                    return Seen::Delta;
                }
                // A merged delta (compact catch-up) covers `from_index..=index`: it must start where we are.
                let first = ev.from_index.unwrap_or(index);
                if first > index {
                    self.violation("malformed_event", format!("delta of {rid} from {first} to {index}"));
                    return Seen::Delta;
                }
                if first != r.next_index {
                    let (kind, detail) = if first > r.next_index {
                        (
                            "gap",
                            format!(
                                "response {rid}: delta {first}, expected {} ({} missing)",
                                r.next_index,
                                first - r.next_index
                            ),
                        )
                    } else {
                        ("duplicate_delta", format!("response {rid}: delta {first} again (expected {})", r.next_index))
                    };
                    if first < r.next_index {
                        self.violation(kind, detail);
                        return Seen::Delta;
                    }
                    self.violation(kind, detail);
                }
                let r = self.responses.entry(rid).or_default();
                r.text.push_str(text);
                r.next_index = index + 1;
                Seen::Delta
            }
            _ => {
                let end = match kind {
                    "response.completed" => EndKind::Completed,
                    "response.failed" => EndKind::Failed,
                    _ => EndKind::Stopped,
                };
                let final_text = ev.text.as_deref().unwrap_or_default();
                let hash = text_hash(final_text);
                let (started, cur_attempt, matches) = (r.started, r.attempt, r.text == final_text);
                let seen_len = r.text.len();
                r.end = Some((end, hash));
                r.text = String::new();
                if !started {
                    self.violation("end_without_start", format!("{kind} of response {rid} without response.started"));
                } else if attempt != cur_attempt {
                    let detail = format!("{kind} by attempt {attempt}, but attempt {cur_attempt} started ({rid})");
                    self.violation("wrong_attempt", detail);
                } else if !matches {
                    let detail = format!(
                        "response {rid}: deltas gave {seen_len} bytes, {kind} text has {} bytes and differs",
                        final_text.len()
                    );
                    self.violation("text_mismatch", detail);
                }
                match end {
                    EndKind::Completed => {}
                    EndKind::Failed => self.violation("response_failed", format!("response {rid} failed")),
                    EndKind::Stopped => self.violation("response_stopped", format!("response {rid} was stopped")),
                }
                Seen::Ended { response_id: rid, kind: end, text_hash: hash }
            }
        }
    }

    /// How `response_id` ended here, with the hash of its final text.
    pub fn ended(&self, response_id: &Uuid) -> Option<(EndKind, u64)> {
        self.responses.get(response_id).and_then(|r| r.end)
    }

    pub fn was_started(&self, response_id: &Uuid) -> bool {
        self.responses.get(response_id).is_some_and(|r| r.started)
    }

    /// Responses that started but never ended.
    pub fn unfinished(&self) -> impl Iterator<Item = (&Uuid, u32)> {
        self.responses.iter().filter(|(_, r)| r.started && r.end.is_none()).map(|(id, r)| (id, r.next_index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rh_protocol::frame::event_frame_json;
    use rh_protocol::{Envelope, Event};

    fn wire(env: &Envelope) -> String {
        serde_json::to_string(env).unwrap()
    }

    fn apply(c: &mut Checker, seq: u64, event: Event) -> Seen {
        let env = Envelope::new(Uuid::nil(), None, event);
        let json = wire(&env);
        let ev: WireEvent = serde_json::from_str(&json).unwrap();
        c.on_event(Some(seq), &ev)
    }

    fn delta(rid: Uuid, attempt: u32, index: u32, text: &str) -> Event {
        Event::ResponseDelta { response_id: rid, attempt, index, text: text.into(), from_index: None }
    }

    fn started(rid: Uuid, attempt: u32) -> Event {
        Event::ResponseStarted { response_id: rid, message_id: Uuid::nil(), model: "sim-1".into(), attempt }
    }

    fn completed(rid: Uuid, attempt: u32, text: &str) -> Event {
        Event::ResponseCompleted { response_id: rid, attempt, model: "sim-1".into(), text: text.into() }
    }

    #[test]
    fn the_fast_path_reads_what_the_protocol_writes() {
        let conv = Uuid::new_v4();
        let rid = Uuid::new_v4();
        let env = Envelope::new(conv, None, delta(rid, 2, 7, "hé \"quoted\"\n"));
        let frame = event_frame_json(conv, 42, &wire(&env));
        let f: WireFrame = serde_json::from_str(&frame).unwrap();
        assert_eq!(f.kind, "event");
        assert_eq!(f.seq, Some(42));
        assert_eq!(f.conversation_id, Some(conv));
        let ev: WireEvent = serde_json::from_str(f.event.unwrap().get()).unwrap();
        assert_eq!(ev.kind, "response.delta");
        assert_eq!(ev.ts_us, env.ts_us);
        assert_eq!((ev.response_id, ev.attempt, ev.index), (Some(rid), Some(2), Some(7)));
        assert_eq!(ev.text.as_deref(), Some("hé \"quoted\"\n"));
        // The same frame through the full protocol type.
        let full: rh_protocol::ServerFrame = serde_json::from_str(&frame).unwrap();
        assert!(matches!(full, rh_protocol::ServerFrame::Event { seq: 42, .. }));
    }

    #[test]
    fn a_clean_stream_passes() {
        let rid = Uuid::new_v4();
        let mut c = Checker::default();
        assert!(matches!(apply(&mut c, 3, started(rid, 1)), Seen::Started { first: true, .. }));
        apply(&mut c, 4, delta(rid, 1, 0, "Hello"));
        apply(&mut c, 9, delta(rid, 1, 1, ", world"));
        let s = apply(&mut c, 12, completed(rid, 1, "Hello, world"));
        assert!(matches!(s, Seen::Ended { kind: EndKind::Completed, .. }));
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        assert_eq!(c.ended(&rid).map(|e| e.1), Some(text_hash("Hello, world")));
        assert_eq!(c.unfinished().count(), 0);
    }

    #[test]
    fn merged_deltas_of_a_compact_catch_up_count_for_the_deltas_they_cover() {
        let rid = Uuid::new_v4();
        let merged = |from: u32, index: u32, text: &str| Event::ResponseDelta {
            response_id: rid,
            attempt: 1,
            index,
            text: text.into(),
            from_index: Some(from),
        };
        let mut c = Checker::default();
        apply(&mut c, 3, started(rid, 1));
        apply(&mut c, 9, merged(0, 4, "Hello"));
        apply(&mut c, 10, delta(rid, 1, 5, ", world"));
        apply(&mut c, 12, completed(rid, 1, "Hello, world"));
        assert!(c.violations.is_empty(), "{:?}", c.violations);

        // A merged delta that starts past the next index hides a gap; one that starts before it repeats deltas.
        let mut c = Checker::default();
        apply(&mut c, 3, started(rid, 1));
        apply(&mut c, 4, delta(rid, 1, 0, "a"));
        apply(&mut c, 9, merged(2, 4, "cde"));
        apply(&mut c, 10, merged(3, 5, "def"));
        let kinds: Vec<&str> = c.violations.iter().map(|v| v.0).collect();
        assert_eq!(kinds, vec!["gap", "duplicate_delta"]);
    }

    #[test]
    fn gaps_duplicates_and_disorder_are_caught() {
        let rid = Uuid::new_v4();
        let mut c = Checker::default();
        apply(&mut c, 3, started(rid, 1));
        apply(&mut c, 4, delta(rid, 1, 0, "a"));
        apply(&mut c, 4, delta(rid, 1, 1, "b")); // same seq
        apply(&mut c, 2, delta(rid, 1, 1, "b")); // older seq
        apply(&mut c, 6, delta(rid, 1, 2, "c")); // index 1 missing
        apply(&mut c, 7, delta(rid, 1, 2, "c")); // index repeated
        apply(&mut c, 8, completed(rid, 1, "abc"));
        let kinds: Vec<&str> = c.violations.iter().map(|v| v.0).collect();
        assert_eq!(kinds, vec!["duplicate_seq", "out_of_order_seq", "gap", "duplicate_delta", "text_mismatch"]);
    }

    #[test]
    fn a_new_attempt_starts_over_and_unfinished_responses_are_listed() {
        let rid = Uuid::new_v4();
        let mut c = Checker::default();
        apply(&mut c, 1, started(rid, 1));
        apply(&mut c, 2, delta(rid, 1, 0, "partial"));
        assert!(matches!(apply(&mut c, 3, started(rid, 2)), Seen::Started { first: false, .. }));
        apply(&mut c, 4, delta(rid, 2, 0, "whole"));
        assert_eq!(c.unfinished().count(), 1);
        apply(&mut c, 5, completed(rid, 2, "whole"));
        apply(&mut c, 6, delta(rid, 2, 1, "late"));
        let kinds: Vec<&str> = c.violations.iter().map(|v| v.0).collect();
        assert_eq!(kinds, vec!["event_after_end"]);
    }

    #[test]
    fn no_positions_in_the_baseline() {
        let rid = Uuid::new_v4();
        let mut c = Checker::default();
        let env = Envelope::new(Uuid::nil(), None, started(rid, 1));
        let json = wire(&env);
        let ev: WireEvent = serde_json::from_str(&json).unwrap();
        c.on_event(None, &ev);
        assert!(c.was_started(&rid));
        assert!(c.violations.is_empty());
    }
}
