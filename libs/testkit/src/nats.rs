//! A private nats-server per test, with RelayHub's authorization (`nats/auth.conf`) on.

use anyhow::{Context, bail};
use rh_bus::Role;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A running `nats-server -js` on random ports with `nats/auth.conf` and fresh passwords for every user; killed
/// and its data removed on `Drop`.
pub struct NatsServer {
    child: Child,
    dir: PathBuf,
    url: String,
    monitor_url: String,
    passwords: Passwords,
}

/// Every NATS user's password on one server (or cluster): each service's, and `admin` (test fixtures).
#[derive(Clone)]
pub(crate) struct Passwords(HashMap<&'static str, String>);

pub(crate) const ADMIN: &str = "admin";

impl Passwords {
    pub(crate) fn generate() -> Self {
        // A letter first: nats-server reads these from its environment and would take digits for a number.
        let users = Role::ALL.iter().map(|r| r.user()).chain([ADMIN]);
        Passwords(users.map(|u| (u, format!("rh{}", uuid::Uuid::new_v4().simple()))).collect())
    }
    pub(crate) fn of(&self, user: &str) -> &str {
        self.0.get(user).map(String::as_str).unwrap_or_default()
    }
}

/// The servers of this test process by URL, so [`crate::Service::spawn`] can give a binary its credentials.
static SERVERS: Mutex<Option<HashMap<String, Passwords>>> = Mutex::new(None);

/// Makes `passwords` the credentials [`crate::Service::spawn`] gives a service whose `RH_NATS_URL` is `url`.
pub(crate) fn register(url: &str, passwords: &Passwords) {
    let mut servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    servers.get_or_insert_with(HashMap::new).insert(url.to_owned(), passwords.clone());
}

/// Forgets what [`register`] recorded for `url`.
pub(crate) fn unregister(url: &str) {
    if let Some(servers) = SERVERS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        servers.remove(url);
    }
}

