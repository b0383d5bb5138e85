//! OpenAI-compatible streaming client: `POST {base}/v1/chat/completions` with `stream: true`.
//!
//! One client covers OpenAI, vLLM, Ollama, llama.cpp server and LM Studio, which all answer with Server-Sent
//! Events `data: {"choices":[{"delta":{"content":"..."}}]}` and a final `data: [DONE]`. A stream that ends without
//! `[DONE]` (and without a `finish_reason`) broke off, and is reported as [`ErrorKind::Disconnected`] so the worker
//! does not pass a truncated answer off as complete.

use crate::sse::SseParser;
use crate::{ErrorKind, GenerateRequest, LlmError, Provider, TokenStream};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Most bytes of an HTTP error body we read to find the provider's message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// An API key. Never printed by `Debug` or `Display`, so it cannot leak through logs or `--help` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
impl FromStr for ApiKey {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ApiKey(s.to_owned()))
    }
}

/// Settings of an OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// E.g. `https://api.openai.com` or `http://127.0.0.1:11434`; a trailing `/v1` is accepted too.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set (local servers usually need none).
    pub api_key: Option<ApiKey>,
    /// Models offered to users: the allowlist. Required (an empty list is refused by [`OpenAiCompatible::new`]):
    /// a client must not be able to pick any model the upstream account can reach (cost, abuse).
    pub models: Vec<String>,
    pub connect_timeout: Duration,
    /// Longest silence between two reads of the response (the first token of a big model can take a while).
    pub idle_timeout: Duration,
}

impl OpenAiConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            api_key: None,
            models: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// The streaming chat-completions client.
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    api_key: Option<ApiKey>,
    models: Vec<String>,
}

/// reqwest is built without a default TLS crypto provider (`rustls-no-provider`): install ring once per process.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another part of the process installed one first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl OpenAiCompatible {
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        install_crypto_provider();
        if config.models.iter().all(|m| m.trim().is_empty()) {
            return Err(LlmError::new(
                ErrorKind::Config,
                "no models allowed: the OpenAI-compatible provider needs an allowlist",
            ));
        }
        let base = config.base_url.trim_end_matches('/');
        let url = if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        };
        let endpoint = reqwest::Url::parse(&url)
            .map_err(|e| LlmError::with_source(ErrorKind::Config, format!("base URL {:?}", config.base_url), e))?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.idle_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| LlmError::with_source(ErrorKind::Config, "building the HTTP client", e))?;
        Ok(OpenAiCompatible { http, endpoint, api_key: config.api_key, models: config.models })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &reqwest::Url {
        &self.endpoint
    }

    fn body(request: &GenerateRequest) -> Value {
        let messages: Vec<Value> =
            request.messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect();
        let mut body = json!({"model": request.model, "messages": messages, "stream": true});
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(n) = request.max_tokens {
            body["max_tokens"] = json!(n);
        }
        body
    }
}

impl Provider for OpenAiCompatible {
    fn kind(&self) -> &'static str {
        "openai"
    }

    fn models(&self) -> Vec<String> {
        self.models.clone()
    }

    fn generate(&self, request: GenerateRequest) -> BoxFuture<'static, Result<TokenStream, LlmError>> {
        let this = self.clone();
        Box::pin(async move {
            if !this.models.contains(&request.model) {
                return Err(LlmError::new(
                    ErrorKind::UnknownModel,
                    format!("model {:?} is not served here", request.model),
                ));
            }
            let mut req = this
                .http
                .post(this.endpoint.clone())
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .json(&Self::body(&request));
            if let Some(key) = &this.api_key {
                req = req.bearer_auth(key.expose());
            }
            let resp = req.send().await.map_err(send_error)?;
            let status = resp.status();
            if !status.is_success() {
                let message = error_message(resp).await;
                return Err(LlmError::new(ErrorKind::Status(status.as_u16()), message));
            }
            let is_json = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            if is_json {
                // A server that ignored `stream: true` answered with one whole completion.
                return Ok(whole_completion(resp).await);
            }
            let body = resp.bytes_stream().map_err(read_error).boxed();
            Ok(sse_tokens(body))
        })
    }
}

