//! The audit writer against a real nats-server and a real PostgreSQL: events published on `RH_CONV` (copied into
//! `RH_AUDIT`) become transcript rows, audit rows and `applied_seq`, once, in order, across crashes, duplicates,
//! poison messages and database outages; `retention` covers events that `RH_CONV` drops before they are written.

use async_nats::jetstream;
use rh_protocol::event::Settings;
use rh_protocol::{Envelope, Event, Permission};
use rh_testkit::{NatsServer, Service, TestDb, eventually};
use std::time::Duration;
use uuid::Uuid;

mod retention;

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

#[tokio::test]
async fn message_and_response_are_written_once_with_history_covering_only_the_final_prefix() {
    let f = Fixture::start().await;
    let (message_id, response_id, created) = message_created(f.user, "What is NATS?");
    let (_, m_seq) = f.publish(Some(f.user), created).await;
    let started = Event::ResponseStarted { response_id, message_id, model: "sim-1".into(), attempt: 1 };
    let (_, s_seq) = f.publish(None, started).await;
    for index in 0..3 {
        let delta = Event::ResponseDelta { response_id, attempt: 1, index, text: "tok ".into(), from_index: None };
        f.publish(None, delta).await;
    }
    f.wait_applied(s_seq).await;

    let user_row = f.message(message_id).await.expect("user message row");
    assert_eq!(user_row.role, "user");
    assert_eq!(user_row.author_id, Some(f.user));
    assert_eq!(user_row.text, "What is NATS?");
    assert_eq!(user_row.client_msg_id.as_deref(), Some("c-1"));
    assert_eq!((user_row.status.as_str(), user_row.seq, user_row.final_seq), ("complete", m_seq, Some(m_seq)));

    // Mid-response: the assistant row is streaming at its start seq, and history stops just before it.
    let streaming = f.message(response_id).await.expect("assistant row while streaming");
    assert_eq!((streaming.status.as_str(), streaming.seq, streaming.final_seq), ("streaming", s_seq, None));
    assert_eq!(streaming.reply_to, Some(message_id));
    assert_eq!(f.applied_seq().await, s_seq, "deltas never move applied_seq");
    assert_eq!(f.history_seq().await, s_seq - 1);

    let completed = Event::ResponseCompleted {
        response_id,
        attempt: 1,
        model: "sim-1".into(),
        text: "NATS is a messaging system.".into(),
    };
    let (_, c_seq) = f.publish(None, completed).await;
    f.wait_applied(c_seq).await;
    let done = f.message(response_id).await.unwrap();
    assert_eq!(done.text, "NATS is a messaging system.");
    assert_eq!((done.status.as_str(), done.seq, done.final_seq), ("complete", s_seq, Some(c_seq)));
    assert_eq!(done.model.as_deref(), Some("sim-1"));
    assert_eq!(done.author_id, None);
    assert_eq!(f.history_seq().await, c_seq);
    assert_eq!(f.count("SELECT count(*) FROM messages WHERE conversation_id = $1").await, 2);
    assert_eq!(f.metric("relayhub_audit_events_applied_total").await, 3.0);
}

#[tokio::test]
async fn the_same_event_published_twice_leaves_one_row() {
    let f = Fixture::start().await;
    let (message_id, response_id, created) = message_created(f.user, "hello");
    let (created, m_seq) = f.publish(Some(f.user), created).await;
    let m_again = f.republish(&created).await;
    assert!(m_again > m_seq, "the copy is a new stream message");
    let (started, s_seq) =
        f.publish(None, Event::ResponseStarted { response_id, message_id, model: "sim-1".into(), attempt: 1 }).await;
    let s_again = f.republish(&started).await;
    let completed = Event::ResponseCompleted { response_id, attempt: 1, model: "sim-1".into(), text: "hi!".into() };
    let (completed, c_seq) = f.publish(None, completed).await;
    let c_again = f.republish(&completed).await;
    f.wait_applied(c_again).await;

    assert_eq!(f.count("SELECT count(*) FROM messages WHERE conversation_id = $1").await, 2);
    let user_row = f.message(message_id).await.unwrap();
    assert_eq!((user_row.seq, user_row.final_seq), (m_seq, Some(m_seq)), "the first copy wins");
    let response = f.message(response_id).await.unwrap();
    assert_eq!(response.seq, s_seq, "a repeated start keeps the first start seq");
    assert!(s_again > s_seq);
    assert_eq!(response.status, "complete");
    assert_eq!(response.text, "hi!");
    assert!(response.final_seq >= Some(c_seq));
    assert_eq!(f.count("SELECT count(*) FROM audit_log WHERE conversation_id = $1").await, 2);
    assert_eq!(f.metric("relayhub_audit_events_duplicate_total").await, 3.0);
    assert_eq!(f.applied_seq().await, c_again);
}

