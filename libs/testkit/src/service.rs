//! One of our binaries as a child process.

use anyhow::{Context, bail};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `api`, `edge`, `worker` or `audit` process. SIGKILLed on `Drop`.
pub struct Service {
    bin: String,
    env: Vec<(String, String)>,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    /// Every `listening <name> http://<addr>` line it printed (e.g. `api_ops` for a separate ops listener).
    announced: Arc<Mutex<HashMap<String, SocketAddr>>>,
}

/// `(name, addr)` of a `listening <name> http://<addr>` line.
fn announcement(line: &str) -> Option<(String, SocketAddr)> {
    let (name, addr) = line.strip_prefix("listening ")?.split_once(" http://")?;
    Some((name.to_owned(), addr.trim().parse().ok()?))
}

/// `target/debug/<bin>` (or `$RH_BIN_DIR/<bin>`).
pub fn bin_path(bin: &str) -> PathBuf {
    match std::env::var_os("RH_BIN_DIR") {
        Some(dir) => PathBuf::from(dir).join(bin),
        None => crate::target_dir().join("debug").join(bin),
    }
}

impl Service {
    /// Starts `bin` with `env` (and `RUST_LOG` unless given) and waits (up to 30 s) for its
    /// `listening <bin> http://<addr>` line on stdout. Its stderr goes to a log file under `target/test-data/`.
    pub async fn spawn(bin: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::spawn_owned(bin, env).await
    }

    async fn spawn_owned(bin: &str, mut env: Vec<(String, String)>) -> anyhow::Result<Self> {
        // A service started against one of this process's nats-servers gets that server's credentials for it.
        let nats_url = env.iter().find(|(k, _)| k == "RH_NATS_URL").map(|(_, v)| v.clone());
        if let Some(url) = nats_url
            && !env.iter().any(|(k, _)| k == "RH_NATS_PASSWORD")
            && let Some(credentials) = crate::nats::credentials_env(&url, bin)
        {
            env.extend(credentials);
        }
        let path = bin_path(bin);
        if !path.exists() {
            bail!(
                "{} does not exist: build the binaries first (`cargo build --bins`, scripts/test does)",
                path.display()
            );
        }
        let log = crate::scratch_dir("logs").join(format!("{bin}.log"));
        let mut cmd = Command::new(&path);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).context("creating the log file")?)
            .kill_on_drop(true);
        if !env.iter().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().with_context(|| format!("spawning {}", path.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let announced: Arc<Mutex<HashMap<String, SocketAddr>>> = Arc::default();
        let record = |line: &str| {
            let found = announcement(line);
            if let Some((name, addr)) = &found {
                announced.lock().unwrap_or_else(|e| e.into_inner()).insert(name.clone(), *addr);
            }
            found
        };
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((name, addr)) = record(&line)
                    && name == bin
                {
                    return Some(addr);
                }
            }
            None
        })
        .await;
        let addr = match found {
            Ok(Some(addr)) => addr,
            _ => {
                let _ = child.start_kill();
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: String =
                    tail.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                bail!("{bin} did not announce its address; log {}:\n{tail}", log.display());
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe (and note later listeners).
        let later = announced.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((name, addr)) = announcement(&line) {
                    later.lock().unwrap_or_else(|e| e.into_inner()).insert(name, addr);
                }
            }
        });
        Ok(Service { bin: bin.to_owned(), env, child, addr, log, announced })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of another listener it announced (`listening <name> http://<addr>`), waiting up to 10 s.
    pub async fn listener(&self, name: &str) -> anyhow::Result<SocketAddr> {
        crate::eventually(Duration::from_secs(10), &format!("{} announcing {name}", self.bin), || async {
            self.announced.lock().unwrap_or_else(|e| e.into_inner()).get(name).copied()
        })
        .await
    }

    /// `http://<addr>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its stderr log file.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// SIGKILL, as a crash would.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, and wait (up to `grace`) for a graceful exit; SIGKILL after that.
    pub async fn terminate(&mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = crate::signal(pid, "-TERM");
        }
        if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
            self.kill().await;
        }
    }

    /// A new process of the same binary with the same environment (after `kill`, e.g. to test a restart).
    pub async fn respawn(&self) -> anyhow::Result<Service> {
        Self::spawn_owned(&self.bin, self.env.clone()).await
    }
}
