//! A private PostgreSQL server that a test can stop and start (the suite's shared server serves other tests).

use anyhow::{Context, bail};
use std::process::Command;

/// A PostgreSQL cluster of its own on a free port, run by `scripts/lib.sh` (`start_postgres`, which handles running
/// as root, see `pg_data_dir`); removed with its data on `Drop`.
pub struct PgCluster {
    name: String,
    port: u16,
}

impl PgCluster {
    /// Creates and starts the cluster.
    pub fn start() -> anyhow::Result<Self> {
        let name = format!("test-pg-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let cluster = PgCluster { name, port };
        cluster.resume()?;
        Ok(cluster)
    }

    /// URL of its `postgres` database, as the `postgres` role (trust on 127.0.0.1).
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: sessions are cut, as in an outage). Its data stays.
    pub fn stop(&self) -> anyhow::Result<()> {
        self.lib_sh(r#"stop_postgres "$(pg_data_dir "$1")""#)
    }

    /// Starts it again on the same port with the same data.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.lib_sh(r#"start_postgres "$(pg_data_dir "$1")" "$2""#)
    }

    /// Runs `script` after `source scripts/lib.sh; ensure_postgres` with `$1` = name, `$2` = port, from the
    /// workspace root (`pg_data_dir` keys the data directory on it).
    fn lib_sh(&self, script: &str) -> anyhow::Result<()> {
        let status = Command::new("bash")
            .arg("-c")
            .arg(format!("set -e; source scripts/lib.sh; ensure_postgres; {script}"))
            .arg("pg-cluster")
            .arg(&self.name)
            .arg(self.port.to_string())
            .current_dir(crate::workspace_root())
            .status()
            .context("running bash")?;
        if !status.success() {
            bail!("`{script}` failed for PostgreSQL cluster {} ({status})", self.name);
        }
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.lib_sh(r#"remove_postgres "$(pg_data_dir "$1")""#);
    }
}
