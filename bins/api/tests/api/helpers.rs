//! Fixtures: a nats-server, a fresh database and a real `api` process per test; a team in one org; readers of
//! what the api published (conversation events from the stream, inbox messages from core NATS).

use async_nats::jetstream;
use futures::StreamExt;
use rh_protocol::rpc::InboxMessage;
use rh_protocol::{Envelope, subjects};
use rh_testkit::{Api, NatsServer, Service, Session, TestDb};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(10);

/// Attachment limit of the test api (small, so the 413 test stays fast).
pub const MAX_ATTACHMENT: usize = 64 * 1024;

pub struct App {
    pub nats: NatsServer,
    pub db: TestDb,
    pub process: Service,
    pub api: Api,
    pub nc: async_nats::Client,
    pub js: jetstream::Context,
}

pub async fn spawn_app() -> App {
    spawn_app_with(&[]).await
}

/// The api with extra environment.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> App {
    let nats = NatsServer::start().await.expect("nats-server");
    let js = nats.jetstream().await.expect("jetstream");
    let db = TestDb::create().await.expect("database");
    let (process, api) = spawn_api(&nats, &db, extra).await;
    let nc = nats.client().await.expect("nats client");
    App { nats, db, process, api, nc, js }
}

/// Another api replica of `app` (same NATS, same database), with extra environment.
pub async fn spawn_replica(app: &App, extra: &[(&str, &str)]) -> (Service, Api) {
    spawn_api(&app.nats, &app.db, extra).await
}

async fn spawn_api(nats: &NatsServer, db: &TestDb, extra: &[(&str, &str)]) -> (Service, Api) {
    let max = MAX_ATTACHMENT.to_string();
    let mut env = vec![
        ("RH_NATS_URL", nats.url()),
        ("RH_DATABASE_URL", db.url()),
        ("RH_JWT_SECRET", "api-test-secret-api-test-secret-0"),
        ("RH_API_LISTEN", "127.0.0.1:0"),
        ("RH_MAX_ATTACHMENT_BYTES", max.as_str()),
    ];
    env.extend_from_slice(extra);
    let process = Service::spawn("api", &env).await.expect("api starts (cargo build -p rh-api --bin api first)");
    let api = Api::new(&process.http_url());
    (process, api)
}

/// Ada (admin) with Ben and Cy in org Acme.
pub struct Team {
    pub ada: Session,
    pub ben: Session,
    pub cy: Session,
}

pub fn tag() -> String {
    Uuid::new_v4().simple().to_string()[..8].to_owned()
}

pub async fn team(app: &App) -> Team {
    let t = tag();
    let ada = app.api.sign_up("Acme", "Ada Lovelace", &format!("ada-{t}@acme.test"), "pw-ada-123456").await.unwrap();
    let ben = app.api.add_member(&ada, "Ben Okafor", &format!("ben-{t}@acme.test"), "pw-ben-123456").await.unwrap();
    let cy = app.api.add_member(&ada, "Cy Tanaka", &format!("cy-{t}@acme.test"), "pw-cy-1234567").await.unwrap();
    Team { ada, ben, cy }
}

/// Someone in another org.
pub async fn outsider(app: &App) -> Session {
    app.api.sign_up("Globex", "Gil Bates", &format!("gil-{}@globex.test", tag()), "pw-gil-123456").await.unwrap()
}

/// Waits until the api's outbox relay has published everything committed so far.
pub async fn outbox_drained(app: &App) {
    let client = app.db.connect().await.expect("database");
    rh_testkit::eventually(WAIT, "the outbox to drain", || async {
        let row = client.query_one("SELECT count(*) FROM outbox WHERE published_seq IS NULL", &[]).await.ok()?;
        (row.get::<_, i64>(0) == 0).then_some(())
    })
    .await
    .expect("outbox drained");
}

/// Every event of a conversation stored in `RH_CONV`, in stream order, with its seq — once the outbox has
/// published every change made so far.
pub async fn conv_events(app: &App, conversation: Uuid) -> Vec<(u64, Envelope)> {
    outbox_drained(app).await;
    let stream = app.js.get_stream(subjects::STREAM_CONV).await.expect("stream");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: subjects::conv_all(conversation),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(300), messages.next()).await {
        let info = m.info().expect("info");
        let seq = info.stream_sequence;
        let pending = info.pending;
        out.push((seq, serde_json::from_slice(&m.payload).expect("envelope")));
        if pending == 0 {
            break;
        }
    }
    out
}

/// The `type`s of a conversation's events, in order.
pub async fn event_kinds(app: &App, conversation: Uuid) -> Vec<&'static str> {
    conv_events(app, conversation).await.iter().map(|(_, e)| e.event.kind()).collect()
}

/// Returns once the server has processed everything `nc` sent before (e.g. a SUB), so another connection's
/// publish will find that interest. (`flush` only empties the client's write buffer.) The server handles one
/// connection's protocol in order: receiving our own message back means the earlier SUBs are registered.
pub async fn barrier(nc: &async_nats::Client) {
    let subject = format!("_test.barrier.{}", Uuid::new_v4().simple());
    let mut sub = nc.subscribe(subject.clone()).await.unwrap();
    nc.publish(subject, "".into()).await.unwrap();
    tokio::time::timeout(WAIT, sub.next()).await.expect("barrier round trip").expect("subscription open");
}

/// A core-NATS subscription to one person's inbox.
pub struct Inbox(async_nats::Subscriber);

impl Inbox {
    pub async fn open(nc: &async_nats::Client, user: Uuid) -> Inbox {
        let sub = nc.subscribe(subjects::user_inbox(user)).await.unwrap();
        barrier(nc).await;
        Inbox(sub)
    }

    pub async fn next(&mut self) -> InboxMessage {
        let m = tokio::time::timeout(WAIT, self.0.next())
            .await
            .expect("an inbox message in time")
            .expect("subscription open");
        serde_json::from_slice(&m.payload).expect("inbox message")
    }

    /// The next message that `pred` accepts (earlier ones are skipped).
    pub async fn next_where(&mut self, pred: impl Fn(&InboxMessage) -> bool) -> InboxMessage {
        loop {
            let m = self.next().await;
            if pred(&m) {
                return m;
            }
        }
    }
}

/// Asserts the `{"error":{"code","message"}}` shape and the status.
pub fn assert_error(status: reqwest::StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

/// Creates a conversation and shares it: Ben can respond, Cy can view.
pub async fn shared_conversation(app: &App, team: &Team, title: &str) -> Uuid {
    let conv = app.api.create_conversation(&team.ada, title).await.unwrap();
    app.api.share(&team.ada, conv, &team.ben, "respond").await.unwrap();
    app.api.share(&team.ada, conv, &team.cy, "view").await.unwrap();
    conv
}

/// Writes a conversation's events to the transcript as the audit writer does (its own code, in-process).
pub async fn apply_transcript(app: &App, conversation: Uuid) {
    let mut client = app.db.db().client().await.unwrap();
    for (seq, env) in conv_events(app, conversation).await {
        rh_store::transcript::apply(&mut client, seq, &env).await.unwrap();
    }
}
