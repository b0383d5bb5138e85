//! Request extractors whose rejections are [`ApiError`]s, so every failure — a missing token, broken JSON, an id
//! that is not a UUID — gets the same `{"error":{"code","message"}}` body.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use rh_auth::{Claims, Role};
use serde::de::DeserializeOwned;

/// The caller, from `Authorization: Bearer <token>`. Everything the api needs to know about them is in the
/// token (id, org, name, role), so authenticating costs no database query.
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
        Ok(AuthUser(claims))
    }
}

/// `axum::Json` with [`ApiError`] rejections: 415 without a JSON content type, 413 when too large, else 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status().as_u16() {
        415 => ApiError::UnsupportedMediaType("expected Content-Type: application/json".into()),
        413 => ApiError::TooLarge("request body too large".into()),
        _ => ApiError::BadRequest(rejection.body_text()),
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
