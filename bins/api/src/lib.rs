//! RelayHub api: the REST API v1 (login, the org directory, conversations, shares — the ACL —, settings,
//! attachments, admin views) and the `rh.api.*` NATS responders the edge asks (access, send message, stop).
//! It never holds a WebSocket. PostgreSQL is the system of record; every state change commits its events (and
//! sidebar messages) to the outbox in the same transaction, and the [`relay`] publishes them on the conversation's
//! JetStream subject so live viewers (through the edge) and the audit writer see it.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | typed settings from flags / `RH_*` env (secrets as [`rh_auth::Secret`]), the `seed-demo` subcommand |
//! | [`domain`] | validated values parsed from requests: `Email`, `Password`, `PersonName`, `Title`, `MessageText`, `ModelName`, ... |
//! | [`error`] | [`error::ApiError`] → HTTP status + `{"error":{"code","message"}}` (and `rh.api.*` error replies) |
//! | [`extract`] | the bearer-token caller ([`extract::AuthUser`]) and JSON / path / query extractors with `ApiError` rejections |
//! | [`service`] | the domain operations shared by REST and NATS: access checks, events, conversations, messages, shares |
//! | [`routes`] | one module per feature under `/api/v1` |
//! | [`relay`] | the outbox relay: publishes what state changes committed to `outbox`, in order, exactly once in the stream |
//! | [`responders`] | `rh.api.access`, `rh.api.send_message`, `rh.api.stop` (queue group `api`) |
//! | [`middleware`] | layers on every response: NUL / UTF-8 check of the URI, request timeout, JSON error bodies, security headers |
//! | [`waiting`] | answers no worker has started: `response.delayed` after `--ai-wait-secs`, the waiting gauge |
//! | [`metrics`] | request count / latency by route template, messages accepted, rpc outcomes |
//! | [`startup`] | connect, migrate, ensure streams, spawn responders, serve (with `/metrics`, `/healthz`, `/readyz`) |
//! | [`seed`] | `api seed-demo` |
//! | [`state`] | [`state::AppState`], shared by handlers and responders |
//!
//! Rules enforced here for every path: the owner may do everything; Can Respond may send, stop, change settings
//! and attach; View Only may only read (403 on every write); anyone else — a teammate without a share, an org
//! admin without a share, another org — gets 404 on every conversation path, as if it did not exist.

pub mod config;
pub mod domain;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod relay;
pub mod responders;
pub mod routes;
pub mod seed;
pub mod service;
pub mod startup;
pub mod state;
pub mod waiting;
