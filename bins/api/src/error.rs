//! [`ApiError`]: every way a request can fail, mapped to an HTTP status and the body
//! `{"error":{"code","message"}}` (codes are [`ErrorCode`]'s, shared with socket frames and `rh.api.*` replies).
//!
//! Internal errors are logged with their cause and answered with a generic message: callers never see SQL or
//! NATS details.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rh_protocol::api::ErrorBody;
use rh_protocol::frame::ErrorCode;
use rh_protocol::rpc::RpcError;
use rh_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (not JSON, wrong shape).
    #[error("{0}")]
    BadRequest(String),
    /// A field is present but invalid (e.g. an email without `@`).
    #[error("{0}")]
    Validation(String),
    /// Missing, invalid or expired token; or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed (e.g. View Only trying to send).
    #[error("{0}")]
    Forbidden(String),
    /// Does not exist, or the caller may not know it exists.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// An answer is being generated, so the last turn cannot change now (edit, regenerate): 409.
    #[error("{0}")]
    ResponseInProgress(String),
    #[error("{0}")]
    TooLarge(String),
    /// An organization's storage quota would be exceeded (413 `quota_exceeded`, no `Retry-After`: only deleting
    /// frees it).
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The endpoint exists but not with this method (axum adds the `Allow` header).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A model no AI worker serves (creating a conversation with it, or switching to it).
    #[error("{0}")]
    UnknownModel(String),
    /// Over a limit ([`crate::service::limits`]): 429 with `Retry-After`.
    #[error("{message}")]
    RateLimited { message: String, retry_after: std::time::Duration },
    /// A refusal with a code of its own that says exactly why (SSO sign-in, passwords off).
    #[error("{message}")]
    Refused { code: ErrorCode, status: StatusCode, message: String },
    /// A dependency (NATS, JetStream, the database) did not answer.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// The 404 every conversation path answers when the caller cannot see the conversation.
    pub fn conversation_not_found() -> Self {
        ApiError::NotFound("no such conversation".into())
    }

    /// Passwords are off for this organization: sign in with its provider.
    pub fn passwords_off() -> Self {
        ApiError::Refused {
            code: ErrorCode::PasswordsOff,
            status: StatusCode::FORBIDDEN,
            message: "this organization signs in with its identity provider only: use \"Sign in with\"".into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Validation(_) => ErrorCode::BadRequest,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::ResponseInProgress(_) => ErrorCode::ResponseInProgress,
            ApiError::TooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::UnknownModel(_) => ErrorCode::UnknownModel,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::Refused { code, .. } => *code,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::ResponseInProgress(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) | ApiError::QuotaExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnknownModel(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Refused { status, .. } => *status,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message shown to the caller (internal causes are not).
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// How long a rate-limited caller should wait, in milliseconds (at least 1).
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after, .. } => Some((retry_after.as_millis() as u64).max(1)),
            _ => None,
        }
    }

    /// The same error as an `rh.api.*` reply (logged when internal).
    pub fn to_rpc(&self) -> RpcError {
        self.log_if_internal();
        self.body()
    }

    fn body(&self) -> RpcError {
        RpcError { retry_after_ms: self.retry_after_ms(), ..RpcError::new(self.code(), self.public_message()) }
    }

    fn log_if_internal(&self) {
        if let ApiError::Internal(e) = self {
            tracing::error!(error = ?e, "internal error");
        } else if let ApiError::Unavailable(m) = self {
            tracing::warn!(message = %m, "dependency unavailable");
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Timeout => ApiError::Unavailable("the database is busy: no connection in time".into()),
            e if e.is_unavailable() => ApiError::Unavailable("database unavailable".into()),
            // The validators refuse NUL first; this covers any field that reaches SQL without one.
            e if e.is_invalid_text() => ApiError::BadRequest("text must not contain NUL characters".into()),
            other => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody { error: self.to_rpc() });
        let Some(ms) = self.retry_after_ms() else {
            return (self.status(), body).into_response();
        };
        // Retry-After counts whole seconds: rounded up, so a client that waits that long finds a token.
        let secs = ms.div_ceil(1000).to_string();
        (self.status(), [(axum::http::header::RETRY_AFTER, secs)], body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (ApiError::Validation("x".into()), 400, "bad_request"),
            (ApiError::Unauthorized("x".into()), 401, "unauthorized"),
            (ApiError::Forbidden("x".into()), 403, "forbidden"),
            (ApiError::conversation_not_found(), 404, "not_found"),
            (ApiError::Conflict("x".into()), 409, "conflict"),
            (ApiError::ResponseInProgress("x".into()), 409, "response_in_progress"),
            (ApiError::TooLarge("x".into()), 413, "payload_too_large"),
            (ApiError::UnsupportedMediaType("x".into()), 415, "unsupported_media_type"),
            (ApiError::MethodNotAllowed("x".into()), 405, "method_not_allowed"),
            (ApiError::UnknownModel("x".into()), 422, "unknown_model"),
            (ApiError::Unavailable("x".into()), 503, "unavailable"),
            (
                ApiError::RateLimited { message: "x".into(), retry_after: std::time::Duration::from_millis(1500) },
                429,
                "rate_limited",
            ),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.status().as_u16(), status);
            assert_eq!(e.code().as_str(), code);
        }
        let limited =
            ApiError::RateLimited { message: "x".into(), retry_after: std::time::Duration::from_millis(1500) };
        let response = limited.into_response();
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "2");
        let internal = ApiError::Internal(anyhow::anyhow!("SELECT secret"));
        assert_eq!(internal.public_message(), "internal error");
    }
}
