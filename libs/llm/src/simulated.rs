//! The built-in `simulated` provider: deterministic text at a configurable token rate, offline.
//!
//! It is the default (nothing to configure, no network) and the engine of the load test and the end-to-end tests,
//! so it must be reproducible: the same prompt always gives the same tokens, chosen from a built-in lexicon by a
//! hash of the prompt and the token's index. A job can steer it with a first line `/sim tokens=N rate=R` in the
//! newest user message, e.g. a test that needs a long response to stop, or a short one to be quick.

use crate::{ErrorKind, GenerateRequest, LlmError, Provider, TokenStream};
use futures::StreamExt;
use futures::future::BoxFuture;
use std::time::Duration;

/// Upper bound on tokens per response, whatever a directive asks for (the text is built up front).
pub const MAX_TOKENS: u32 = 100_000;

/// Settings of the simulated provider.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedConfig {
    /// Models it answers to (default `sim-1`, `sim-2`).
    pub models: Vec<String>,
    /// Tokens per response unless a directive or `max_tokens` says otherwise.
    pub tokens: u32,
    /// Tokens per second; `0` or less means as fast as possible.
    pub tokens_per_sec: f64,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        SimulatedConfig { models: vec!["sim-1".into(), "sim-2".into()], tokens: 80, tokens_per_sec: 30.0 }
    }
}

/// `/sim tokens=N rate=R` on the first line of the newest user message; either key optional.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SimDirective {
    pub tokens: Option<u32>,
    pub rate: Option<f64>,
}

impl SimDirective {
    /// Reads the directive from the first line of `text`; `None` when the line is not a `/sim` line.
    /// Unknown keys and unparsable values are ignored, so a typo falls back to the defaults instead of failing.
    pub fn parse(text: &str) -> Option<SimDirective> {
        let first = text.lines().next()?.trim();
        let rest = first.strip_prefix("/sim")?;
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            return None;
        }
        let mut d = SimDirective::default();
        for pair in rest.split_whitespace() {
            let Some((key, value)) = pair.split_once('=') else { continue };
            match key {
                "tokens" => d.tokens = value.parse().ok(),
                "rate" => d.rate = value.parse::<f64>().ok().filter(|r| r.is_finite()),
                _ => {}
            }
        }
        Some(d)
    }
}

/// Deterministic simulated model.
#[derive(Debug, Clone, Default)]
pub struct Simulated {
    config: SimulatedConfig,
}

impl Simulated {
    pub fn new(config: SimulatedConfig) -> Self {
        Simulated { config }
    }

    pub fn config(&self) -> &SimulatedConfig {
        &self.config
    }

    /// Token count and rate for `request`: the directive wins over the configuration, `max_tokens` caps both.
    pub fn plan(&self, request: &GenerateRequest) -> (u32, f64) {
        let d = request.last_user_message().and_then(SimDirective::parse).unwrap_or_default();
        let mut tokens = d.tokens.unwrap_or(self.config.tokens);
        if let Some(max) = request.max_tokens {
            tokens = tokens.min(max);
        }
        (tokens.min(MAX_TOKENS), d.rate.unwrap_or(self.config.tokens_per_sec))
    }

    /// The full text the request produces, as tokens (what the stream yields, without the pacing).
    pub fn tokens_for(&self, request: &GenerateRequest) -> Vec<String> {
        let (count, _) = self.plan(request);
        compose(prompt_hash(request), count as usize)
    }
}

impl Provider for Simulated {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn models(&self) -> Vec<String> {
        self.config.models.clone()
    }

    fn generate(&self, request: GenerateRequest) -> BoxFuture<'static, Result<TokenStream, LlmError>> {
        let known = self.config.models.contains(&request.model);
        let result = if known {
            let (_, rate) = self.plan(&request);
            Ok(paced(self.tokens_for(&request), rate))
        } else {
            Err(LlmError::new(ErrorKind::UnknownModel, format!("model {:?} is not served here", request.model)))
        };
        Box::pin(async move { result })
    }
}

/// Yields token `i` at `start + (i + 1) / rate` (the first one too arrives after one interval, like a real model's
/// time to first token). Tokens that are due together come out back to back, so a slow consumer catches up.
fn paced(tokens: Vec<String>, rate: f64) -> TokenStream {
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
    let start = tokio::time::Instant::now();
    futures::stream::unfold((tokens.into_iter().enumerate(), start), move |(mut it, start)| async move {
        let (i, token) = it.next()?;
        if let Some(interval) = interval {
            tokio::time::sleep_until(start + interval.mul_f64((i + 1) as f64)).await;
        }
        Some((Ok(token), (it, start)))
    })
    .boxed()
}

