//! Delete means gone (issue 17), checked from the side of someone who wants to read a deleted conversation anyway:
//! with database access (every row of every table), with NATS access (every message of every stream that holds
//! conversation events, jobs or attachment bytes), and with an old socket position. Also with NATS down at the
//! moment of the delete, and for conversations that their org's retention expired.

use crate::helpers::*;
use async_nats::jetstream;
use rh_protocol::{Event, ServerFrame};
use rh_testkit::{StackOptions, TestDb};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// A short last purge, so a test sees the erase job finish within seconds.
fn options() -> StackOptions {
    StackOptions {
        api_env: vec![("RH_ERASE_SETTLE_SECS".into(), "3".into()), ("RH_RETENTION_INTERVAL_SECS".into(), "1".into())],
        ..StackOptions::default()
    }
}

/// A conversation full of `marker`: in its title, system prompt, a message (so also the job and the response
/// context), an attachment's name and bytes. Returns it, its attachment id and its history `seq`, once the
/// response is in the transcript.
async fn sensitive_conversation(t: &Team, marker: &str) -> anyhow::Result<(Uuid, Uuid, u64)> {
    let conv = t.api.create_conversation(&t.owner, &format!("Plan {marker}")).await?;
    t.api.share(&t.owner, conv, &t.ben, "view").await?;
    let owner = t.api.as_user(&t.owner);
    let (s, v) = owner.patch(&format!("/conversations/{conv}/settings"), json!({"system_prompt": marker})).await?;
    anyhow::ensure!(s.is_success(), "settings: {s} {v}");
    let attachment = upload(&t.api, &t.owner, conv, &format!("{marker}.txt"), marker.as_bytes()).await?;
    let reply = t.api.send_message(&t.owner, conv, &format!("/sim tokens=12 rate=200\nAbout {marker}")).await?;
    stored_response(&t.api, &t.owner, conv, response_id(&reply)?).await?;
    Ok((conv, attachment, history_seq(&t.api, &t.owner, conv).await?))
}

async fn upload(
    api: &rh_testkit::Api,
    who: &rh_testkit::Session,
    conv: Uuid,
    name: &str,
    bytes: &[u8],
) -> anyhow::Result<Uuid> {
    let (http, base, _) = api.raw();
    let mut body = format!(
        "--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(b"\r\n--b0--\r\n");
    let resp = http
        .post(format!("{base}/conversations/{conv}/attachments"))
        .bearer_auth(&who.token)
        .header("content-type", "multipart/form-data; boundary=b0")
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "upload: {}", resp.status());
    let v: Value = resp.json().await?;
    Ok(Uuid::parse_str(v["id"].as_str().unwrap_or_default())?)
}

async fn put(
    api: &rh_testkit::Api,
    who: &rh_testkit::Session,
    path: &str,
    body: Value,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    api.as_user(who).send(reqwest::Method::PUT, path, Some(body)).await
}

/// Every table of the database whose rows, as text (every column; `bytea` shows as hex), contain `marker`, with
/// how many rows.
async fn marker_in_database(db: &TestDb, marker: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let pg = db.connect().await?;
    let tables = pg
        .query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", &[])
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>();
    anyhow::ensure!(tables.iter().any(|t| t == "messages"), "no tables found: {tables:?}");
    let mut found = Vec::new();
    for table in tables {
        let sql = format!(
            "SELECT count(*) FROM \"{table}\" t \
             WHERE t::text LIKE '%' || $1 || '%' OR t::text LIKE '%' || encode(convert_to($1, 'UTF8'), 'hex') || '%'"
        );
        let n: i64 = pg.query_one(&sql, &[&marker]).await?.get(0);
        if n > 0 {
            found.push((table, n));
        }
    }
    Ok(found)
}

/// Every stream that could hold a conversation's content: its events and deltas, generation jobs (their
/// context), attachment bytes.
fn streams_to_search() -> Vec<String> {
    let mut names: Vec<String> = rh_bus::erase::CONVERSATION_STREAMS.iter().map(|s| s.to_string()).collect();
    names.push(rh_protocol::subjects::STREAM_JOBS.to_owned());
    names.push(format!("OBJ_{}", rh_protocol::subjects::OBJECT_ATTACHMENTS));
    names
}

/// Reads every message of every stream of [`streams_to_search`]; returns `(stream, subject)` of each message that
/// is on the conversation's subjects or contains `marker`.
async fn marker_in_streams(js: &jetstream::Context, conv: Uuid, marker: &str) -> anyhow::Result<Vec<(String, String)>> {
    let prefix = format!("rh.conv.{conv}.");
    let mut found = Vec::new();
    for name in streams_to_search() {
        let mut stream = js.get_stream(&name).await?;
        let state = stream.info().await?.state.clone();
        for seq in state.first_sequence..=state.last_sequence {
            let Ok(m) = stream.get_raw_message(seq).await else { continue }; // a gap: deleted or purged
            let subject = m.subject.to_string();
            if subject.starts_with(&prefix) || m.payload.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                found.push((name.clone(), subject));
            }
        }
    }
    Ok(found)
}

