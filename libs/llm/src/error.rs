//! Errors in the shape used across RelayHub: one struct with a kind to match on, a human message and the cause.

use std::fmt;

/// What went wrong while talking to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The provider could not be reached (DNS, refused, TLS, connect timeout).
    #[error("could not connect to the provider")]
    Connect,
    /// The provider answered with a non-success HTTP status.
    #[error("the provider answered HTTP {0}")]
    Status(u16),
    /// The provider answered something we could not understand (bad JSON, not an event stream).
    #[error("unexpected answer from the provider")]
    Protocol,
    /// The provider reported an error inside the stream (`data: {"error": ...}`).
    #[error("the provider reported an error")]
    Upstream,
    /// The connection broke off (or the stream ended) before the provider said it was done.
    #[error("the provider's stream broke off")]
    Disconnected,
    /// No response in time.
    #[error("the provider timed out")]
    Timeout,
    /// The model is not served by this provider.
    #[error("unknown model")]
    UnknownModel,
    /// The provider is misconfigured (e.g. a base URL that does not parse).
    #[error("provider misconfigured")]
    Config,
}

/// An error with a kind `K`, a message for people and the underlying cause.
#[derive(Debug, thiserror::Error)]
pub struct Error<K: fmt::Debug + fmt::Display> {
    kind: K,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl<K: fmt::Debug + fmt::Display> fmt::Display for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() { write!(f, "{}", self.kind) } else { write!(f, "{}: {}", self.kind, self.message) }
    }
}

impl<K: Copy + fmt::Debug + fmt::Display> Error<K> {
    pub fn new(kind: K, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }

    pub fn with_source(
        kind: K,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error { kind, message: message.into(), source: Some(source.into()) }
    }

    pub fn kind(&self) -> K {
        self.kind
    }

    /// The provider's own words (e.g. the `error.message` of an HTTP error body), without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The error of every provider call.
pub type LlmError = Error<ErrorKind>;
