//! Compact delivery: a subscription that asked for it (`subscribe {compact: true}`, as the web client does) gets
//! each run of consecutive deltas of a response that are queued on its socket at once as ONE merged
//! `response.delta` (`from_index..=index`, texts concatenated).
//!
//! Where runs come from:
//! - a catch-up queues what the client missed in batches as large as the socket's queue has room for: a late
//!   joiner of a response 2,000 tokens in gets it in a handful of frames instead of hundreds;
//! - live, a socket only has several deltas queued when it is behind (the machine is overloaded, or the client
//!   or its network is slow). Merging them then costs one frame instead of k, so a fan-out that falls behind
//!   catches up instead of falling further behind: the cost per event per socket shrinks as the load grows. A
//!   socket that keeps up has one frame queued at a time and gets every delta as stored.
//!
//! The writer merges what it takes from the queue ([`merge_runs`]), just before writing, so merging never
//! reorders anything and never holds back a frame. A merged delta's `seq` and `event_id` are its last delta's
//! (a client resuming from that `seq` misses nothing); its `ts_us` is its FIRST delta's, so a latency measured on
//! it is that of its oldest token.

use axum::extract::ws::Utf8Bytes;
use rh_protocol::frame::event_frame_json;
use rh_protocol::{Envelope, Event};
use std::collections::VecDeque;
use std::sync::Arc;

/// One frame queued for a socket. A delta sent to a compact subscription also carries its seq and decoded
/// envelope, so the writer can merge it with its neighbours.
#[derive(Clone)]
pub struct Outgoing {
    pub frame: Utf8Bytes,
    pub delta: Option<(u64, Arc<Envelope>)>,
}

impl From<Utf8Bytes> for Outgoing {
    fn from(frame: Utf8Bytes) -> Self {
        Outgoing { frame, delta: None }
    }
}

/// `(conversation, response, attempt, first index, last index)` of a mergeable delta.
fn span(o: &Outgoing) -> Option<(uuid::Uuid, uuid::Uuid, u32, u32, u32)> {
    let (_, env) = o.delta.as_ref()?;
    match &env.event {
        Event::ResponseDelta { response_id, attempt, index, from_index, .. } => {
            Some((env.conversation_id, *response_id, *attempt, from_index.unwrap_or(*index), *index))
        }
        _ => None,
    }
}

/// Merges, in place, each run of adjacent deltas of the same conversation, response and attempt whose indexes
/// follow each other. Returns how many deltas were folded away (0: the batch is unchanged).
pub fn merge_runs(batch: &mut VecDeque<Outgoing>) -> usize {
    // The common case, a socket that keeps up: nothing to merge, nothing allocated.
    let mergeable = batch.iter().filter(|o| o.delta.is_some()).count();
    if mergeable < 2 {
        return 0;
    }
    let mut out = VecDeque::with_capacity(batch.len());
    let mut run: Vec<Outgoing> = Vec::new();
    // The span of the run so far: (conversation, response, attempt, first index, last index).
    let mut run_span: Option<(uuid::Uuid, uuid::Uuid, u32, u32, u32)> = None;
    let mut folded = 0;
    for o in batch.drain(..) {
        let this = span(&o);
        let continues = match (run_span, this) {
            (Some((c0, r0, a0, _, last)), Some((c1, r1, a1, first, _))) => {
                c0 == c1 && r0 == r1 && a0 == a1 && last.checked_add(1) == Some(first)
            }
            _ => false,
        };
        if !continues {
            folded += flush(&mut run, &mut out);
        }
        run_span = this;
        if this.is_some() {
            run.push(o);
        } else {
            out.push_back(o);
        }
    }
    folded += flush(&mut run, &mut out);
    *batch = out;
    folded
}

/// Appends the run to `out`, as one merged delta if it has several. Returns how many deltas were folded away.
fn flush(run: &mut Vec<Outgoing>, out: &mut VecDeque<Outgoing>) -> usize {
    let merged = match run.as_slice() {
        [] | [_] => None,
        [first, .., last] => merge(first, last, run),
    };
    match merged {
        Some(m) => {
            let folded = run.len() - 1;
            run.clear();
            out.push_back(m);
            folded
        }
        None => {
            out.extend(run.drain(..));
            0
        }
    }
}

