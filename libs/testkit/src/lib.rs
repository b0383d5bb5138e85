//! Test harness for RelayHub: real parts only.
//!
//! | item | what it gives a test |
//! |---|---|
//! | [`NatsServer`] | a private `nats-server` with JetStream on random ports, data in `target/test-data/`, killed on `Drop` |
//! | [`NatsCluster`] | a private 3-node (or n-node) JetStream cluster on localhost, same authorization; kill a node, find a stream's leader |
//! | [`TestDb`] | a fresh PostgreSQL database with the migrations applied, on the server named by `RH_TEST_PG_URL` |
//! | [`PgCluster`] | a private PostgreSQL server a test can stop and start (outage tests) |
//! | [`Service`] | one of our binaries (`api`, `edge`, `worker`, `audit`) as a child process, ready once it printed its `listening` line; SIGKILL on `Drop` |
//! | [`Stack`] | all of the above wired together, plus [`Api`] (REST, `rh-client`) and [`WsClient`] (a socket client) |
//! | [`HaProxy`] | a private HAProxy in front of several edges (round robin, no sticky sessions), killed on `Drop` |
//!
//! Binaries are taken from `target/debug/` (or `RH_BIN_DIR`); `scripts/test` builds them before running tests.
//! `nats-server` is `NATS_SERVER_BIN`, else `target/tools/bin/nats-server` (installed by `scripts/test`), else `PATH`.

mod api;
mod haproxy;
mod nats;
mod nats_cluster;
mod pg;
mod pg_cluster;
mod service;
mod stack;
mod ws;

pub use api::{Api, Session};
pub use haproxy::HaProxy;
pub use nats::NatsServer;
pub use nats_cluster::{Group, NatsCluster};
pub use pg::TestDb;
pub use pg_cluster::PgCluster;
pub use service::Service;
pub use stack::{Stack, StackOptions};
pub use ws::WsClient;

/// Sends `signal` (`-TERM`, `-STOP`, ...) to process `pid` with `kill(1)`.
pub(crate) fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status()?;
    anyhow::ensure!(status.success(), "kill {signal} {pid} failed: {status}");
    Ok(())
}

use std::path::PathBuf;

/// The workspace root: found at run time from the package under test (`cargo test` sets `CARGO_MANIFEST_DIR`;
/// the nearest directory above it with a `[workspace]` Cargo.toml), else two levels above this crate as compiled.
/// Not only the compile-time path: a `target/` built in one clone and copied to another (a worktree seeded from a
/// shared build) would otherwise run the first clone's binaries and configs.
pub fn workspace_root() -> PathBuf {
    let at_run_time = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).and_then(|dir| {
        dir.ancestors()
            .find(|d| std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]")))
            .map(PathBuf::from)
    });
    at_run_time.unwrap_or_else(|| {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        here.parent().and_then(|p| p.parent()).map(PathBuf::from).unwrap_or(here)
    })
}

/// `target/` of the workspace (or `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// A fresh directory under `target/test-data/`.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = target_dir().join("test-data").join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Installs the rustls crypto provider once (reqwest and tungstenite are built without a default one).
pub fn init_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout` with `what` in the message.
pub async fn eventually<T, F, Fut>(timeout: std::time::Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
