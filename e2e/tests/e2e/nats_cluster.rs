//! A 3-node JetStream cluster on localhost with every stream and bucket at 3 replicas (issue 11): the server that
//! leads `RH_CONV` is killed (SIGKILL) in the middle of streaming responses. Another server takes the lead, the
//! services reconnect to the survivors, every response completes, every viewer (on two edges) has each response's
//! complete text with no gap and no duplicate, and the transcript in PostgreSQL holds each message and response
//! exactly once. `nats_cluster_jobs.rs` kills the leader of `RH_JOBS`'s worker consumer on the same stack.

use crate::helpers::*;
use rh_protocol::subjects;
use rh_testkit::{Api, NatsCluster, Service, Session, TestDb, eventually};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

const RESPONSES: usize = 3;
pub(crate) const REPLICAS: usize = 3;
/// How long the transcript may take to catch up after the leader change (see below).
const TRANSCRIPT_WAIT: Duration = Duration::from_secs(60);
/// Every stream the services use, buckets included: all must survive the loss of one server.
pub(crate) const STREAMS: [&str; 5] = ["RH_CONV", "RH_AUDIT", "RH_JOBS", "KV_rh_stops", "OBJ_rh_attachments"];

/// The services on the cluster: api (creating the streams with `RH_STREAM_REPLICAS=3`), two edges and the audit
/// writer, all given the servers `url` names. Workers come with [`spawn_worker`].
pub(crate) struct ClusterStack {
    pub api: Service,
    pub edges: Vec<Service>,
    _audit: Service,
    pub db: TestDb,
}

pub(crate) async fn start_services(url: &str) -> anyhow::Result<ClusterStack> {
    let db = TestDb::create().await?;
    let jwt = format!("test-secret-{}", Uuid::new_v4());
    let api = Service::spawn(
        "api",
        &[
            ("RH_NATS_URL", url),
            ("RH_DATABASE_URL", db.url()),
            ("RH_JWT_SECRET", &jwt),
            ("RH_API_LISTEN", "127.0.0.1:0"),
            ("RH_STREAM_REPLICAS", "3"),
        ],
    )
    .await?;
    let mut edges = Vec::new();
    for _ in 0..2 {
        let env = [("RH_NATS_URL", url), ("RH_JWT_SECRET", jwt.as_str()), ("RH_EDGE_LISTEN", "127.0.0.1:0")];
        edges.push(Service::spawn("edge", &env).await?);
    }
    let audit = Service::spawn(
        "audit",
        &[("RH_NATS_URL", url), ("RH_DATABASE_URL", db.url()), ("RH_AUDIT_OPS_LISTEN", "127.0.0.1:0")],
    )
    .await?;
    Ok(ClusterStack { api, edges, _audit: audit, db })
}

/// A worker on the servers `url` names, with `env`. Its ack wait is short: a job whose publishes failed during a
/// leader change is handed back and retried soon, and one whose consumer lost its leader is delivered again soon.
pub(crate) async fn spawn_worker(url: &str, env: &[(&str, &str)]) -> anyhow::Result<Service> {
    let mut all = vec![("RH_NATS_URL", url), ("RH_WORKER_OPS_LISTEN", "127.0.0.1:0"), ("RH_JOB_ACK_WAIT_SECS", "2")];
    all.extend_from_slice(env);
    Service::spawn("worker", &all).await
}

/// People watching one conversation: the owner on both edges, Ben (View Only) on the second.
pub(crate) struct Audience {
    pub api: Api,
    pub owner: Session,
    pub conv: Uuid,
    pub viewers: Vec<Viewer>,
}

