//! The whole RelayHub stack for one test.

use crate::{Api, NatsServer, Service, TestDb};

/// What to start.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// Number of worker processes.
    pub workers: usize,
    /// Extra environment for every worker (e.g. `RH_SIM_TOKENS_PER_SEC`).
    pub worker_env: Vec<(String, String)>,
    /// Start the audit writer.
    pub audit: bool,
    /// Number of edge processes.
    pub edges: usize,
    /// Extra environment for the api (e.g. `RH_WEB_DIR`).
    pub api_env: Vec<(String, String)>,
    /// Extra environment for every service, before its own (e.g. `RH_TRACE_LOG`).
    pub service_env: Vec<(String, String)>,
    /// Stream limits (e.g. a small `RH_CONV`); the services find the streams made and keep them.
    pub topology: rh_bus::Topology,
    /// The PostgreSQL server for the database (e.g. a [`crate::PgCluster`]'s); `None`: `RH_TEST_PG_URL`'s.
    pub pg_admin_url: Option<String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            workers: 1,
            worker_env: Vec::new(),
            audit: true,
            edges: 1,
            api_env: Vec::new(),
            service_env: Vec::new(),
            topology: rh_bus::Topology::default(),
            pg_admin_url: None,
        }
    }
}

/// NATS + a fresh database + api + edges + audit + workers, all real processes on random ports.
pub struct Stack {
    pub nats: NatsServer,
    pub db: TestDb,
    pub api: Service,
    pub edges: Vec<Service>,
    pub audit: Option<Service>,
    pub workers: Vec<Service>,
    jwt_secret: String,
    options: StackOptions,
}

impl Stack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let nats = NatsServer::start().await?;
        // Create the streams before any service races to.
        options.topology.ensure(&async_nats::jetstream::new(nats.client().await?)).await?;
        let db = match &options.pg_admin_url {
            Some(url) => TestDb::create_on(url).await?,
            None => TestDb::create().await?,
        };
        let jwt_secret = format!("test-secret-{}", uuid::Uuid::new_v4());
        let extra: Vec<(&str, &str)> = options.api_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let api = spawn_api(&nats, &db, &jwt_secret, &with_env(&options.service_env, &extra)).await?;
        let mut stack = Stack {
            nats,
            db,
            api,
            edges: Vec::new(),
            audit: None,
            workers: Vec::new(),
            jwt_secret,
            options: options.clone(),
        };
        for _ in 0..options.edges {
            let edge = stack.spawn_edge().await?;
            stack.edges.push(edge);
        }
        if options.audit {
            stack.audit = Some(stack.spawn_audit().await?);
        }
        for _ in 0..options.workers {
            let w = stack.spawn_worker().await?;
            stack.workers.push(w);
        }
        Ok(stack)
    }

    /// Another api process with `env` instead of the stack's extra api environment (e.g. to restart the api
    /// without a failpoint).
    pub async fn spawn_api(&self, env: &[(&str, &str)]) -> anyhow::Result<Service> {
        spawn_api(&self.nats, &self.db, &self.jwt_secret, &with_env(&self.options.service_env, env)).await
    }

    pub async fn spawn_edge(&self) -> anyhow::Result<Service> {
        let env =
            [("RH_NATS_URL", self.nats.url()), ("RH_JWT_SECRET", &self.jwt_secret), ("RH_EDGE_LISTEN", "127.0.0.1:0")];
        Service::spawn("edge", &with_env(&self.options.service_env, &env)).await
    }

    pub async fn spawn_audit(&self) -> anyhow::Result<Service> {
        let env = [
            ("RH_NATS_URL", self.nats.url()),
            ("RH_DATABASE_URL", self.db.url()),
            ("RH_AUDIT_OPS_LISTEN", "127.0.0.1:0"),
        ];
        Service::spawn("audit", &with_env(&self.options.service_env, &env)).await
    }

    /// Another worker process with the stack's worker environment.
    pub async fn spawn_worker(&self) -> anyhow::Result<Service> {
        self.spawn_worker_with(&[]).await
    }

    /// Another worker process with the stack's worker environment and then `extra` (which wins).
    pub async fn spawn_worker_with(&self, extra: &[(&str, &str)]) -> anyhow::Result<Service> {
        let mut env: Vec<(&str, &str)> =
            vec![("RH_NATS_URL", self.nats.url()), ("RH_WORKER_OPS_LISTEN", "127.0.0.1:0")];
        for (k, v) in &self.options.worker_env {
            env.push((k, v));
        }
        env.extend_from_slice(extra);
        Service::spawn("worker", &with_env(&self.options.service_env, &env)).await
    }

    /// REST client for the api (no token).
    pub fn api(&self) -> Api {
        Api::new(&self.api.http_url())
    }

    /// `ws://<edge>/ws` of the first edge.
    pub fn ws_url(&self) -> String {
        self.ws_url_of(0)
    }

    /// `ws://<edge>/ws` of edge `i`.
    pub fn ws_url_of(&self, i: usize) -> String {
        format!("ws://{}/ws", self.edges[i].addr())
    }

    pub fn jwt_secret(&self) -> &str {
        &self.jwt_secret
    }
}

async fn spawn_api(
    nats: &NatsServer,
    db: &TestDb,
    jwt_secret: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<Service> {
    let mut env: Vec<(&str, &str)> = vec![
        ("RH_NATS_URL", nats.url()),
        ("RH_DATABASE_URL", db.url()),
        ("RH_JWT_SECRET", jwt_secret),
        ("RH_API_LISTEN", "127.0.0.1:0"),
    ];
    env.extend_from_slice(extra);
    Service::spawn("api", &env).await
}

/// `common` (every service's extra environment) followed by `own`, which wins where both name a variable.
fn with_env<'a>(common: &'a [(String, String)], own: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    common.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(own.iter().copied()).collect()
}