/// FNV-1a over roles and contents: stable across runs, platforms and Rust versions (unlike `DefaultHasher`).
fn prompt_hash(request: &GenerateRequest) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for m in &request.messages {
        for b in m.role.bytes().chain([0u8]).chain(m.content.bytes()).chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// SplitMix64 of `seed` and `i`: the pseudo-random number behind token `i`.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const LEXICON: &[&str] = &[
    "the",
    "relay",
    "message",
    "stream",
    "team",
    "shared",
    "token",
    "response",
    "model",
    "context",
    "answer",
    "question",
    "plan",
    "launch",
    "review",
    "draft",
    "note",
    "idea",
    "system",
    "worker",
    "edge",
    "queue",
    "event",
    "sequence",
    "history",
    "viewer",
    "permission",
    "owner",
    "thread",
    "project",
    "deadline",
    "budget",
    "design",
    "feature",
    "release",
    "customer",
    "feedback",
    "metric",
    "latency",
    "throughput",
    "cache",
    "index",
    "schema",
    "query",
    "result",
    "summary",
    "detail",
    "example",
    "step",
    "option",
    "trade-off",
    "risk",
    "goal",
    "we",
    "you",
    "it",
    "they",
    "should",
    "could",
    "will",
    "can",
    "must",
    "might",
    "consider",
    "check",
    "build",
    "ship",
    "test",
    "measure",
    "compare",
    "improve",
    "explain",
    "write",
    "read",
    "keep",
    "start",
    "finish",
    "and",
    "or",
    "but",
    "so",
    "because",
    "with",
    "without",
    "for",
    "from",
    "into",
    "over",
    "under",
    "after",
    "before",
    "while",
    "then",
    "a",
    "an",
    "this",
    "that",
    "every",
    "each",
    "some",
    "more",
    "less",
    "first",
    "next",
    "last",
    "quick",
    "careful",
    "clear",
    "simple",
    "robust",
    "live",
    "durable",
    "fast",
    "small",
    "large",
    "early",
    "late",
    "new",
    "better",
];

/// Builds `count` tokens of prose for `seed`: capitalised sentences of 5–16 words, commas now and then,
/// paragraphs, and for about one prompt in four a short code block in the middle of a long enough answer.
fn compose(seed: u64, count: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(count);
    let code_at = (seed.is_multiple_of(4) && count >= 40).then_some(count / 2);
    let mut sentence_len = 0u64;
    let mut sentence_target = 5 + mix(seed, u64::MAX) % 12;
    let mut sentences = 0u64;
    let mut capital = true;
    let mut i = 0usize;
    while out.len() < count {
        if Some(out.len()) == code_at {
            for line in code_block(seed) {
                if out.len() + 1 >= count {
                    break;
                }
                out.push(line);
            }
            out.push("```\n\n".to_owned());
            capital = true;
            sentence_len = 0;
            continue;
        }
        let r = mix(seed, i as u64);
        i += 1;
        let word = LEXICON[(r % LEXICON.len() as u64) as usize];
        let mut token = String::with_capacity(word.len() + 3);
        if out.is_empty() || capital && sentence_len == 0 && out.last().is_some_and(|t: &String| t.ends_with('\n')) {
            // Start of the text or of a paragraph: no leading space.
        } else {
            token.push(' ');
        }
        if capital {
            let mut chars = word.chars();
            if let Some(c) = chars.next() {
                token.extend(c.to_uppercase());
                token.push_str(chars.as_str());
            }
            capital = false;
        } else {
            token.push_str(word);
        }
        sentence_len += 1;
        let last = out.len() + 1 == count;
        if sentence_len >= sentence_target || last {
            token.push(if (r >> 40).is_multiple_of(7) { '?' } else { '.' });
            sentences += 1;
            sentence_len = 0;
            sentence_target = 5 + (r >> 20) % 12;
            capital = true;
            if !last && sentences.is_multiple_of(2 + (r >> 48) % 3) {
                token.push_str("\n\n");
            }
        } else if (r >> 32).is_multiple_of(9) && sentence_len > 2 {
            token.push(',');
        }
        out.push(token);
    }
    out
}

