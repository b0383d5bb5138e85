//! The api binary against a real nats-server and a real PostgreSQL, over HTTP and NATS, checking what a user
//! (or the edge) would see. One test binary; shared fixtures in `helpers`.

mod helpers;

mod admin;
mod attachments;
mod auth;
mod client;
mod conversations;
mod database_tls;
mod history;
mod input;
mod limits;
mod messages;
mod misc;
mod one_path;
mod outbox;
mod permissions;
mod rpc;
mod search;
mod sessions;
mod settings;
mod share_expiry;
mod sharing;
mod timeouts;
mod users;
mod versions;