/// Waits until the erase job of `conv` is done: its `conversation.erased` audit row.
async fn erased(db: &TestDb, conv: Uuid, within: Duration) -> anyhow::Result<Value> {
    let pg = db.connect().await?;
    rh_testkit::eventually(within, "the conversation.erased audit row", || async {
        let row = pg
            .query_opt(
                "SELECT detail FROM audit_log WHERE conversation_id = $1 AND action = 'conversation.erased'",
                &[&conv],
            )
            .await
            .ok()??;
        Some(row.get::<_, Value>(0))
    })
    .await
}

/// What an attacker with the rest of the access finds after the erasure: nothing.
async fn nothing_left(t: &Team, conv: Uuid, attachment: Uuid, old_seq: u64, marker: &str) -> anyhow::Result<()> {
    assert_eq!(marker_in_database(&t.stack.db, marker).await?, vec![], "content left in PostgreSQL");
    let js = t.stack.nats.jetstream().await?;
    // The generation job leaves the work queue when the worker acks it, just after the response ends.
    let left = rh_testkit::eventually(WAIT, "nothing in the streams", || async {
        let found = marker_in_streams(&js, conv, marker).await.ok()?;
        found.is_empty().then_some(found)
    })
    .await;
    assert!(left.is_ok(), "content left in NATS: {:?}", marker_in_streams(&js, conv, marker).await?);
    let store = js.get_object_store(rh_protocol::subjects::OBJECT_ATTACHMENTS).await?;
    assert!(store.get(format!("{conv}/{attachment}")).await.is_err(), "the attachment object is still readable");

    // A socket that asks for the conversation from an old position is told it does not exist.
    let mut ws = rh_testkit::WsClient::connect(&t.stack.ws_url(), &t.owner.token).await?;
    ws.subscribe(conv, Some(old_seq.saturating_sub(3))).await?;
    let (f, _) = ws.until(WAIT, |f| matches!(f, ServerFrame::Error { .. } | ServerFrame::Subscribed { .. })).await?;
    assert!(matches!(&f, ServerFrame::Error { code, .. } if code == "not_found"), "{f:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_conversation_leaves_nothing_to_read() -> anyhow::Result<()> {
    let t = team(options()).await?;
    let marker = format!("SECRET{}", Uuid::new_v4().simple());
    let (conv, attachment, seq) = sensitive_conversation(&t, &marker).await?;
    // The checks can fail: before the delete, the marker is everywhere.
    let js = t.stack.nats.jetstream().await?;
    assert!(marker_in_database(&t.stack.db, &marker).await?.len() >= 3, "title, messages, attachment rows");
    assert!(!marker_in_streams(&js, conv, &marker).await?.is_empty());
    let mut viewer = Viewer::join(&t.stack.ws_url(), &t.ben, conv, Some(seq)).await?;

    let (s, v) = t.api.as_user(&t.owner).delete(&format!("/conversations/{conv}")).await?;
    assert!(s.is_success(), "delete: {s} {v}");
    // Ben, watching, sees it go.
    viewer
        .until_frame(|f| match f {
            ServerFrame::AccessRevoked { conversation_id, reason } => {
                assert_eq!(*reason, Some(rh_protocol::frame::RevokeReason::Deleted), "announced as deleted");
                *conversation_id == conv
            }
            ServerFrame::Event { event, .. } => matches!(event.event, Event::ConversationDeleted {}),
            _ => false,
        })
        .await?;

    let detail = erased(&t.stack.db, conv, WAIT).await?;
    assert_eq!(detail["reason"], "deleted");
    assert_eq!(detail["messages"], 2, "the message and its response: {detail}");
    assert_eq!(detail["attachments"], 1);
    nothing_left(&t, conv, attachment, seq, &marker).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_deleted_while_nats_is_down_is_erased_when_it_returns() -> anyhow::Result<()> {
    let mut t = team(options()).await?;
    let marker = format!("SECRET{}", Uuid::new_v4().simple());
    let (conv, attachment, seq) = sensitive_conversation(&t, &marker).await?;

    t.stack.nats.stop().await;
    let (s, v) = t.api.as_user(&t.owner).delete(&format!("/conversations/{conv}")).await?;
    assert!(s.is_success(), "delete with NATS down: {s} {v}");
    // PostgreSQL does not wait for NATS.
    rh_testkit::eventually(WAIT, "PostgreSQL erased", || async {
        marker_in_database(&t.stack.db, &marker).await.ok()?.is_empty().then_some(())
    })
    .await?;
    let js_down = t.stack.db.connect().await?;
    let pending: i64 = js_down
        .query_one("SELECT count(*) FROM erase_jobs WHERE conversation_id = $1 AND done_at IS NULL", &[&conv])
        .await?
        .get(0);
    assert_eq!(pending, 1, "the NATS part waits for NATS");

    t.stack.nats.restart().await?;
    erased(&t.stack.db, conv, Duration::from_secs(60)).await?;
    nothing_left(&t, conv, attachment, seq, &marker).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_erases_what_was_not_updated_for_the_period() -> anyhow::Result<()> {
    let t = team(options()).await?;
    let client = t.api.client();
    // Only an admin of the org sees or sets it; off by default; nonsense refused.
    let path = format!("/orgs/{}/retention", t.owner.org_id);
    let (s, v) = t.api.as_user(&t.owner).get(&path).await?;
    assert_eq!((s.as_u16(), &v), (200, &json!({"retention_days": null})));
    let (s, v) = put(&t.api, &t.ben, &path, json!({"retention_days": 1})).await?;
    assert_eq!((s.as_u16(), v["error"]["code"].as_str()), (403, Some("forbidden")), "{v}");
    let (s, _) = t.api.as_user(&t.ben).get(&path).await?;
    assert_eq!(s.as_u16(), 403);
    let other = t
        .api
        .sign_up("Globex", "Gil", &format!("gil-{}@globex.test", Uuid::new_v4().simple()), "pw-gil-123456")
        .await?;
    let (s, _) = put(&t.api, &other, &path, json!({"retention_days": 1})).await?;
    assert_eq!(s.as_u16(), 403, "another org's admin");
    for bad in [json!({"retention_days": 0}), json!({"retention_days": 40000}), json!({"retention_days": "7"})] {
        let (s, v) = put(&t.api, &t.owner, &path, bad.clone()).await?;
        assert_eq!(s.as_u16(), 400, "{bad} -> {v}");
        assert!(v["error"]["code"].is_string(), "{v}");
    }

    let marker = format!("SECRET{}", Uuid::new_v4().simple());
    let (old, attachment, seq) = sensitive_conversation(&t, &marker).await?;
    let fresh = t.api.create_conversation(&t.ben, "Fresh").await?;
    let elsewhere = t.api.create_conversation(&other, "Other org, no retention").await?;
    // Age the conversations as 31 days of silence would (the period is in real days).
    let pg = t.stack.db.connect().await?;
    pg.execute(
        "UPDATE conversations SET updated_at = now() - interval '31 days' WHERE id = ANY($1)",
        &[&vec![old, elsewhere]],
    )
    .await?;

    assert_eq!(client.set_retention(&t.owner, Some(30)).await?.retention_days, Some(30));
    let detail = erased(&t.stack.db, old, WAIT).await?;
    assert_eq!(detail["reason"], "retention");
    let who: Option<Uuid> = pg
        .query_one(
            "SELECT actor_id FROM audit_log WHERE conversation_id = $1 AND action = 'conversation.erased'",
            &[&old],
        )
        .await?
        .get(0);
    assert_eq!(who, None, "nobody asked: the retention did");
    nothing_left(&t, old, attachment, seq, &marker).await?;
    // The retention task has run since (it erased `old`): what is newer, or in an org without retention, stays.
    t.api.conversation(&t.ben, fresh).await?;
    t.api.conversation(&other, elsewhere).await?;
    assert_eq!(client.set_retention(&t.owner, None).await?.retention_days, None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_replicas_erase_each_expired_conversation_exactly_once() -> anyhow::Result<()> {
    let t = team(options()).await?;
    let s = &t.stack;
    let second = rh_testkit::Service::spawn(
        "api",
        &[
            ("RH_NATS_URL", s.nats.url()),
            ("RH_DATABASE_URL", s.db.url()),
            ("RH_JWT_SECRET", s.jwt_secret()),
            ("RH_API_LISTEN", "127.0.0.1:0"),
            ("RH_ERASE_SETTLE_SECS", "3"),
            ("RH_RETENTION_INTERVAL_SECS", "1"),
        ],
    )
    .await?;
    let marker = format!("SECRET{}", Uuid::new_v4().simple());
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(t.api.create_conversation(&t.owner, &format!("{marker} {i}")).await?);
    }
    let pg = s.db.connect().await?;
    pg.execute("UPDATE conversations SET updated_at = now() - interval '3 days' WHERE id = ANY($1)", &[&ids]).await?;
    // Both replicas' retention passes and erasers race for the same conversations.
    t.api.client().set_retention(&t.owner, Some(2)).await?;
    rh_testkit::eventually(Duration::from_secs(40), "every erase job done", || async {
        let left: i64 = pg
            .query_one("SELECT count(*) FROM erase_jobs WHERE done_at IS NULL OR conversation_id <> ALL($1)", &[&ids])
            .await
            .ok()?
            .get(0);
        let done: i64 =
            pg.query_one("SELECT count(*) FROM erase_jobs WHERE done_at IS NOT NULL", &[]).await.ok()?.get(0);
        (left == 0 && done == ids.len() as i64).then_some(())
    })
    .await?;
    let rows = pg
        .query("SELECT conversation_id, count(*) FROM audit_log WHERE action = 'conversation.erased' GROUP BY 1", &[])
        .await?;
    assert_eq!(rows.len(), ids.len(), "one erasure per conversation");
    assert!(rows.iter().all(|r| r.get::<_, i64>(1) == 1), "each erased exactly once");
    assert_eq!(marker_in_database(&s.db, &marker).await?, vec![]);
    drop(second);
    Ok(())
}
