//! Invitations and one's own password over REST (`/orgs/{id}/invites`, `/invites/*`, `/me/password`), shared by the
//! api and its clients. Times are RFC 3339 strings.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /orgs/{id}/invites` body: one invite per email (each for that email only), or one open invite when
/// `emails` is empty. `role`: `member` (default) or `admin`; `expires_in_hours`: 1 to 720 (default 168, a week).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateInvitesRequest {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 50))]
    pub emails: Vec<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(member|admin)$"))]
    pub role: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 720))]
    pub expires_in_hours: Option<u32>,
}

/// A new invite, with its secret: shown once, only to the admin who created it. The link is
/// `{web client}/#invite={token}` (a fragment: it never reaches a server log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedInvite {
    pub id: Uuid,
    pub email: Option<String>,
    pub role: String,
    pub expires_at: String,
    pub token: String,
}

/// `POST /orgs/{id}/invites` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedInvites {
    pub invites: Vec<CreatedInvite>,
}

/// Where an invite stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InviteStatus {
    Pending,
    Used,
    Expired,
    Revoked,
}

/// An invite as admins list it (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InviteInfo {
    pub id: Uuid,
    pub email: Option<String>,
    pub role: String,
    pub status: InviteStatus,
    pub created_at: String,
    pub expires_at: String,
}

/// `GET /orgs/{id}/invites` reply, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InviteList {
    pub invites: Vec<InviteInfo>,
}

/// `POST /invites/lookup` body (the secret goes in a body, never in a URL).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InviteLookupRequest {
    pub token: String,
}

/// `POST /invites/lookup` reply: what the invite is for, shown before the teammate joins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InviteLookup {
    pub org_name: String,
    /// The email the account will have, when the invite names one.
    pub email: Option<String>,
    pub role: String,
    pub expires_at: String,
}

/// `POST /invites/accept` body: the new account's name and password; `email` only for an invite that names none.
/// The reply is the sign-in's `Tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AcceptInviteRequest {
    pub token: String,
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S", max_length = 100))]
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 256))]
    pub password: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "@", max_length = 254))]
    pub email: Option<String>,
}

/// `PUT /me/password` body: anyone changes their own password; their other sessions end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangePasswordRequest {
    pub current_password: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 256))]
    pub new_password: String,
}
