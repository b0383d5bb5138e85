//! The audit writer against a real nats-server and a real PostgreSQL: events published on `RH_CONV` (copied into
//! `RH_AUDIT`) become transcript rows, audit rows and `applied_seq`, once, in order, across crashes, duplicates,
//! poison messages and database outages; `retention` covers events that `RH_CONV` drops before they are written.
//!
//! This file holds the fixture and helpers; the tests are in `transcript` (rows, history, restarts), `audit_log`
//! (who did what, never the content), `faults` (a kill, SIGTERM, poison, a database outage) and `retention`.

use async_nats::jetstream;
use rh_protocol::{Envelope, Event};
use rh_testkit::{NatsServer, Service, TestDb, eventually};
use std::time::Duration;
use uuid::Uuid;

mod audit_log;
mod faults;
mod retention;
mod transcript;

const WAIT: Duration = Duration::from_secs(20);

/// A nats-server, a database with one org / user / conversation, and a running audit writer.
struct Fixture {
    nats: NatsServer,
    db: TestDb,
    js: jetstream::Context,
    pg: tokio_postgres::Client,
    audit: Service,
    org: Uuid,
    user: Uuid,
    conv: Uuid,
}

impl Fixture {
    async fn start() -> Fixture {
        Fixture::start_with(&[]).await
    }

    /// With extra environment for the audit process.
    async fn start_with(extra_env: &[(&str, &str)]) -> Fixture {
        Fixture::start_on(rh_bus::Topology::default(), extra_env).await
    }

    /// With the streams created with `topology`'s limits.
    async fn start_on(topology: rh_bus::Topology, extra_env: &[(&str, &str)]) -> Fixture {
        let nats = NatsServer::start().await.unwrap();
        topology.ensure(&jetstream::new(nats.client().await.unwrap())).await.unwrap();
        let db = TestDb::create().await.unwrap();
        let js = nats.jetstream().await.unwrap();
        let pg = db.connect().await.unwrap();
        let (org, user, conv) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        pg.execute("INSERT INTO orgs (id, name) VALUES ($1, 'Acme')", &[&org]).await.unwrap();
        pg.execute(
            "INSERT INTO users (id, org_id, email, name, password_hash, role) \
             VALUES ($1, $2, $3, 'Ada Admin', 'x', 'admin')",
            &[&user, &org, &format!("ada-{user}@acme.test")],
        )
        .await
        .unwrap();
        pg.execute(
            "INSERT INTO conversations (id, org_id, owner_id, title, model) VALUES ($1, $2, $3, 'Plans', 'sim-1')",
            &[&conv, &org, &user],
        )
        .await
        .unwrap();
        let audit = spawn_audit(&nats, &db, extra_env).await;
        Fixture { nats, db, js, pg, audit, org, user, conv }
    }

    /// Publishes `event` on this conversation and returns the envelope and its stream seq.
    async fn publish(&self, actor: Option<Uuid>, event: Event) -> (Envelope, u64) {
        let env = Envelope::new(self.conv, actor, event);
        let seq = rh_bus::publish_event_acked(&self.js, &env).await.unwrap();
        (env, seq)
    }

    /// Publishes `env` again as a new stream message (a fresh `Nats-Msg-Id`, so JetStream does not dedupe it).
    async fn republish(&self, env: &Envelope) -> u64 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", Uuid::new_v4().to_string().as_str());
        let payload = serde_json::to_vec(env).unwrap();
        self.js.publish_with_headers(env.subject(), headers, payload.into()).await.unwrap().await.unwrap().sequence
    }

    async fn applied_seq(&self) -> u64 {
        let row =
            self.pg.query_one("SELECT applied_seq FROM conversations WHERE id = $1", &[&self.conv]).await.unwrap();
        row.get::<_, i64>(0) as u64
    }

    async fn wait_applied(&self, seq: u64) {
        eventually(WAIT, &format!("applied_seq >= {seq}"), || async {
            (self.applied_seq().await >= seq).then_some(())
        })
        .await
        .unwrap();
    }

    /// `history_seq` as `GET /conversations/{id}` computes it (see sql/V1__init.sql).
    /// The api's history rule (`rh_store::history`), as a client loading the conversation sees it.
    async fn history(&self) -> rh_store::history::History {
        let db = rh_store::Db::connect(self.db.url(), 1).unwrap();
        rh_store::history::load(&db, self.conv).await.unwrap()
    }

    async fn history_seq(&self) -> u64 {
        self.history().await.seq as u64
    }

    async fn message(&self, id: Uuid) -> Option<MessageRow> {
        let row = self
            .pg
            .query_opt(
                "SELECT role, author_id, text, model, status, reply_to, client_msg_id, attempt, seq, final_seq \
                 FROM messages WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap()?;
        Some(MessageRow {
            role: row.get(0),
            author_id: row.get(1),
            text: row.get(2),
            model: row.get(3),
            status: row.get(4),
            reply_to: row.get(5),
            client_msg_id: row.get(6),
            attempt: row.get(7),
            seq: row.get::<_, i64>(8) as u64,
            final_seq: row.get::<_, Option<i64>>(9).map(|s| s as u64),
        })
    }

    async fn count(&self, sql: &str) -> i64 {
        self.pg.query_one(sql, &[&self.conv]).await.unwrap().get(0)
    }

    async fn metric(&self, name: &str) -> f64 {
        metric(&self.audit, name).await
    }
}

async fn spawn_audit(nats: &NatsServer, db: &TestDb, extra_env: &[(&str, &str)]) -> Service {
    let mut env =
        vec![("RH_NATS_URL", nats.url()), ("RH_DATABASE_URL", db.url()), ("RH_AUDIT_OPS_LISTEN", "127.0.0.1:0")];
    env.extend_from_slice(extra_env);
    Service::spawn("audit", &env).await.unwrap()
}

#[derive(Debug)]
struct MessageRow {
    role: String,
    author_id: Option<Uuid>,
    text: String,
    model: Option<String>,
    status: String,
    reply_to: Option<Uuid>,
    client_msg_id: Option<String>,
    attempt: i32,
    seq: u64,
    final_seq: Option<u64>,
}

async fn http_get(service: &Service, path: &str) -> (u16, String) {
    rh_testkit::init_crypto();
    let response = reqwest::get(format!("{}{path}", service.http_url())).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The value of a metric line `name value` (the sum over label sets when `name` has none).
async fn metric(service: &Service, name: &str) -> f64 {
    let (_, body) = http_get(service, "/metrics").await;
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(key, _)| *key == name || key.strip_prefix(name).is_some_and(|rest| rest.starts_with('{')))
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

fn message_created(author: Uuid, text: &str) -> (Uuid, Uuid, Event) {
    let (message_id, response_id) = (Uuid::new_v4(), Uuid::new_v4());
    let event = Event::MessageCreated {
        message_id,
        author_id: author,
        author_name: "Ada Admin".into(),
        text: text.into(),
        client_msg_id: Some("c-1".into()),
        response_id,
        copied_from: None,
        edit_of: None,
    };
    (message_id, response_id, event)
}
