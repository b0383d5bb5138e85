//! Integration tests of the `edge` binary: a real nats-server (JetStream), a real NATS responder playing the
//! api's part on `rh.api.*`, and real `edge` processes, driven through real WebSockets.
//!
//! `cargo test -p edge` builds `target/debug/edge` before running these.

mod access;
mod catch_up;
mod helpers;
mod limits;
mod ops;
mod presence;
mod scaleout;
mod streaming;
