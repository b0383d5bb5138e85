//! Synthetic responses for the `bare` and `pushpin` baselines: the same events the stack streams for a `/sim`
//! prompt (the simulated provider's tokens, paced at the same rate, cut into deltas by the worker's coalescing),
//! as the same edge `event` frames, but made by the load tool's own source: no worker, no NATS, no PostgreSQL.
//!
//! [`Script`] is the schedule of one response; [`ConvSeq`] numbers a conversation's events like the stream does;
//! [`Source`] plays a script into a callback that gets each frame's JSON text at the moment it is due.

pub use rh_llm::Coalesce;
use rh_protocol::frame::event_frame_json;
use rh_protocol::{Envelope, Event, Permission, ServerFrame};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// The model name the synthetic `response.started` and `response.completed` carry (as the stack's default).
const MODEL: &str = "sim-1";

/// What a baseline's responder asks its source for (the bare broadcaster's control frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRequest {
    pub conversation_id: Uuid,
    /// The prompt the edge phase sends (`/sim tokens=N rate=R` first): the same token count, rate and text.
    pub prompt: String,
    /// The worker's coalescing.
    pub coalesce: Coalesce,
}

/// Responses a source is playing now (the load its coalescing window follows).
#[derive(Debug, Default)]
pub struct Streaming(AtomicU64);

impl Streaming {
    /// Counts one more until the guard drops.
    pub fn enter(&self) -> StreamingGuard<'_> {
        self.0.fetch_add(1, Ordering::AcqRel);
        StreamingGuard(self)
    }

    /// How many play now.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

pub struct StreamingGuard<'a>(&'a Streaming);

impl Drop for StreamingGuard<'_> {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The answer: the response that will stream, and the position of its first event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StartReply {
    pub response_id: Uuid,
    pub seq: u64,
}

/// One delta of a script: due at `at` after the response's start, the tokens joined.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub at: Duration,
    pub text: String,
}

/// One response: its tokens, paced as the simulated provider paces them, and its whole text.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    tokens: Vec<String>,
    rate: f64,
    pub text: String,
}

impl Script {
    /// The simulated provider's tokens and rate for `prompt`.
    pub fn for_prompt(prompt: &str) -> Script {
        let request = rh_llm::GenerateRequest {
            model: MODEL.into(),
            messages: vec![rh_protocol::rpc::ChatMessage { role: "user".into(), content: prompt.into() }],
            temperature: None,
            max_tokens: None,
        };
        let sim = rh_llm::Simulated::default();
        let (_, rate) = sim.plan(&request);
        Script::from_tokens(sim.tokens_for(&request), rate)
    }

    /// Token `i` due at `(i + 1) / rate`.
    pub fn from_tokens(tokens: Vec<String>, rate: f64) -> Script {
        Script { text: tokens.concat(), tokens, rate }
    }

    fn due(&self, i: usize) -> Duration {
        if self.rate > 0.0 { Duration::from_secs_f64((i + 1) as f64 / self.rate) } else { Duration::ZERO }
    }

    /// The deltas, grouped like the worker does: the first token after a flush arms a timer of `window()`, and
    /// every token due before it fires goes into that delta. `window` is asked at each flush, as the worker asks
    /// its coalescing for the answers it streams at that moment, so both send as many deltas under the same load.
    pub fn deltas<'a>(&'a self, mut window: impl FnMut() -> Duration + 'a) -> impl Iterator<Item = Delta> + 'a {
        let (mut i, mut flush_at, mut pending) = (0, None::<Duration>, String::new());
        std::iter::from_fn(move || {
            while i < self.tokens.len() {
                let at = self.due(i);
                if let Some(f) = flush_at
                    && at > f
                {
                    flush_at = None;
                    return Some(Delta { at: f, text: std::mem::take(&mut pending) });
                }
                pending.push_str(&self.tokens[i]);
                i += 1;
                flush_at.get_or_insert_with(|| at + window());
            }
            // The worker flushes the rest when the stream ends, i.e. at the last token.
            (!pending.is_empty()).then(|| Delta {
                at: self.due(self.tokens.len().saturating_sub(1)),
                text: std::mem::take(&mut pending),
            })
        })
    }
}

/// A conversation's positions: what the stream's sequence is to the stack.
#[derive(Debug, Default)]
pub struct ConvSeq(AtomicU64);

impl ConvSeq {
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::AcqRel) + 1
    }

    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// The `subscribed` frame a baseline answers a `subscribe` with (`seq`: the conversation's position now).
pub fn subscribed_frame(conversation_id: Uuid, seq: u64) -> String {
    ServerFrame::Subscribed { conversation_id, permission: Permission::View, seq }.to_json()
}

/// An `event` frame, stamped now, at the conversation's next position.
fn frame(conversation_id: Uuid, seq: &ConvSeq, event: Event) -> String {
    let envelope = Envelope::new(conversation_id, None, event);
    // Plain data: serializing cannot fail.
    let json = serde_json::to_string(&envelope).unwrap_or_default();
    event_frame_json(conversation_id, seq.next(), &json)
}

