//! What the writer survives: a kill mid-burst, SIGTERM, poison and unknown-conversation events, a database outage.

use super::*;

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
            let info = audit_consumer(&f).await;
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
pub(crate) struct DbOutage {
    admin: tokio_postgres::Client,
    db_name: String,
}

impl DbOutage {
    pub(crate) async fn begin(f: &Fixture) -> DbOutage {
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

    pub(crate) async fn end(self) {
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
    let info = audit_consumer(&f).await;
    assert_eq!(info.num_ack_pending, 0, "every written event was acked before exit");
    assert_eq!(info.num_pending, 0);
    assert_eq!(f.count("SELECT count(*) FROM messages WHERE conversation_id = $1").await, 50);
}

/// The writer's consumer on `RH_AUDIT`, as the server has it now.
async fn audit_consumer(f: &Fixture) -> async_nats::jetstream::consumer::Info {
    f.js.get_stream(rh_protocol::subjects::STREAM_AUDIT)
        .await
        .unwrap()
        .consumer_info(rh_protocol::subjects::AUDIT_CONSUMER)
        .await
        .unwrap()
}
