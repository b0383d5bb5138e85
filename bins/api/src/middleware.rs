//! HTTP layers every api response goes through (wired in [`crate::startup::app`]):
//!
//! - [`check_uri`]: a path or query string with a NUL or invalid UTF-8 (after percent-decoding) is a 400 before
//!   any route sees it.
//! - [`request_timeout`]: a request not answered within `--request-timeout-ms` is a 503.
//! - [`json_errors`]: an error response that is not JSON yet — axum's own rejections (a body over the limit, a
//!   multipart body it cannot read), a wrong method — gets the `{"error":{"code","message"}}` body with the same
//!   status (422 becomes 400) and headers (a 405 keeps `Allow`). Our handlers' errors are JSON already.
//! - [`security_headers`]: CSP (with `frame-ancestors 'none'`), `X-Content-Type-Options`, `Referrer-Policy`.
//! - [`request_span`]: each request's span; with tracing on, one that continues the caller's `traceparent`.
//! - [`drain_unread_body`]: the rest of a body a handler refused (too large, unauthenticated...) is read and
//!   discarded after the answer, so a client still sending gets that answer, not a reset connection.

use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The web client's policy (also its `<meta>` tag), plus what only a header can say: no framing anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The span of one request: tower-http's default (DEBUG), or, with tracing on, a hop span continuing the
/// caller's `traceparent` (whose context a message's job then carries to the worker).
pub fn request_span(req: &Request) -> tracing::Span {
    if !rh_telemetry::trace::enabled() {
        use tower_http::trace::MakeSpan;
        return tower_http::trace::DefaultMakeSpan::new().make_span(req);
    }
    let span = rh_telemetry::hop_span!("http_request", method = %req.method(), path = %req.uri().path());
    rh_telemetry::trace::follow_http(&span, req.headers());
    span
}

/// Refuses a request whose path or query decodes to a NUL or to invalid UTF-8.
pub async fn check_uri(req: Request, next: Next) -> Response {
    let uri = req.uri();
    for (part, raw) in [("path", Some(uri.path())), ("query string", uri.query())] {
        if let Some(raw) = raw {
            let decoded: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
            if decoded.contains(&0) || std::str::from_utf8(&decoded).is_err() {
                let message = format!("the {part} must be UTF-8 text without NUL characters");
                return ApiError::BadRequest(message).into_response();
            }
        }
    }
    next.run(req).await
}

/// Answers 503 when the rest of the stack takes longer than `timeout`.
pub async fn request_timeout(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let ms = timeout.as_millis();
            ApiError::Unavailable(format!("the request took longer than {ms} ms; try again")).into_response()
        }
    }
}

/// Longest body of a plain-text error kept as its message.
const MAX_ERROR_TEXT: usize = 1024;

/// Rewrites an error response that is not JSON into the JSON error shape.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_ERROR_TEXT).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let error = error_for(status, text);
    let rewritten = error.into_response();
    parts.status = rewritten.status();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, rewritten.into_body())
}

fn error_for(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized(text),
        StatusCode::FORBIDDEN => ApiError::Forbidden(text),
        StatusCode::NOT_FOUND => ApiError::NotFound(text),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(text),
        StatusCode::CONFLICT => ApiError::Conflict(text),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(text),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(text),
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            ApiError::Unavailable(text)
        }
        s if s.is_server_error() => ApiError::Internal(anyhow::anyhow!("{s}: {text}")),
        _ => ApiError::BadRequest(text),
    }
}

/// Most bytes of a refused body read after the answer, and for how long at most.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(30);

/// Gives the request a body that, when dropped before its end, keeps reading (and discarding) the rest on a task
/// of its own, up to [`DRAIN_LIMIT`] bytes and [`DRAIN_TIME`]. Without it the server closes a connection with
/// unread data, the kernel resets it, and a client still sending a 10 MB body sees a broken pipe instead of the
/// 413 it was answered.
pub async fn drain_unread_body(req: Request, next: Next) -> Response {
    next.run(req.map(|body| Body::new(DrainOnDrop(Some(body))))).await
}

struct DrainOnDrop(Option<Body>);

impl http_body::Body for DrainOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.0.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0.as_ref().map(http_body::Body::size_hint).unwrap_or_default()
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(body) = self.0.take().filter(|b| !http_body::Body::is_end_stream(b)) else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let mut rest = body.into_data_stream();
            let mut read = 0u64;
            let drain = async {
                while let Some(Ok(chunk)) = rest.next().await {
                    read += chunk.len() as u64;
                    if read > DRAIN_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        });
    }
}

/// Adds the security headers to every response.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_keep_their_meaning() {
        for (status, code) in [
            (StatusCode::BAD_REQUEST, "bad_request"),
            (StatusCode::UNPROCESSABLE_ENTITY, "bad_request"),
            (StatusCode::NOT_FOUND, "not_found"),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            (StatusCode::BAD_GATEWAY, "internal"),
        ] {
            assert_eq!(error_for(status, "x".into()).code().as_str(), code, "{status}");
        }
    }
}
