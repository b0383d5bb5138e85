//! Sessions over REST (`/auth/*`), shared by the api and its clients. `SECURITY.md`, "Sessions", has the design.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /auth/login` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// The person a login is for: `{id, org_id, name, email, role}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionUser {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub email: String,
    pub role: String,
}

/// `POST /auth/login` and `POST /auth/refresh` reply: a short-lived access token (`Authorization: Bearer`) and
/// the next refresh token (each refresh token works once).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tokens {
    pub token: String,
    /// Seconds until `token` expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: SessionUser,
}

/// `POST /auth/refresh` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// `POST /auth/ticket` reply: a one-time socket ticket for `GET /ws?ticket=`, valid for `expires_in` seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SocketTicket {
    pub ticket: String,
    pub expires_in: u64,
}