/// A few lines of plausible code; each line is one token.
fn code_block(seed: u64) -> Vec<String> {
    let w = |k: u64| LEXICON[(mix(seed, 1_000_000 + k) % LEXICON.len() as u64) as usize].replace('-', "_");
    vec![
        "\n\n```rust\n".to_owned(),
        format!("fn {}_{}(input: &str) -> usize {{\n", w(1), w(2)),
        format!("    let {} = input.len();\n", w(3)),
        format!("    {} * 2\n", w(3)),
        "}\n".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rh_protocol::rpc::ChatMessage;

    fn req(text: &str) -> GenerateRequest {
        GenerateRequest {
            model: "sim-1".into(),
            messages: vec![ChatMessage { role: "user".into(), content: text.into() }],
            temperature: None,
            max_tokens: None,
        }
    }

    #[test]
    fn directive_parsing() {
        assert_eq!(
            SimDirective::parse("/sim tokens=5 rate=200\nhi"),
            Some(SimDirective { tokens: Some(5), rate: Some(200.0) })
        );
        assert_eq!(SimDirective::parse("/sim rate=2.5"), Some(SimDirective { tokens: None, rate: Some(2.5) }));
        assert_eq!(SimDirective::parse("  /sim tokens=7  "), Some(SimDirective { tokens: Some(7), rate: None }));
        assert_eq!(SimDirective::parse("/sim"), Some(SimDirective::default()));
        assert_eq!(SimDirective::parse("/sim tokens=x bogus rate=nan"), Some(SimDirective::default()));
        assert_eq!(SimDirective::parse("/simulate tokens=5"), None);
        assert_eq!(SimDirective::parse("hello\n/sim tokens=5"), None);
        assert_eq!(SimDirective::parse(""), None);
    }

    #[test]
    fn the_directive_of_the_newest_user_message_wins_and_max_tokens_caps() {
        let sim = Simulated::new(SimulatedConfig { tokens: 80, tokens_per_sec: 30.0, ..Default::default() });
        let mut r = req("/sim tokens=12 rate=500\nhello");
        assert_eq!(sim.plan(&r), (12, 500.0));
        r.messages.insert(0, ChatMessage { role: "user".into(), content: "/sim tokens=99".into() });
        assert_eq!(sim.plan(&r), (12, 500.0));
        r.messages.push(ChatMessage { role: "user".into(), content: "no directive".into() });
        assert_eq!(sim.plan(&r), (80, 30.0));
        r.max_tokens = Some(10);
        assert_eq!(sim.plan(&r), (10, 30.0));
    }

    #[test]
    fn same_prompt_same_tokens_other_prompt_other_text() {
        let sim = Simulated::default();
        for n in [1usize, 2, 7, 80, 400] {
            let prompt = format!("/sim tokens={n}\nwrite the plan");
            let a = sim.tokens_for(&req(&prompt));
            assert_eq!(a.len(), n);
            assert_eq!(a, sim.tokens_for(&req(&prompt)));
            assert!(a.iter().all(|t| !t.is_empty()));
        }
        let a = sim.tokens_for(&req("first prompt")).concat();
        let b = sim.tokens_for(&req("second prompt")).concat();
        assert_ne!(a, b);
        assert!(a.starts_with(|c: char| c.is_uppercase()), "{a}");
        assert!(a.ends_with(['.', '?']), "{a}");
    }

    #[test]
    fn some_prompts_get_a_code_block() {
        let sim = Simulated::default();
        let with_code = (0..40)
            .map(|i| sim.tokens_for(&req(&format!("/sim tokens=100\nprompt {i}"))).concat())
            .filter(|t| t.contains("```rust\n"))
            .count();
        assert!(with_code > 0 && with_code < 40, "{with_code} of 40");
    }

    #[tokio::test]
    async fn streams_at_the_requested_rate() {
        let sim = Simulated::default();
        let t0 = std::time::Instant::now();
        let s = sim.generate(req("/sim tokens=10 rate=100\nhi")).await.expect("known model");
        let tokens: Vec<String> = s.map(|t| t.expect("no error")).collect().await;
        let took = t0.elapsed();
        assert_eq!(tokens.len(), 10);
        assert!(took >= Duration::from_millis(95) && took < Duration::from_secs(2), "{took:?}");
        assert_eq!(tokens, sim.tokens_for(&req("/sim tokens=10 rate=100\nhi")));
    }

    #[tokio::test]
    async fn unknown_models_are_refused() {
        let sim = Simulated::default();
        let mut r = req("hi");
        r.model = "gpt-9".into();
        let e = sim.generate(r).await.err().expect("refused");
        assert_eq!(e.kind(), ErrorKind::UnknownModel);
    }
}
