//! A private JetStream cluster: several nats-servers on localhost, routed to each other, with RelayHub's
//! authorization and one set of passwords (as the Helm chart's NATS StatefulSet runs it).

use crate::nats::{self, ADMIN, NatsServer, Passwords};
use anyhow::Context;
use std::time::Duration;

/// `n` nats-servers in one JetStream cluster (`relayhub`), named `rh-0`, `rh-1`, ...; killed on `Drop`.
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
    url: String,
    passwords: Passwords,
}

/// How often the cluster is tried again when a route port picked as free was taken before the server bound it.
const START_ATTEMPTS: usize = 3;

impl NatsCluster {
    /// Starts `n` servers and waits until JetStream has a meta leader (streams can be created).
    pub async fn start(n: usize) -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(n).await {
                Ok(cluster) => return Ok(cluster),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
    }

    async fn try_start(n: usize) -> anyhow::Result<Self> {
        // A JetStream cluster needs its routes configured up front, so each server's route port is chosen here.
        let ports = free_ports(n)?;
        let routes: Vec<String> = ports.iter().map(|p| format!("\"nats://127.0.0.1:{p}\"")).collect();
        let passwords = Passwords::generate();
        let mut nodes = Vec::with_capacity(n);
        for (i, port) in ports.iter().enumerate() {
            let config = format!(
                "server_name: rh-{i}\ncluster {{ name: relayhub, listen: \"127.0.0.1:{port}\", routes: [{}] }}\n",
                routes.join(", ")
            );
            nodes.push(NatsServer::launch(&config, passwords.clone()).await?);
        }
        let url = nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(",");
        nats::register(&url, &passwords);
        let cluster = NatsCluster { nodes, url, passwords };
        // Every server's /healthz answers 200 once it is routed to the others and its JetStream is current, so
        // a stream with one replica per server can be placed.
        crate::init_crypto();
        let http = reqwest::Client::new();
        for node in &cluster.nodes {
            let healthz = format!("{}/healthz", node.monitor_url());
            crate::eventually(Duration::from_secs(30), "every server of the cluster healthy", || async {
                let status = http.get(&healthz).send().await.ok()?.status();
                status.is_success().then_some(())
            })
            .await?;
        }
        Ok(cluster)
    }

    /// Every server's client URL, comma-separated: what the services take as `RH_NATS_URL` (and what
    /// [`crate::Service::spawn`] knows the credentials of).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Server `i` (`rh-i`).
    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// Kills server `i` with SIGKILL, as a crash would, and leaves it down.
    pub async fn kill(&mut self, i: usize) {
        self.nodes[i].stop().await;
    }

    /// Starts server `i` again on its ports and data; it rejoins the cluster.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].restart().await
    }

    /// A client with every right (user `admin`) that reconnects to any server of the cluster.
    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        let options = async_nats::ConnectOptions::with_user_and_password(ADMIN.into(), self.passwords.of(ADMIN).into());
        let urls: Vec<&str> = self.url.split(',').collect();
        Ok(options.connect(urls).await?)
    }

    /// The index of the server that leads stream `name` now (from `$JS.API.STREAM.INFO`'s cluster info).
    pub async fn stream_leader(&self, js: &async_nats::jetstream::Context, name: &str) -> anyhow::Result<usize> {
        let mut stream = js.get_stream(name).await.with_context(|| format!("stream {name}"))?;
        let info = stream.info().await?;
        let leader = info.cluster.as_ref().and_then(|c| c.leader.clone()).context("the stream has no leader")?;
        leader
            .strip_prefix("rh-")
            .and_then(|i| i.parse().ok())
            .with_context(|| format!("leader {leader} is not one of this cluster's servers"))
    }

    /// How many servers hold a current copy of stream `name` (the leader and its replicas that are caught up).
    pub async fn current_replicas(&self, js: &async_nats::jetstream::Context, name: &str) -> anyhow::Result<usize> {
        let mut stream = js.get_stream(name).await.with_context(|| format!("stream {name}"))?;
        let info = stream.info().await?;
        let cluster = info.cluster.as_ref().context("no cluster info")?;
        let leader = usize::from(cluster.leader.is_some());
        Ok(leader + cluster.replicas.iter().filter(|r| r.current && !r.offline).count())
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        nats::unregister(&self.url);
    }
}

/// `n` TCP ports free on 127.0.0.1 right now (bound together, then released).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free ports")?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}
