//! Bodies of the REST API v1 (`/api/v1`): one type per request and reply, shared by the api (which also derives
//! their OpenAPI schemas, feature `openapi`) and `rh-client`. Session bodies are in [`crate::auth`], retention in
//! [`crate::admin`]; the 202 of a send is [`crate::rpc::MessageAccepted`], the same as over NATS.
//!
//! | module | bodies of |
//! |---|---|
//! | this one | errors, `/me`, `/orgs`, `/users`, `/models`, `/config` |
//! | [`conversations`] | `/conversations/...`: the conversation, its history, messages, settings, shares, attachments |
//! | [`admin`] | `/admin/...`: conversation metadata and the audit log |

pub mod admin;
pub mod conversations;

use crate::rpc::{ModelInfo, RpcError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every error reply: `{"error":{"code","message","retry_after_ms"?}}` (the same `error` as `rh.api.*` replies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: RpcError,
}

/// `GET /me`: the caller, fresh from the directory, with their org's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub email: String,
    /// `admin` or `member`.
    pub role: String,
    pub org_name: String,
}

/// `POST /orgs` body: a new org and its first admin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignUpRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S", max_length = 100))]
    pub org_name: String,
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S", max_length = 100))]
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(pattern = "@", max_length = 254))]
    pub email: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 256))]
    pub password: String,
}

/// `POST /orgs` reply (202), the same whether the email was free or taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignUpAccepted {
    pub message: String,
}

/// `POST /orgs/{org_id}/members` body; `role` is `member` (the default) or `admin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewMemberRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S", max_length = 100))]
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(pattern = "@", max_length = 254))]
    pub email: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 256))]
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(member|admin)$"))]
    pub role: Option<String>,
}

/// `PUT /orgs/{org_id}/members/{user_id}/password` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 256))]
    pub password: String,
}

/// A teammate as the directory search shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserRef {
    pub id: Uuid,
    pub name: String,
    pub email: String,
}

/// `GET /users?q=` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserList {
    pub users: Vec<UserRef>,
}

/// `GET /models` reply: what the workers serve (or only `default`, with `workers: false`, when none answered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelsReply {
    pub models: Vec<ModelInfo>,
    /// The model new conversations get.
    pub default: String,
    /// False when no worker answered in time.
    pub workers: bool,
}

/// `GET /config` reply: what a browser needs before signing in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientConfig {
    /// The edge's WebSocket URL; null when not configured (the client derives it from the page's address).
    pub ws_url: Option<String>,
}