/// Plays one response into `emit`: `response.started`, the deltas when due, `response.completed`.
pub struct Source;

impl Source {
    /// Reserves the response's id and returns it with the position its first event will have; the caller then
    /// runs [`Source::play`] (usually on a task of its own).
    pub fn reserve(seq: &ConvSeq) -> StartReply {
        StartReply { response_id: Uuid::now_v7(), seq: seq.current() + 1 }
    }

    /// `window`: the coalescing window at each flush ([`Script::deltas`]).
    pub async fn play(
        conversation_id: Uuid,
        response_id: Uuid,
        script: &Script,
        window: impl FnMut() -> Duration,
        seq: &ConvSeq,
        mut emit: impl FnMut(String),
    ) {
        let start = Instant::now();
        let attempt = 1;
        emit(frame(
            conversation_id,
            seq,
            Event::ResponseStarted { response_id, message_id: Uuid::now_v7(), model: MODEL.into(), attempt },
        ));
        for (index, d) in script.deltas(window).enumerate() {
            tokio::time::sleep_until(start + d.at).await;
            let event =
                Event::ResponseDelta { response_id, attempt, index: index as u32, text: d.text, from_index: None };
            emit(frame(conversation_id, seq, event));
        }
        emit(frame(
            conversation_id,
            seq,
            Event::ResponseCompleted { response_id, attempt, model: MODEL.into(), text: script.text.clone() },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Checker, Seen, WireEvent, WireFrame};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn deltas_group_like_the_worker() {
        let tokens: Vec<String> = (0..6).map(|i| format!("t{i} ")).collect();
        // 50 tok/s: tokens due at 20, 40, 60, ... ms; 30 ms coalescing: [20, 40] flush at 50, [60, 80] at 90, ...
        let s = Script::from_tokens(tokens.clone(), 50.0);
        let deltas: Vec<Delta> = s.deltas(|| ms(30)).collect();
        let at: Vec<Duration> = deltas.iter().map(|d| d.at).collect();
        assert_eq!(at, vec![ms(50), ms(90), ms(120)]);
        assert_eq!(deltas[0].text, "t0 t1 ");
        assert_eq!(deltas.iter().map(|d| d.text.as_str()).collect::<String>(), s.text);
        // 20 tok/s: one token per delta.
        assert_eq!(Script::from_tokens(tokens.clone(), 20.0).deltas(|| ms(30)).count(), 6);
        // The window is asked at each flush: 30 ms, then 70 ms ([60, 80, 100, 120] flush at 130), then 30 ms (the
        // last two, flushed at the last token).
        let eight: Vec<String> = (0..8).map(|i| format!("t{i} ")).collect();
        let mut windows = [ms(30), ms(70), ms(30)].into_iter();
        let s = Script::from_tokens(eight, 50.0);
        let at: Vec<Duration> = s.deltas(move || windows.next().unwrap_or(ms(30))).map(|d| d.at).collect();
        assert_eq!(at, vec![ms(50), ms(130), ms(160)]);
    }

    #[test]
    fn streaming_counts_what_plays() {
        let streaming = Streaming::default();
        let g1 = streaming.enter();
        let n1 = streaming.current();
        let _g2 = streaming.enter();
        let n2 = streaming.current();
        drop(g1);
        let _g3 = streaming.enter();
        assert_eq!((n1, n2, streaming.current()), (1, 2, 2));
    }

    #[test]
    fn the_prompt_decides_tokens_and_rate() {
        let s = Script::for_prompt("/sim tokens=40 rate=20\nhello");
        let deltas: Vec<Delta> = s.deltas(|| ms(30)).collect();
        assert_eq!(deltas.len(), 40);
        assert_eq!(deltas[39].at, ms(2000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_played_response_passes_the_viewer_checks() {
        let conv = Uuid::new_v4();
        let seq = ConvSeq::default();
        let script = Script::for_prompt("/sim tokens=30 rate=100\nx");
        let reply = Source::reserve(&seq);
        let mut frames = Vec::new();
        Source::play(conv, reply.response_id, &script, || ms(30), &seq, |f| frames.push(f)).await;
        assert_eq!(frames.len(), script.deltas(|| ms(30)).count() + 2);
        let mut checker = Checker::default();
        let mut ended = false;
        for (k, text) in frames.iter().enumerate() {
            let head: WireFrame = serde_json::from_str(text).unwrap();
            assert_eq!(head.seq, Some(reply.seq + k as u64));
            let ev: WireEvent = serde_json::from_str(head.event.unwrap().get()).unwrap();
            if let Seen::Ended { .. } = checker.on_event(head.seq, &ev) {
                ended = true;
            }
        }
        assert!(ended && checker.violations.is_empty(), "{:?}", checker.violations);
        let sub = subscribed_frame(conv, 7);
        let sub: WireFrame = serde_json::from_str(&sub).unwrap();
        assert_eq!((sub.kind.as_ref(), sub.seq), ("subscribed", Some(7)));
    }
}
