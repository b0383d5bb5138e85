//! Fan-out: getting each followed conversation's events from NATS to the sockets that follow it on this edge.
//!
//! | module | what it does |
//! |---|---|
//! | [`registry`] | the followed conversations and their subscriptions: join, catch-up → live hand-off, revocation |
//! | [`live`] | one core NATS subscription per followed conversation on `RH_CONV`'s republished subjects, gapless |
//! | [`feed`] | one followed conversation: fan-out (an event's frame built once for all sockets) |
//! | [`tail`] | the decoded events and the in-memory tail of recent ones |
//! | [`catch_up`] | a subscriber behind the live position: from the tail, or JetStream for what is older |
//! | [`compact`] | merging runs of queued deltas into one for subscriptions that ask for it (catch-up, slow sockets) |
//!
//! An edge receives only what its sockets follow: the events of their conversations ([`live`]), the inboxes of its
//! connected users ([`crate::sidebar`]) and the presence of its followed conversations ([`crate::presence`]). Its
//! NATS ingress (`relayhub_edge_nats_messages_in_total`) grows with what its sockets watch, not with the system's
//! event rate, so more edges add event capacity as well as connection capacity. Why republish + core
//! subscriptions rather than one filtered JetStream consumer per edge: `docs/edge-fanout.md`.

pub mod catch_up;
pub mod compact;
pub mod feed;
pub mod live;
pub mod registry;
pub mod tail;

pub use registry::{Joined, Registry};