#[tokio::test]
async fn responses_that_restart_or_stop_before_starting_end_in_the_right_state() {
    let f = Fixture::start().await;
    // Stopped before any worker started it: the row is created finished, seq = final_seq.
    let (m1, r1, created) = message_created(f.user, "first");
    f.publish(Some(f.user), created).await;
    let stopped = Event::ResponseStopped { response_id: r1, attempt: 1, text: String::new(), stopped_by: Some(f.user) };
    let (_, stop_seq) = f.publish(Some(f.user), stopped).await;

    // Restarted after a worker crash: keeps the first start seq; the late end of attempt 1 does not finish it.
    let (m2, r2, created) = message_created(f.user, "second");
    f.publish(Some(f.user), created).await;
    let start = |attempt| Event::ResponseStarted { response_id: r2, message_id: m2, model: "sim-1".into(), attempt };
    let (_, first_start) = f.publish(None, start(1)).await;
    let (_, second_start) = f.publish(None, start(2)).await;
    let late =
        Event::ResponseFailed { response_id: r2, attempt: 1, error: "worker lost".into(), text: "partial".into() };
    let (_, late_seq) = f.publish(None, late).await;
    f.wait_applied(late_seq).await;
    let restarted = f.message(r2).await.unwrap();
    assert_eq!((restarted.status.as_str(), restarted.seq, restarted.attempt), ("streaming", first_start, 2));
    assert!(second_start > first_start);
    assert_eq!(f.history_seq().await, first_start - 1);

    let done = Event::ResponseCompleted { response_id: r2, attempt: 2, model: "sim-1".into(), text: "full".into() };
    let (_, done_seq) = f.publish(None, done).await;
    f.wait_applied(done_seq).await;

    let stopped_row = f.message(r1).await.expect("stopped response row");
    assert_eq!(stopped_row.role, "assistant");
    assert_eq!(
        (stopped_row.status.as_str(), stopped_row.seq, stopped_row.final_seq),
        ("stopped", stop_seq, Some(stop_seq))
    );
    assert_eq!(stopped_row.reply_to, Some(m1));
    let finished = f.message(r2).await.unwrap();
    assert_eq!((finished.status.as_str(), finished.text.as_str()), ("complete", "full"));
    assert_eq!((finished.seq, finished.final_seq, finished.attempt), (first_start, Some(done_seq), 2));
    assert_eq!(f.history_seq().await, done_seq);
}