fn merge(first: &Outgoing, last: &Outgoing, run: &[Outgoing]) -> Option<Outgoing> {
    let ((_, first_env), (seq, last_env)) = (first.delta.as_ref()?, last.delta.as_ref()?);
    let (_, _, _, from, _) = span(first)?;
    let mut env = Envelope::clone(last_env);
    env.ts_us = first_env.ts_us;
    if let Event::ResponseDelta { text, from_index, .. } = &mut env.event {
        *text = run
            .iter()
            .filter_map(|o| match o.delta.as_ref().map(|(_, e)| &e.event) {
                Some(Event::ResponseDelta { text, .. }) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        *from_index = Some(from);
    }
    let json = serde_json::to_string(&env).ok()?;
    let frame = event_frame_json(env.conversation_id, *seq, &json).into();
    Some(Outgoing { frame, delta: Some((*seq, Arc::new(env))) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rh_protocol::ServerFrame;
    use uuid::Uuid;

    fn delta(conv: Uuid, seq: u64, rid: Uuid, attempt: u32, index: u32, text: &str, ts_us: i64) -> Outgoing {
        let event = Event::ResponseDelta { response_id: rid, attempt, index, text: text.into(), from_index: None };
        let mut env = Envelope::new(conv, None, event);
        env.ts_us = ts_us;
        let json = serde_json::to_string(&env).expect("json");
        Outgoing { frame: event_frame_json(conv, seq, &json).into(), delta: Some((seq, Arc::new(env))) }
    }

    fn plain(conv: Uuid, seq: u64) -> Outgoing {
        let env = Envelope::new(conv, None, Event::ConversationDeleted {});
        let json = serde_json::to_string(&env).expect("json");
        Outgoing::from(Utf8Bytes::from(event_frame_json(conv, seq, &json)))
    }

    fn sent(o: &Outgoing) -> (u64, Event, i64) {
        match serde_json::from_str::<ServerFrame>(o.frame.as_str()) {
            Ok(ServerFrame::Event { seq, event, .. }) => (seq, event.event, event.ts_us),
            other => panic!("not an event frame: {other:?}"),
        }
    }

    fn d(rid: Uuid, attempt: u32, index: u32, text: &str, from_index: Option<u32>) -> Event {
        Event::ResponseDelta { response_id: rid, attempt, index, text: text.into(), from_index }
    }

    #[test]
    fn runs_of_consecutive_deltas_merge_and_nothing_else_does() {
        let (c, other) = (Uuid::new_v4(), Uuid::new_v4());
        let (r1, r2) = (Uuid::new_v4(), Uuid::new_v4());
        let mut batch: VecDeque<Outgoing> = VecDeque::from(vec![
            plain(c, 1),
            delta(c, 2, r1, 1, 0, "He", 100),
            delta(c, 3, r1, 1, 1, "ll", 200),
            delta(c, 5, r1, 1, 2, "o", 300),
            delta(c, 6, r2, 1, 0, "x", 400), // another response interleaves: the run ends
            delta(c, 7, r1, 1, 3, " w", 500), // alone: sent as stored
            delta(other, 8, r1, 1, 4, "?", 600), // another conversation: never merged with c's
            delta(c, 9, r1, 2, 0, "A", 700), // a new attempt starts over
            delta(c, 10, r1, 2, 1, "B", 800),
            delta(c, 12, r1, 2, 3, "D", 900), // index 2 missing: not merged across the gap
            plain(c, 13),
        ]);
        assert_eq!(merge_runs(&mut batch), 3);
        let got: Vec<(u64, Event, i64)> = batch.iter().map(sent).collect();
        assert_eq!(got.len(), 8, "{got:?}");
        assert_eq!(got[1], (5, d(r1, 1, 2, "Hello", Some(0)), 100), "last seq, first ts_us");
        assert_eq!(got[2], (6, d(r2, 1, 0, "x", None), 400));
        assert_eq!(got[3], (7, d(r1, 1, 3, " w", None), 500));
        assert_eq!(got[4].0, 8);
        assert_eq!(got[5], (10, d(r1, 2, 1, "AB", Some(0)), 700));
        assert_eq!(got[6], (12, d(r1, 2, 3, "D", None), 900));
        assert_eq!((got[0].0, got[7].0), (1, 13));

        // A merged delta merges again with what follows it (a catch-up batch, then live deltas behind it).
        let mut batch: VecDeque<Outgoing> = VecDeque::from(vec![batch[1].clone(), delta(c, 14, r1, 1, 3, "!", 1000)]);
        assert_eq!(merge_runs(&mut batch), 1);
        assert_eq!(sent(&batch[0]), (14, d(r1, 1, 3, "Hello!", Some(0)), 100));
    }

    #[test]
    fn a_batch_without_runs_is_left_alone() {
        let (c, r) = (Uuid::new_v4(), Uuid::new_v4());
        let mut batch: VecDeque<Outgoing> = VecDeque::from(vec![plain(c, 1), delta(c, 2, r, 1, 0, "a", 1)]);
        assert_eq!(merge_runs(&mut batch), 0);
        assert_eq!(batch.len(), 2);
    }
}
