//! [`Error`]: what went wrong with a call, as a [`kind`](Error::kind) callers match on.

use reqwest::StatusCode;
use serde_json::Value;

/// Longest piece of an unexpected reply body kept in an error's message.
const BODY_SNIPPET: usize = 512;

/// A failed call: which one (`op`, e.g. `login` or `GET /conversations/…`), what went wrong ([`ErrorKind`]) and,
/// for transport and decoding failures, the underlying error as [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[error("{op}: {kind}{}", suffix(.detail.as_deref()))]
pub struct Error {
    kind: ErrorKind,
    op: String,
    /// The api's error message, what a reply lacked, or why a transport failed.
    detail: Option<String>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No answer: building the HTTP client, connecting, sending, a timeout, or reading the reply failed.
    Transport,
    /// The api answered with another status than the call expects. `code` is `error.code` of the api's
    /// `{"error":{"code","message"}}` body (e.g. `forbidden`, `not_found`), when the body has one.
    Status { status: StatusCode, code: Option<String> },
    /// The expected status, but a reply without the expected fields (or not JSON).
    Decode,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorKind::Transport => f.write_str("no answer"),
            ErrorKind::Status { status, code: Some(code) } => write!(f, "HTTP {status} ({code})"),
            ErrorKind::Status { status, code: None } => write!(f, "HTTP {status}"),
            ErrorKind::Decode => f.write_str("unexpected reply"),
        }
    }
}

fn suffix(detail: Option<&str>) -> String {
    detail.map(|d| format!(": {d}")).unwrap_or_default()
}

impl Error {
    /// What went wrong, to match on.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The call that failed: a typed call's name (`login`, `send message`…) or `METHOD /path` for a raw request.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The HTTP status of a [`ErrorKind::Status`] error.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.kind {
            ErrorKind::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The api's error code (`{"error":{"code"}}`) of a [`ErrorKind::Status`] error, when the body had one.
    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn transport(op: &str, e: reqwest::Error) -> Self {
        let detail = if e.is_timeout() {
            Some("timed out")
        } else if e.is_connect() {
            Some("could not connect")
        } else if e.is_builder() {
            Some("could not build the request or client")
        } else if e.is_body() || e.is_decode() {
            Some("reading the reply failed")
        } else {
            None
        };
        Error {
            kind: ErrorKind::Transport,
            op: op.to_owned(),
            detail: detail.map(str::to_owned),
            source: Some(e.into()),
        }
    }

    /// An unexpected status; the code and message come from the api's error body when it is one.
    pub(crate) fn status_from(op: &str, status: StatusCode, body: &[u8]) -> Self {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let field = |name: &str| v.pointer(&format!("/error/{name}")).and_then(Value::as_str).map(str::to_owned);
        let detail = match field("message") {
            Some(m) => Some(m),
            None if body.is_empty() => None,
            None => {
                let text = String::from_utf8_lossy(body);
                let mut end = text.len().min(BODY_SNIPPET);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                Some(if end < text.len() { format!("{}…", &text[..end]) } else { text.into_owned() })
            }
        };
        Error { kind: ErrorKind::Status { status, code: field("code") }, op: op.to_owned(), detail, source: None }
    }

    pub(crate) fn decode(
        op: &str,
        detail: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error { kind: ErrorKind::Decode, op: op.to_owned(), detail: Some(detail.into()), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keeps_the_api_code_and_message() {
        let e = Error::status_from(
            "share",
            StatusCode::FORBIDDEN,
            br#"{"error":{"code":"forbidden","message":"only the owner can share"}}"#,
        );
        assert_eq!(e.kind(), &ErrorKind::Status { status: StatusCode::FORBIDDEN, code: Some("forbidden".into()) });
        assert_eq!(e.code(), Some("forbidden"));
        assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));
        assert_eq!(e.to_string(), "share: HTTP 403 Forbidden (forbidden): only the owner can share");
    }

    #[test]
    fn status_without_an_error_body() {
        let e = Error::status_from("GET /x", StatusCode::BAD_GATEWAY, "<html>bad gateway</html>".as_bytes());
        assert_eq!(e.code(), None);
        assert_eq!(e.to_string(), "GET /x: HTTP 502 Bad Gateway: <html>bad gateway</html>");
        let long = "é".repeat(BODY_SNIPPET);
        let e = Error::status_from("GET /x", StatusCode::BAD_GATEWAY, long.as_bytes());
        assert!(e.to_string().ends_with('…'));
        let e = Error::status_from("GET /x", StatusCode::NOT_FOUND, b"");
        assert_eq!(e.to_string(), "GET /x: HTTP 404 Not Found");
    }
}