#[tokio::test]
async fn a_killed_writer_resumes_in_order_without_loss_or_duplicates() {
    // One event per transaction, so the writer is still busy when it is killed.
    let mut f = Fixture::start_with(&[("RH_AUDIT_BATCH_MAX", "1")]).await;
    const TOTAL: usize = 300;
    const BEFORE_KILL: usize = 200;
    let mut acks = Vec::with_capacity(TOTAL);
    let mut ids = Vec::with_capacity(TOTAL);
    let mut killed_at_rows = None;
    for i in 0..TOTAL {
        if i == BEFORE_KILL {
            // Crash the writer in the middle of the burst.
            let deadline = std::time::Instant::now() + WAIT;
            while f.count("SELECT count(*) FROM messages WHERE conversation_id = $1").await < 20 {
                assert!(std::time::Instant::now() < deadline, "the writer never started");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            f.audit.kill().await;
            killed_at_rows = Some(f.count("SELECT count(*) FROM messages WHERE conversation_id = $1").await);
            let info =
                f.js.get_stream(rh_protocol::subjects::STREAM_AUDIT)
                    .await
                    .unwrap()
                    .consumer_info(rh_protocol::subjects::AUDIT_CONSUMER)
                    .await
                    .unwrap();
            assert!(info.num_ack_pending > 0, "the killed writer held delivered, unacked events");
        }
        let (message_id, _, created) = message_created(f.user, &format!("message {i}"));
        ids.push(message_id);
        let env = Envelope::new(f.conv, Some(f.user), created);
        acks.push(rh_bus::publish_event(&f.js, &env).await.unwrap());
    }
    let mut seqs = Vec::with_capacity(TOTAL);
    for ack in acks {
        seqs.push(ack.await.unwrap().sequence);
    }
    let killed_at_rows = killed_at_rows.unwrap();
    assert!(killed_at_rows < TOTAL as i64, "killed mid-burst ({killed_at_rows} rows)");
    let last_seq = *seqs.last().unwrap();

    // Restart. Events the dead process held unacked are delivered again at once (not after ack_wait) and
    // before newer ones: at every moment, every message at or below applied_seq is in the table.
    let restarted = std::time::Instant::now();
    f.audit = f.audit.respawn().await.unwrap();
    let seqs_for_check = seqs.clone();
    eventually(Duration::from_secs(25), "all 300 messages after the restart", || async {
        let row =
            f.pg.query_one(
                "SELECT c.applied_seq, \
                   (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.seq <= c.applied_seq), \
                   (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) \
                 FROM conversations c WHERE c.id = $1",
                &[&f.conv],
            )
            .await
            .unwrap();
        let (applied, below, total): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        let expected_below = seqs_for_check.iter().filter(|s| **s <= applied as u64).count() as i64;
        assert_eq!(below, expected_below, "rows at or below applied_seq {applied} form the stream prefix");
        (total == TOTAL as i64 && applied as u64 == last_seq).then_some(())
    })
    .await
    .unwrap();
    assert!(restarted.elapsed() < Duration::from_secs(20), "recovery did not wait for ack_wait");

    for (id, seq) in ids.iter().zip(&seqs) {
        let row = f.message(*id).await.expect("every message is written");
        assert_eq!((row.seq, row.final_seq), (*seq, Some(*seq)));
    }
    assert_eq!(f.count("SELECT count(DISTINCT seq) FROM messages WHERE conversation_id = $1").await, TOTAL as i64);
    assert_eq!(
        f.count("SELECT count(*) FROM audit_log WHERE conversation_id = $1 AND action = 'message.created'").await,
        TOTAL as i64
    );
    assert_eq!(f.applied_seq().await, last_seq);
}

#[tokio::test]
async fn audit_log_records_who_did_what_and_never_the_content() {
    let f = Fixture::start().await;
    let ben = Uuid::new_v4();
    f.pg.execute(
        "INSERT INTO users (id, org_id, email, name, password_hash, role) VALUES ($1, $2, $3, 'Ben', 'x', 'member')",
        &[&ben, &f.org, &format!("ben-{ben}@acme.test")],
    )
    .await
    .unwrap();
    let secret = "TOP-SECRET-PLAN";
    let settings = |model: &str| Settings {
        model: model.into(),
        temperature: Some(0.2),
        system_prompt: Some(format!("you know the {secret}")),
    };
    let attachment_id = Uuid::new_v4();
    let (message_id, response_id, created) = message_created(f.user, &format!("tell me the {secret}"));
    let events: Vec<(Option<Uuid>, Event)> = vec![
        (
            Some(f.user),
            Event::ConversationCreated { owner_id: f.user, title: "Plans".into(), settings: settings("sim-1") },
        ),
        (
            Some(f.user),
            Event::ParticipantAdded {
                user_id: ben,
                name: "Ben".into(),
                email: "ben@acme.test".into(),
                permission: Permission::View,
            },
        ),
        (Some(f.user), Event::ParticipantChanged { user_id: ben, permission: Permission::Respond }),
        (
            Some(f.user),
            Event::SettingsChanged {
                changed_by: f.user,
                changed_by_name: "Ada Admin".into(),
                changed: vec!["model".into(), "system_prompt".into()],
                settings: settings("sim-2"),
            },
        ),
        (
            Some(f.user),
            Event::AttachmentAdded {
                attachment_id,
                filename: "plan.pdf".into(),
                content_type: "application/pdf".into(),
                size: 1234,
                uploaded_by: f.user,
            },
        ),
        (Some(f.user), created),
        (None, Event::ResponseStarted { response_id, message_id, model: "sim-2".into(), attempt: 1 }),
        (
            None,
            Event::ResponseCompleted {
                response_id,
                attempt: 1,
                model: "sim-2".into(),
                text: format!("the {secret} is safe"),
            },
        ),
        (Some(f.user), Event::ParticipantRemoved { user_id: ben }),
        (Some(f.user), Event::ConversationDeleted {}),
    ];
    let mut last = 0;
    let mut event_ids = Vec::new();
    for (actor, event) in events {
        let (env, seq) = f.publish(actor, event).await;
        event_ids.push(env.event_id);
        last = seq;
    }
    f.wait_applied(last).await;

    let rows =
        f.pg.query(
            "SELECT id, org_id, actor_id, action, detail::text, seq FROM audit_log \
             WHERE conversation_id = $1 ORDER BY seq",
            &[&f.conv],
        )
        .await
        .unwrap();
    let actions: Vec<String> = rows.iter().map(|r| r.get(3)).collect();
    assert_eq!(
        actions,
        [
            "conversation.created",
            "participant.added",
            "participant.changed",
            "settings.changed",
            "attachment.added",
            "message.created",
            "response.completed",
            "participant.removed",
            "conversation.deleted"
        ]
    );
    for row in &rows {
        let detail: String = row.get(4);
        assert_eq!(row.get::<_, Uuid>(1), f.org);
        assert!(!detail.contains(secret), "audit detail leaks content: {detail}");
        assert!(event_ids.contains(&row.get::<_, Uuid>(0)), "audit id is the event id");
    }
    let detail = |i: usize| -> serde_json::Value { serde_json::from_str(&rows[i].get::<_, String>(4)).unwrap() };
    assert_eq!(rows[1].get::<_, Option<Uuid>>(2), Some(f.user), "who shared");
    assert_eq!(detail(1)["user_id"], ben.to_string());
    assert_eq!(detail(1)["permission"], "view");
    assert_eq!(detail(2)["permission"], "respond");
    assert_eq!(detail(3)["model"], "sim-2");
    assert_eq!(detail(3)["changed"], serde_json::json!(["model", "system_prompt"]));
    assert_eq!(detail(4)["filename"], "plan.pdf");
    assert_eq!(detail(4)["size"], 1234);
    assert_eq!(detail(5)["message_id"], message_id.to_string());
    assert_eq!(detail(5)["chars"], format!("tell me the {secret}").chars().count());
    assert_eq!(detail(6)["status"], "complete");
    assert_eq!(detail(7)["user_id"], ben.to_string());
    assert_eq!(rows[7].get::<_, Option<Uuid>>(2), Some(f.user), "who revoked");
    // The transcript itself keeps the text (it is the system of record); only the audit log must not.
    assert_eq!(f.message(response_id).await.unwrap().text, format!("the {secret} is safe"));
}

#[tokio::test]
async fn poison_and_unknown_conversation_events_are_skipped_and_later_events_apply() {
    let f = Fixture::start().await;
    let subject = rh_protocol::subjects::conv_event(f.conv);
    f.js.publish(subject.clone(), "not json {".into()).await.unwrap().await.unwrap();
    f.js.publish(subject, r#"{"type":"message.exploded"}"#.into()).await.unwrap().await.unwrap();
    let stranger = Envelope::new(Uuid::new_v4(), Some(f.user), message_created(f.user, "lost").2);
    rh_bus::publish_event_acked(&f.js, &stranger).await.unwrap();

    let (message_id, _, created) = message_created(f.user, "after the poison");
    let (_, seq) = f.publish(Some(f.user), created).await;
    f.wait_applied(seq).await;
    assert_eq!(f.message(message_id).await.unwrap().text, "after the poison");
    assert_eq!(f.metric(r#"relayhub_audit_errors_total{kind="poison"}"#).await, 2.0);
    assert_eq!(f.metric("relayhub_audit_events_skipped_total").await, 1.0);
    let stranger_rows: i64 =
        f.pg.query_one("SELECT count(*) FROM messages WHERE conversation_id = $1", &[&stranger.conversation_id])
            .await
            .unwrap()
            .get(0);
    assert_eq!(stranger_rows, 0);
}

#[tokio::test]
async fn a_database_outage_delays_events_but_loses_none() {
    let f = Fixture::start().await;
    let (first, _, created) = message_created(f.user, "before");
    let (_, seq) = f.publish(Some(f.user), created).await;
    f.wait_applied(seq).await;
    eventually(WAIT, "ready", || async { (http_get(&f.audit, "/readyz").await.0 == 200).then_some(()) }).await.unwrap();

    let outage = DbOutage::begin(&f).await;

    let mut during = Vec::new();
    for i in 0..5 {
        let (id, _, created) = message_created(f.user, &format!("during {i}"));
        f.publish(Some(f.user), created).await;
        during.push(id);
    }
    eventually(WAIT, "not ready while the database is away", || async {
        (http_get(&f.audit, "/readyz").await.0 == 503).then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(f.count("SELECT count(*) FROM messages WHERE conversation_id = $1").await, 1);
    assert!(f.metric(r#"relayhub_audit_errors_total{kind="db"}"#).await >= 1.0);

    outage.end().await;
    let (last, _, created) = message_created(f.user, "after");
    let (_, last_seq) = f.publish(Some(f.user), created).await;
    f.wait_applied(last_seq).await;
    for id in during.iter().chain([&first, &last]) {
        assert!(f.message(*id).await.is_some(), "message {id} written after the outage");
    }
    eventually(WAIT, "ready again", || async { (http_get(&f.audit, "/readyz").await.0 == 200).then_some(()) })
        .await
        .unwrap();
    let _ = &f.nats;
}

/// The test database taken away from the writer: no new connections, its connections terminated (not the
/// fixture's own).
struct DbOutage {
    admin: tokio_postgres::Client,
    db_name: String,
}

impl DbOutage {
    async fn begin(f: &Fixture) -> DbOutage {
        let db_name: String = f.pg.query_one("SELECT current_database()", &[]).await.unwrap().get(0);
        let own_pid: i32 = f.pg.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
        let (admin, connection) = tokio_postgres::connect(&admin_url(f.db.url()), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        admin.batch_execute(&format!("ALTER DATABASE {db_name} ALLOW_CONNECTIONS false")).await.unwrap();
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2",
                &[&db_name, &own_pid],
            )
            .await
            .unwrap();
        DbOutage { admin, db_name }
    }

    async fn end(self) {
        self.admin.batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.db_name)).await.unwrap();
    }
}

/// The URL of the server's `postgres` database, from a test database's URL.
fn admin_url(db_url: &str) -> String {
    let (base, query) = db_url.split_once('?').map_or((db_url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("database url has a path");
    match query {
        Some(q) => format!("{server}/postgres?{q}"),
        None => format!("{server}/postgres"),
    }
}

#[tokio::test]
async fn sigterm_finishes_the_work_and_leaves_nothing_unacked() {
    let mut f = Fixture::start().await;
    let mut last = 0;
    for i in 0..50 {
        let (_, _, created) = message_created(f.user, &format!("m{i}"));
        last = f.publish(Some(f.user), created).await.1;
    }
    f.wait_applied(last).await;
    let asked = std::time::Instant::now();
    f.audit.terminate(Duration::from_secs(10)).await;
    assert!(asked.elapsed() < Duration::from_secs(5), "exited on SIGTERM without being killed");
    let info =
        f.js.get_stream(rh_protocol::subjects::STREAM_AUDIT)
            .await
            .unwrap()
            .consumer_info(rh_protocol::subjects::AUDIT_CONSUMER)
            .await
            .unwrap();
    assert_eq!(info.num_ack_pending, 0, "every written event was acked before exit");
    assert_eq!(info.num_pending, 0);
    assert_eq!(f.count("SELECT count(*) FROM messages WHERE conversation_id = $1").await, 50);
}

/// Two responses interleave (two people asked at nearly the same time): A starts, B starts, A ends, B streams on.
/// History must stop before A's start — not before B's — or a client would get A's end from the stream without
/// its start (the load test found this with two responders per conversation).
#[tokio::test]
async fn interleaved_responses_keep_history_a_clean_prefix_of_the_stream() {
    let f = Fixture::start().await;
    let (ma, ra, created_a) = message_created(f.user, "first question");
    let (_, ma_seq) = f.publish(Some(f.user), created_a).await;
    let (_, sa_seq) = f
        .publish(None, Event::ResponseStarted { response_id: ra, message_id: ma, model: "sim-1".into(), attempt: 1 })
        .await;
    let (mb, rb, mut created_b) = message_created(f.user, "second question");
    if let Event::MessageCreated { client_msg_id, .. } = &mut created_b {
        *client_msg_id = Some("c-2".into());
    }
    let (_, mb_seq) = f.publish(Some(f.user), created_b).await;
    let (_, sb_seq) = f
        .publish(None, Event::ResponseStarted { response_id: rb, message_id: mb, model: "sim-1".into(), attempt: 1 })
        .await;
    let (_, ca_seq) = f
        .publish(
            None,
            Event::ResponseCompleted { response_id: ra, attempt: 1, model: "sim-1".into(), text: "A".into() },
        )
        .await;
    f.wait_applied(ca_seq).await;
    assert!(ma_seq < sa_seq && sa_seq < mb_seq && mb_seq < sb_seq && sb_seq < ca_seq);

    // A spans [sa, ca] and B is still streaming from sb: the only clean cut at or below applied_seq is before A.
    let h = f.history().await;
    assert_eq!(h.seq as u64, sa_seq - 1, "history must not cut through response A");
    let ids: Vec<Uuid> = h.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![ma], "history holds exactly the rows final at its position");

    // Once B ends, everything is history.
    let (_, cb_seq) = f
        .publish(
            None,
            Event::ResponseCompleted { response_id: rb, attempt: 1, model: "sim-1".into(), text: "B".into() },
        )
        .await;
    f.wait_applied(cb_seq).await;
    let h = f.history().await;
    assert_eq!(h.seq as u64, cb_seq);
    let ids: Vec<Uuid> = h.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![ma, ra, mb, rb], "rows in stream order of their start");
}
