//! Request extractors whose rejections are [`ApiError`]s, so every failure — a missing token, broken JSON, an id
//! that is not a UUID, a NUL character — gets the same `{"error":{"code","message"}}` body.
//!
//! Text that PostgreSQL cannot store is refused here, once for every route: JSON bodies by [`ApiJson`] /
//! [`json_from_slice`] (a NUL anywhere in a string or key), paths and query strings by
//! [`crate::middleware::check_uri`] (NUL or invalid UTF-8 after percent-decoding).

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use rh_auth::{Claims, Role};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The client's address for the sign-in limits ([`crate::service::limits::client_addr`]): the TCP peer's, or
/// what `--client-ip-header` says behind a proxy; `None` when neither is known.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
        Ok(ClientAddr(crate::service::limits::client_addr(&state.settings.limits, peer, &parts.headers)))
    }
}

/// The caller, from `Authorization: Bearer <token>`: the token's claims (id, org, name, role), while its session
/// is open — a validly signed token of a session that ended (logout, removed member, reset password) or of a
/// deleted account is a 401, not a failure further down.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Claims);

impl AuthUser {
    pub fn id(&self) -> uuid::Uuid {
        self.0.sub
    }
    pub fn org(&self) -> uuid::Uuid {
        self.0.org
    }
    pub fn name(&self) -> &str {
        &self.0.name
    }
    pub fn session(&self) -> uuid::Uuid {
        self.0.sid
    }
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <token>".into()))?;
        let claims = state.keys.verify(token).map_err(|_| ApiError::Unauthorized("invalid or expired token".into()))?;
        // A database error is a 503 (the client keeps its session), never a 401 that would sign it out.
        if !rh_store::sessions::is_active(&state.db, claims.sid, claims.sub).await? {
            return Err(ApiError::Unauthorized("this session has ended; sign in again".into()));
        }
        Ok(AuthUser(claims))
    }
}

/// `axum::Json` with [`ApiError`] rejections: 415 without a JSON content type, 413 when too large, 400 for bad
/// JSON, the wrong shape, or a NUL character in any string.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<Value>::from_request(req, state).await.map_err(json_rejection)?;
        from_value(value).map(ApiJson)
    }
}

/// A JSON body read by hand (e.g. an optional one): the same checks and errors as [`ApiJson`].
pub fn json_from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    from_value(value)
}

/// An optional JSON body: none (blank) or `null` is `T::default()`, anything else is read like [`ApiJson`].
pub fn optional_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    let body = bytes.trim_ascii();
    if body.is_empty() || body == b"null" { Ok(T::default()) } else { json_from_slice(body) }
}

fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    // Every body is an object: serde would also read a struct from an array (`[null, null]`).
    if !value.is_object() {
        return Err(ApiError::BadRequest("the body must be a JSON object".into()));
    }
    if has_nul(&value) {
        return Err(ApiError::BadRequest("text must not contain NUL characters".into()));
    }
    T::deserialize(value).map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))
}

/// True when a string or a key anywhere in `v` holds a NUL (JSON allows `\u0000`; PostgreSQL text does not).
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status().as_u16() {
        415 => ApiError::UnsupportedMediaType("expected Content-Type: application/json".into()),
        413 => ApiError::TooLarge("request body too large".into()),
        _ => ApiError::BadRequest(rejection.body_text()),
    }
}

/// `axum::extract::Multipart` with [`ApiError`] rejections: 415 unless the body is `multipart/form-data`, 400
/// when its boundary is missing.
pub struct ApiMultipart(pub Multipart);

impl<S: Send + Sync> FromRequest<S> for ApiMultipart {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if !content_type.is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("multipart/form-data")) {
            return Err(ApiError::UnsupportedMediaType("expected Content-Type: multipart/form-data".into()));
        }
        Multipart::from_request(req, state)
            .await
            .map(ApiMultipart)
            .map_err(|e: MultipartRejection| ApiError::BadRequest(format!("bad multipart body: {}", e.body_text())))
    }
}

/// `axum::extract::Path` whose rejection is 404: an id that is not a UUID names nothing that exists.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|_| ApiError::NotFound("not found".into()))
    }
}

/// `axum::extract::Query` with a 400 [`ApiError`] rejection.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_anywhere_is_refused() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            email: String,
            tags: Vec<String>,
        }
        let ok: Result<Body, _> = json_from_slice(br#"{"email":"a@b.test","tags":["x"]}"#);
        assert!(ok.is_ok());
        for bad in [&br#"{"email":"a\u0000b","tags":[]}"#[..], br#"{"email":"a","tags":["\u0000"]}"#] {
            let e = json_from_slice::<Body>(bad).expect_err("refused");
            assert_eq!(e.status().as_u16(), 400, "{e}");
        }
        // An escaped backslash before "u0000" is text, not a NUL.
        assert!(json_from_slice::<Body>(br#"{"email":"a\\u0000b","tags":[]}"#).is_ok());
    }
}
