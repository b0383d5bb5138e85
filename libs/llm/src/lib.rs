//! LLM providers behind one trait.
//!
//! | item | purpose |
//! |---|---|
//! | [`Provider`] | start a generation, get a stream of text chunks back |
//! | [`GenerateRequest`] | model, messages, temperature, max_tokens (built from a [`GenerateJob`]) |
//! | [`Simulated`] | deterministic offline text at a configurable rate; the default and the load test's engine |
//! | [`OpenAiCompatible`] | `POST {base}/v1/chat/completions` with `stream: true` (OpenAI, vLLM, Ollama, llama.cpp, LM Studio) |
//! | [`Coalesce`] | the worker's coalescing window (flags shared with the load tool's synthetic responses) |
//! | [`Error`] / [`ErrorKind`] | what went wrong, as a kind the worker can match on |
//!
//! The worker owns everything around a generation (coalescing, publishing, stop, retries); a provider only turns a
//! request into text chunks. Dropping the returned stream cancels the generation (the HTTP request is closed).

pub mod coalesce;
mod error;
mod openai;
mod simulated;
mod sse;

pub use coalesce::Coalesce;
pub use error::{Error, ErrorKind, LlmError};
pub use openai::{ApiKey, OpenAiCompatible, OpenAiConfig, install_crypto_provider};
pub use simulated::{SimDirective, Simulated, SimulatedConfig};
pub use sse::SseParser;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use rh_protocol::rpc::{ChatMessage, GenerateJob};

/// A stream of generated text chunks (tokens, or whatever granularity the provider streams). It ends after the
/// last chunk; an `Err` item means the generation broke off and nothing more follows.
pub type TokenStream = BoxStream<'static, Result<String, LlmError>>;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    pub model: String,
    /// The context, oldest first (system prompt first if any), ending with the newest user message.
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

impl From<&GenerateJob> for GenerateRequest {
    fn from(job: &GenerateJob) -> Self {
        GenerateRequest {
            model: job.model.clone(),
            messages: job.messages.clone(),
            temperature: job.temperature,
            max_tokens: job.max_tokens,
        }
    }
}

impl GenerateRequest {
    /// The content of the newest `user` message, if any.
    pub fn last_user_message(&self) -> Option<&str> {
        self.messages.iter().rev().find(|m| m.role == "user").map(|m| m.content.as_str())
    }
}

/// A source of generated text.
///
/// `generate` returns a `'static` future and stream (providers clone what they need), so the trait is
/// dyn-compatible and the worker can hold an `Arc<dyn Provider>` chosen at start-up. The future resolves once the
/// provider accepted the request (for HTTP: the response status is known), so "could not start" errors
/// (connect, 401, unknown model) are told apart from errors mid-stream.
pub trait Provider: Send + Sync + 'static {
    /// `simulated` or `openai`: shown next to each model in `rh.worker.models`.
    fn kind(&self) -> &'static str;
    /// Models this provider serves. Empty means "whatever the upstream accepts".
    fn models(&self) -> Vec<String>;
    /// Starts a generation.
    fn generate(&self, request: GenerateRequest) -> BoxFuture<'static, Result<TokenStream, LlmError>>;
}
