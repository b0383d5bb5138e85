//! The built-in `simulated` provider: deterministic text at a configurable token rate, offline.
//!
//! It is the default (nothing to configure, no network) and the engine of the load test and the end-to-end tests,
//! so it must be reproducible: the same prompt always gives the same tokens, chosen from a built-in lexicon by a
//! hash of the prompt and the token's index. A job can steer it with a first line `/sim tokens=N rate=R` in the
//! newest user message, e.g. a test that needs a long response to stop, or a short one to be quick.
//!
//! The prose itself (the prompt hash, the lexicon, sentences, paragraphs, code blocks) is made in `text`.

mod text;

use crate::{ErrorKind, GenerateRequest, LlmError, Provider, TokenStream};
use futures::StreamExt;
use futures::future::BoxFuture;
use std::time::Duration;
use text::{compose, prompt_hash};

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