fn send_error(e: reqwest::Error) -> LlmError {
    let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Connect };
    let message = error_chain(&e);
    LlmError::with_source(kind, message, e)
}

fn read_error(e: reqwest::Error) -> LlmError {
    let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Disconnected };
    let message = error_chain(&e);
    LlmError::with_source(kind, message, e)
}

/// reqwest's own message is terse ("error sending request"); the cause says what actually happened.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// The provider's message from an error body: `{"error":{"message":...}}`, `{"error":"..."}`, `{"message":...}`,
/// or the (shortened) text itself.
async fn error_message(resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            body.truncate(MAX_ERROR_BODY);
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    if let Ok(v) = serde_json::from_str::<Value>(&text)
        && let Some(m) = message_of(&v)
    {
        return m;
    }
    let text = text.trim();
    if text.chars().count() > 500 { text.chars().take(500).collect::<String>() + "…" } else { text.to_owned() }
}

fn message_of(v: &Value) -> Option<String> {
    let e = v.get("error").unwrap_or(v);
    e.get("message").and_then(Value::as_str).or_else(|| e.as_str()).map(str::to_owned)
}

async fn whole_completion(resp: reqwest::Response) -> TokenStream {
    let item = match resp.json::<Value>().await {
        Ok(v) => match v.pointer("/choices/0/message/content").and_then(Value::as_str) {
            Some(text) => Ok(text.to_owned()),
            None => Err(LlmError::new(ErrorKind::Protocol, "no choices[0].message.content in the completion")),
        },
        Err(e) => Err(read_error(e)),
    };
    futures::stream::iter([item]).boxed()
}

/// State of one streamed completion.
struct SseState {
    body: BoxStream<'static, Result<Bytes, LlmError>>,
    parser: SseParser,
    ready: VecDeque<Result<String, LlmError>>,
    /// `[DONE]` seen, or an error queued: nothing more is read.
    done: bool,
    /// A chunk carried a `finish_reason`: a stream ending without `[DONE]` after it is still complete.
    finished: bool,
}

impl SseState {
    fn on_event(&mut self, data: &str) {
        if self.done {
            return;
        }
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                self.fail(LlmError::with_source(ErrorKind::Protocol, "an event that is not JSON", e));
                return;
            }
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            let message = message_of(&v).unwrap_or_else(|| v["error"].to_string());
            self.fail(LlmError::new(ErrorKind::Upstream, message));
            return;
        }
        let choice = v.pointer("/choices/0");
        if let Some(text) = choice.and_then(|c| c.pointer("/delta/content")).and_then(Value::as_str)
            && !text.is_empty()
        {
            self.ready.push_back(Ok(text.to_owned()));
        }
        if choice.and_then(|c| c.get("finish_reason")).is_some_and(|r| !r.is_null()) {
            self.finished = true;
        }
    }

    fn fail(&mut self, e: LlmError) {
        self.ready.push_back(Err(e));
        self.done = true;
    }
}

/// Turns an SSE body into text chunks; see the module doc for how the end is recognised.
fn sse_tokens(body: BoxStream<'static, Result<Bytes, LlmError>>) -> TokenStream {
    let state = SseState { body, parser: SseParser::new(), ready: VecDeque::new(), done: false, finished: false };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.ready.pop_front() {
                return Some((item, st));
            }
            if st.done {
                return None;
            }
            match st.body.next().await {
                Some(Ok(bytes)) => {
                    for data in st.parser.feed(&bytes) {
                        st.on_event(&data);
                    }
                }
                Some(Err(e)) => st.fail(e),
                None => {
                    if let Some(data) = st.parser.finish() {
                        st.on_event(&data);
                    }
                    if !st.done {
                        if st.finished {
                            st.done = true;
                        } else {
                            st.fail(LlmError::new(ErrorKind::Disconnected, "the stream ended before [DONE]"));
                        }
                    }
                }
            }
        }
    })
    .boxed()
}
