//! [`AppState`]: what every handler and responder shares. Cheap to clone (handles and `Arc`s).

use crate::config::Settings;
use crate::metrics::Metrics;
use async_nats::jetstream::{self, kv, object_store::ObjectStore};
use rh_auth::TokenKeys;
use rh_store::Db;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    /// KV `rh_stops`: conversation id → time (µs) of the latest stop request.
    pub stops: kv::Store,
    /// Object store `rh_attachments`: attachment bytes.
    pub attachments: ObjectStore,
    pub keys: Arc<TokenKeys>,
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
    /// The queue `rh.api.access` requests are answered from, in batches.
    pub grants: crate::service::grants::Grants,
    /// Wakes the erase runner when a delete committed an erase job ([`crate::service::erase`]).
    pub erase_wake: Arc<tokio::sync::Notify>,
    /// The outbox relay's handle: wake it after a commit, wait for an event's seq.
    pub outbox: crate::relay::Outbox,
    /// The bound on concurrent password hashes ([`crate::service::limits::HashSlots`]).
    pub hash_slots: Arc<crate::service::limits::HashSlots>,
    /// What the worker pool serves, as last asked ([`crate::service::models`]).
    pub models: Arc<crate::service::models::Catalog>,
    /// The HTTP client that talks to organizations' identity providers ([`crate::service::oidc_http`]).
    pub sso_http: crate::service::oidc_http::OidcHttp,
}
