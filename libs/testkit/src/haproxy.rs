//! A private HAProxy in front of several edges: round robin, no sticky sessions, health-checked on `/readyz`.

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A running `haproxy` on a free port, its config and log in a scratch directory; killed on `Drop`.
pub struct HaProxy {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

/// `HAPROXY_BIN`, else `haproxy` on `PATH`, else Debian's `/usr/sbin/haproxy` (installed by `scripts/test`).
fn haproxy_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HAPROXY_BIN") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("haproxy")).find(|p| p.exists()))
        .unwrap_or_default();
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/haproxy"))
}

/// The config: WebSocket-friendly timeouts (a tunnel stays open for an hour), round robin over `backends`, each
/// checked on `/readyz` every 200 ms so a killed or draining edge leaves the rotation at once, and a failed connect
/// retried on another edge (`redispatch`). Each connection takes two file descriptors (client and edge side), so
/// `maxconn` stays well under the process's limit.
pub fn config(port: u16, backends: &[SocketAddr]) -> String {
    let mut c = format!(
        "global\n  maxconn 4000\n\
         defaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  \
         timeout tunnel 1h\n  retries 3\n  option redispatch\n\
         frontend ws\n  bind 127.0.0.1:{port}\n  default_backend edges\n\
         backend edges\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n  \
         default-server inter 200ms fall 1 rise 1\n"
    );
    for (i, b) in backends.iter().enumerate() {
        c.push_str(&format!("  server edge{i} {b} check\n"));
    }
    c
}

impl HaProxy {
    /// Starts HAProxy in front of `backends` and waits until it answers `/readyz` through one of them.
    pub async fn start(backends: &[SocketAddr]) -> anyhow::Result<Self> {
        let dir = crate::scratch_dir("haproxy");
        let mut last_error = None;
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let cfg = dir.join("haproxy.cfg");
            std::fs::write(&cfg, config(port, backends))?;
            let log = std::fs::File::create(dir.join("haproxy.log")).context("log file")?;
            let child = Command::new(haproxy_bin())
                .arg("-db")
                .arg("-f")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {:?} (run scripts/test, which installs it)", haproxy_bin()))?;
            let mut lb = HaProxy { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), dir: dir.clone() };
            match lb.wait_ready().await {
                Ok(()) => return Ok(lb),
                Err(e) => last_error = Some(e), // e.g. the port was taken meanwhile: another one
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("haproxy did not start")))
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", self.addr);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default();
                bail!("haproxy exited with {status}: {log}");
            }
            if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.start_kill();
                bail!("haproxy did not answer on {url} in time");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `ws://<haproxy>/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HaProxy {
    /// Kills it; its directory (config and log) stays under `target/test-data/` for a failed test's post-mortem.
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
