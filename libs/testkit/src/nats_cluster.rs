//! A private JetStream cluster: several nats-servers on localhost, routed to each other, with RelayHub's
//! authorization and one set of passwords (as the Helm chart's NATS StatefulSet runs it).

use crate::nats::{self, ADMIN, NatsServer, Passwords};
use anyhow::Context;
use std::time::Duration;

/// `n` nats-servers in one JetStream cluster (`relayhub`), named `rh-0`, `rh-1`, ...; killed on `Drop`.
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
    url: String,
    /// For each server, every other server's client URL (see [`NatsCluster::url_without`]).
    urls_without: Vec<String>,
    passwords: Passwords,
}

/// A raft group of the cluster: its leader can be found and moved.
#[derive(Debug, Clone, Copy)]
pub enum Group<'a> {
    /// The JetStream meta group (streams' and consumers' assignments).
    Meta,
    Stream(&'a str),
    /// A durable consumer: (stream, consumer).
    Consumer(&'a str, &'a str),
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
        let urls_without: Vec<String> = (0..n)
            .map(|i| nodes.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, s)| s.url()).collect::<Vec<_>>())
            .map(|urls| urls.join(","))
            .collect();
        for url in &urls_without {
            nats::register(url, &passwords);
        }
        let cluster = NatsCluster { nodes, url, urls_without, passwords };
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

    /// Every server's client URL but server `i`'s: a service given it never connects to `i` (and gets its
    /// credentials from [`crate::Service::spawn`] as with [`NatsCluster::url`]).
    pub fn url_without(&self, i: usize) -> &str {
        &self.urls_without[i]
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
        self.leader(js, Group::Stream(name)).await
    }

    /// The index of the server that leads `group` now: the stream's or consumer's info (`cluster.leader`), or
    /// for the meta group a live server's `/jsz`.
    pub async fn leader(&self, js: &async_nats::jetstream::Context, group: Group<'_>) -> anyhow::Result<usize> {
        let leader = match group {
            Group::Stream(name) => {
                let mut stream = js.get_stream(name).await.with_context(|| format!("stream {name}"))?;
                stream.info().await?.cluster.as_ref().and_then(|c| c.leader.clone())
            }
            Group::Consumer(stream, name) => {
                let stream = js.get_stream(stream).await.with_context(|| format!("stream {stream}"))?;
                let mut consumer = stream
                    .get_consumer::<async_nats::jetstream::consumer::pull::Config>(name)
                    .await
                    .map_err(|e| anyhow::anyhow!("consumer {name}: {e}"))?;
                consumer.info().await?.cluster.as_ref().and_then(|c| c.leader.clone())
            }
            Group::Meta => self.meta_leader().await,
        };
        let leader = leader.with_context(|| format!("{group:?} has no leader"))?;
        leader
            .strip_prefix("rh-")
            .and_then(|i| i.parse().ok())
            .with_context(|| format!("leader {leader} is not one of this cluster's servers"))
    }

    async fn meta_leader(&self) -> Option<String> {
        let http = reqwest::Client::new();
        for node in &self.nodes {
            let Ok(reply) = http.get(format!("{}/jsz", node.monitor_url())).send().await else { continue };
            let Ok(jsz) = reply.json::<serde_json::Value>().await else { continue };
            if let Some(leader) = jsz["meta_cluster"]["leader"].as_str() {
                return Some(leader.to_owned());
            }
        }
        None
    }

    /// Makes server `to` lead stream or consumer `group` (a leader stepdown that names it, as `nats stream cluster
    /// step-down --preferred` does) and waits until it does. Not the meta group: its stepdown takes a system
    /// account user, which the cluster has not.
    pub async fn move_leader(
        &self,
        js: &async_nats::jetstream::Context,
        group: Group<'_>,
        to: usize,
    ) -> anyhow::Result<()> {
        let subject = match group {
            Group::Meta => anyhow::bail!("the meta group's leader is not moved here"),
            Group::Stream(name) => format!("STREAM.LEADER.STEPDOWN.{name}"),
            Group::Consumer(stream, name) => format!("CONSUMER.LEADER.STEPDOWN.{stream}.{name}"),
        };
        let request = serde_json::json!({ "placement": { "preferred": format!("rh-{to}") } });
        let leads = || async { (self.leader(js, group).await.ok()? == to).then_some(()) };
        // A stepdown can be refused while the group is busy (a new leader catching up): asked again then.
        let mut last = serde_json::Value::Null;
        for _ in 0..5 {
            if leads().await.is_some() {
                return Ok(());
            }
            last = js.request(subject.clone(), &request).await?;
            if crate::eventually(Duration::from_secs(5), "the preferred leader", leads).await.is_ok() {
                return Ok(());
            }
        }
        anyhow::bail!("rh-{to} did not take the lead of {group:?}; last stepdown reply: {last}")
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
        for url in &self.urls_without {
            nats::unregister(url);
        }
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
