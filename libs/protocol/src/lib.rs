//! RelayHub's wire contract, shared by every binary and the load-test tool.
//!
//! | module | what it defines |
//! |---|---|
//! | [`subjects`] | every NATS subject, stream, bucket and consumer name; ids in subjects are UUIDs we format |
//! | [`event`] | the events of a conversation as stored in stream `RH_CONV` ([`Envelope`] + [`Event`]) |
//! | [`frame`] | WebSocket frames: [`ClientFrame`] (client → edge) and server frames built by [`frame::ServerFrame`] |
//! | [`rpc`] | request/reply payloads on `rh.api.*` (edge → api), generation jobs, control and inbox messages |
//! | [`api`] | request and reply bodies of the REST API v1 (`/api/v1`), with their OpenAPI schemas (feature `openapi`) |
//! | [`admin`] | org admin settings over REST ([`admin::RetentionSettings`]) |
//! | [`auth`] | login, refresh and their tokens ([`auth::Tokens`]) |
//! | [`tools`] | conversation tools over REST: export, continue as a copy, search |
//! | [`invites`] | invitations to join an org, changing one's own password |
//! | [`sso`] | single sign-on: an org's OIDC provider, discovery by email domain, the sign-in flow |
//! | [`teams`] | teams, their members and team shares ([`teams::Team`], [`teams::TeamShare`]) |
//! | [`permission`] | [`Permission`]: `owner`, `respond` (Can Respond), `view` (View Only) |
//!
//! Everything here is plain serde data; no I/O.

pub mod admin;
pub mod api;
pub mod auth;
pub mod event;
pub mod frame;
pub mod invites;
pub mod permission;
pub mod rpc;
pub mod sso;
pub mod subjects;
pub mod teams;
pub mod tools;

pub use event::{Envelope, Event};
pub use frame::{ClientFrame, ServerFrame};
pub use permission::Permission;

/// Microseconds since the Unix epoch: the producer timestamp every event carries (`ts_us`).
pub fn now_us() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}