/// `RH_NATS_USER` / `RH_NATS_PASSWORD` of the service `bin` (`api`, `edge`, `worker`, `audit`) on the running
/// server at `url`; `None` for any other binary or URL.
pub(crate) fn credentials_env(url: &str, bin: &str) -> Option<Vec<(String, String)>> {
    let role = Role::ALL.into_iter().find(|r| r.user() == bin)?;
    let servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let password = servers.as_ref()?.get(url)?.of(role.user()).to_owned();
    Some(vec![("RH_NATS_USER".into(), role.user().into()), ("RH_NATS_PASSWORD".into(), password)])
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

    /// Starts the server with extra config (e.g. to open a websocket listener) after the authorization block.
    pub async fn start_with_config(config: Option<&str>) -> anyhow::Result<Self> {
        let server = Self::launch(config.unwrap_or_default(), Passwords::generate()).await?;
        register(server.url(), &server.passwords);
        Ok(server)
    }

    /// Starts a server with `config` after the authorization block and these users' `passwords`; not registered
    /// for [`crate::Service::spawn`] (see [`register`]).
    pub(crate) async fn launch(config: &str, passwords: Passwords) -> anyhow::Result<Self> {
        let dir = crate::scratch_dir("nats");
        let auth = crate::workspace_root().join("nats/auth.conf");
        std::fs::copy(&auth, dir.join("auth.conf")).with_context(|| format!("copying {}", auth.display()))?;
        // RelayHub's streams reserve 24 GiB of max bytes; without a limit of its own the server allows 75 % of the
        // free disk, and a busy disk would refuse to create them.
        let limits = "jetstream { max_file_store: 1TB }\n";
        std::fs::write(dir.join("nats.conf"), format!("include ./auth.conf\n{limits}{config}"))?;
        let child = spawn(&dir, &passwords, "-1", "-1")?;
        let mut server = NatsServer { child, dir, url: String::new(), monitor_url: String::new(), passwords };
        server.wait_for_ports().await?;
        Ok(server)
    }

    /// Kills the server (SIGKILL, as a crash would) and leaves it down; [`NatsServer::restart`] brings it back.
    pub async fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Freezes the server (SIGSTOP) without closing its connections, as a broker too busy to answer would be;
    /// [`NatsServer::resume`] lets it go on.
    pub fn pause(&self) -> anyhow::Result<()> {
        crate::signal(self.child.id(), "-STOP")
    }

    /// Undoes [`NatsServer::pause`] (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        crate::signal(self.child.id(), "-CONT")
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
        self.child = spawn(&self.dir, &self.passwords, &port(&self.url), &port(&self.monitor_url))?;
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

    /// A client with every right (user `admin`): test fixtures publishing as if they were a service.
    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        let options = async_nats::ConnectOptions::with_user_and_password(ADMIN.into(), self.passwords.of(ADMIN).into());
        Ok(options.connect(&self.url).await?)
    }

    /// User and password of `admin`, the operators' user with every right (e.g. for the load tool's nats-ws
    /// baseline, which subscribes to conversations directly).
    pub fn admin_login(&self) -> (&str, &str) {
        (ADMIN, self.passwords.of(ADMIN))
    }

    /// `role`'s connect options (its user, password and inbox prefix), as the service itself connects.
    pub fn options_as(&self, role: Role) -> async_nats::ConnectOptions {
        let auth = rh_bus::NatsAuth {
            nats_password: Some(rh_auth::Secret::new(self.passwords.of(role.user()))),
            ..Default::default()
        };
        auth.options(role)
    }

    /// A client connected as the service `role`, with only that service's rights.
    pub async fn client_as(&self, role: Role) -> anyhow::Result<async_nats::Client> {
        Ok(self.options_as(role).connect(&self.url).await?)
    }

    /// `RH_NATS_USER` and `RH_NATS_PASSWORD` for a process of the service `role` (e.g. `api seed-demo`).
    /// [`crate::Service::spawn`] adds them by itself when its environment names this server's URL.
    pub fn service_env(&self, role: Role) -> Vec<(String, String)> {
        vec![
            ("RH_NATS_USER".into(), role.user().into()),
            ("RH_NATS_PASSWORD".into(), self.passwords.of(role.user()).into()),
        ]
    }

    /// Every permissions violation the server logged so far (`"$G/user:edge" - Publish Violation - Subject
    /// "rh.conv.….event"`): what it refused, and to whom.
    pub fn violations(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains(" Violation - ")).map(str::to_owned).collect()
    }

    /// A JetStream context with RelayHub's streams and buckets created.
    pub async fn jetstream(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        let js = async_nats::jetstream::new(self.client().await?);
        rh_bus::Topology::default().ensure(&js).await?;
        Ok(js)
    }
}

/// `nats-server -js` with its data and `nats.conf` in `dir` on the given ports (`-1`: random), the users'
/// `passwords` in its environment (`nats/auth.conf` reads them from there).
fn spawn(dir: &std::path::Path, passwords: &Passwords, port: &str, monitor_port: &str) -> anyhow::Result<Child> {
    let mut cmd = Command::new(nats_server_bin());
    for (user, password) in &passwords.0 {
        cmd.env(format!("RH_NATS_{}_PASSWORD", user.to_uppercase()), password);
    }
    cmd.args(["-a", "127.0.0.1", "-p", port, "-m", monitor_port, "-js", "-sd"])
        .arg(dir.join("js"))
        .arg("--ports_file_dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(dir.join("nats.log")).context("log file")?);
    cmd.arg("-c").arg(dir.join("nats.conf"));
    cmd.spawn().with_context(|| format!("starting {:?} (run scripts/test, which installs it)", nats_server_bin()))
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        unregister(&self.url);
        // Shown with a failing test's output: a missing right in nats/auth.conf shows up here first.
        for refused in self.violations() {
            eprintln!("nats-server refused: {refused}");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
