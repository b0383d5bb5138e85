//! A private nats-server per test.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server -js` on random ports; killed and its data removed on `Drop`.
pub struct NatsServer {
    child: Child,
    dir: PathBuf,
    url: String,
    monitor_url: String,
}

fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let local = crate::target_dir().join("tools/bin/nats-server");
    if local.exists() { local } else { PathBuf::from("nats-server") }
}

impl NatsServer {
    /// Starts the server and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with_config(None).await
    }

    /// Starts the server with an extra config file (e.g. to open a websocket listener).
    pub async fn start_with_config(config: Option<&str>) -> anyhow::Result<Self> {
        let dir = crate::scratch_dir("nats");
        // RelayHub's streams reserve 24 GiB of max bytes; without a limit of its own the server allows 75 % of the
        // free disk, and a busy disk would refuse to create them.
        let limits = "jetstream { max_file_store: 1TB }\n";
        std::fs::write(dir.join("extra.conf"), format!("{limits}{}", config.unwrap_or_default()))?;
        let child = spawn(&dir, "-1", "-1")?;
        let mut server = NatsServer { child, dir, url: String::new(), monitor_url: String::new() };
        server.wait_for_ports().await?;
        Ok(server)
    }

    /// Kills the server (SIGKILL, as a crash would) and leaves it down; [`NatsServer::restart`] brings it back.
    pub async fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server if it runs and starts it again on the same ports with the same data directory, so
    /// clients reconnect to the same URL and JetStream recovers its streams from disk.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let port = |url: &str| url.rsplit(':').next().unwrap_or("-1").to_owned();
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".ports") {
                std::fs::remove_file(entry.path())?;
            }
        }
        self.child = spawn(&self.dir, &port(&self.url), &port(&self.monitor_url))?;
        self.wait_for_ports().await
    }

    async fn wait_for_ports(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(ports) = self.read_ports_file() {
                self.url = ports.0;
                self.monitor_url = ports.1;
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default();
                bail!("nats-server exited with {status}: {log}");
            }
            if Instant::now() > deadline {
                bail!("nats-server did not write its ports file in time");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn read_ports_file(&self) -> Option<(String, String)> {
        let entry = std::fs::read_dir(&self.dir)
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))?;
        let text = std::fs::read_to_string(entry.path()).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let nats = v["nats"][0].as_str()?.to_owned();
        let mon = v["monitoring"][0].as_str().unwrap_or_default().to_owned();
        Some((nats, mon))
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `http://127.0.0.1:<port>` of the monitoring endpoints (`/connz`, `/jsz`, `/subsz`).
    pub fn monitor_url(&self) -> &str {
        &self.monitor_url
    }

    /// The server's data directory (the `websocket` listener's ports are in its ports file too).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        Ok(async_nats::connect(&self.url).await?)
    }

    /// A JetStream context with RelayHub's streams and buckets created.
    pub async fn jetstream(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        let js = async_nats::jetstream::new(self.client().await?);
        rh_bus::Topology::default().ensure(&js).await?;
        Ok(js)
    }
}

/// `nats-server -js` with its data in `dir` (and `dir/extra.conf` when present) on the given ports (`-1`: random).
fn spawn(dir: &std::path::Path, port: &str, monitor_port: &str) -> anyhow::Result<Child> {
    let mut cmd = Command::new(nats_server_bin());
    cmd.args(["-a", "127.0.0.1", "-p", port, "-m", monitor_port, "-js", "-sd"])
        .arg(dir.join("js"))
        .arg("--ports_file_dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(dir.join("nats.log")).context("log file")?);
    let config = dir.join("extra.conf");
    if config.exists() {
        cmd.arg("-c").arg(config);
    }
    cmd.spawn().with_context(|| format!("starting {:?} (run scripts/test, which installs it)", nats_server_bin()))
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