pub(crate) async fn audience(s: &ClusterStack) -> anyhow::Result<Audience> {
    let api = Api::new(&s.api.http_url());
    let tag = Uuid::new_v4().simple().to_string();
    let owner = api.sign_up("Acme", "Ada Admin", &format!("ada-{tag}@acme.test"), "pw-ada-123456").await?;
    let ben = api.add_member(&owner, "Ben Builder", &format!("ben-{tag}@acme.test"), "pw-ben-123456").await?;
    let conv = api.create_conversation(&owner, "Cluster").await?;
    api.share(&owner, conv, &ben, "view").await?;
    let ws = |i: usize| format!("ws://{}/ws", s.edges[i].addr());
    let mut viewers = Vec::new();
    for (edge, who) in [(0, &owner), (1, &ben), (1, &owner)] {
        let h = history_seq(&api, who, conv).await?;
        viewers.push(Viewer::join(&ws(edge), who, conv, Some(h)).await?);
    }
    Ok(Audience { api, owner, conv, viewers })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_mid_stream_loses_nothing_on_a_three_node_cluster() -> anyhow::Result<()> {
    let mut cluster = NatsCluster::start(REPLICAS).await?;
    let s = start_services(cluster.url()).await?;
    let _worker = spawn_worker(cluster.url(), &[]).await?;
    let js = async_nats::jetstream::new(cluster.client().await?);
    for stream in STREAMS {
        let mut info = js.get_stream(stream).await?;
        let replicas = info.info().await?.config.num_replicas;
        assert_eq!(replicas, REPLICAS, "{stream} created with RH_STREAM_REPLICAS=3");
    }
    let Audience { api, owner, conv, mut viewers } = audience(&s).await?;

    let mut asked = HashMap::new();
    let mut rids = Vec::new();
    for i in 0..RESPONSES {
        let reply = api.send_message(&owner, conv, &format!("/sim tokens=150 rate=25\nquestion {i}")).await?;
        let rid = response_id(&reply)?;
        asked.insert(rid, Uuid::parse_str(reply["message_id"].as_str().unwrap_or_default())?);
        rids.push(rid);
    }
    viewers[0].until_deltas(rids[0], 5).await?;

    // Kill the server that leads RH_CONV: every publish of the responses in flight goes through it.
    let leader = cluster.stream_leader(&js, subjects::STREAM_CONV).await?;
    cluster.kill(leader).await;
    let new_leader = eventually(WAIT, "another server leading RH_CONV", || async {
        cluster.stream_leader(&js, subjects::STREAM_CONV).await.ok().filter(|l| *l != leader)
    })
    .await?;
    assert_ne!(new_leader, leader);

    // Every response ends on every viewer's socket, its last attempt complete and gapless, and as stored.
    let mut texts: Option<HashMap<Uuid, String>> = None;
    for v in &mut viewers {
        let seen = ended_texts(v, &rids).await?;
        assert_eq!(texts.get_or_insert_with(|| seen.clone()), &seen, "every viewer saw the same texts");
    }
    // The transcript may lag the viewers by a few seconds here: if the killed server led the audit writer's
    // consumer, the writer notices by missed heartbeats and rewinds; RH_AUDIT's copy from RH_CONV resumes under
    // the new leaders.
    for (rid, text) in texts.unwrap_or_default() {
        let stored = eventually(TRANSCRIPT_WAIT, "the transcript after the leader change", || async {
            stored_response(&api, &owner, conv, rid).await.ok()
        })
        .await?;
        assert_eq!(stored, text, "response {rid} as stored");
    }
    assert_stored_exactly_once_in(&s.db, conv, &asked).await?;

    // The cluster goes on with two servers: a new message is answered, seen live and stored.
    let rid = response_id(&api.send_message(&owner, conv, "/sim tokens=5 rate=100\nafter").await?)?;
    for v in &mut viewers {
        v.until_response_end(rid).await?;
        assert_eq!(stored_response(&api, &owner, conv, rid).await?, check_response(&v.seen, rid)?);
    }

    // And the killed server, started again, catches up: RH_CONV has three current copies again.
    cluster.restart(leader).await?;
    eventually(Duration::from_secs(30), "three current copies of RH_CONV", || async {
        (cluster.current_replicas(&js, subjects::STREAM_CONV).await.ok()? == REPLICAS).then_some(())
    })
    .await?;
    Ok(())
}
