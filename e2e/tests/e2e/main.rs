//! End-to-end tests of RelayHub: a real nats-server (JetStream), a real PostgreSQL, and the api, edge, worker and
//! audit binaries as processes, driven over real HTTP and WebSocket connections — as a user's client would.
//! Run them with `scripts/test`.

mod bad_input;
mod capacity_counts;
mod closed_bus;
mod copy_export;
mod crash_recovery;
mod durable_sidebar;
mod edit_regenerate;
mod erasure;
mod faults;
mod helpers;
mod invites;
mod limits;
mod live_events;
mod live_path;
mod load_balancer;
mod metric_names;
mod models;
mod nats_cluster;
mod nats_cluster_jobs;
mod no_worker;
mod oidc;
mod permission_matrix;
mod permissions;
mod postgres_outage;
mod readiness;
mod responding_marker;
mod sessions;
mod share_expiry;
mod sso;
mod subscribe_grant;
mod teams;
mod traces;
mod transcript_nats_restart;
mod typing;
mod web_client;
