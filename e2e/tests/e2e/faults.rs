//! Faults on real processes: NATS down during a state change, the outbox relay dying between publish and mark,
//! the api killed during a burst of sends (NATS restarted mid-stream: `transcript_nats_restart.rs`). What each
//! proves is in `docs/delivery.md`.

use crate::helpers::*;
use futures::StreamExt;
use rh_protocol::frame::SidebarAction;
use rh_protocol::{Envelope, Event, ServerFrame, subjects};
use rh_testkit::{StackOptions, WsClient};
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;

/// Every event of `conversation` in `RH_CONV`, with its seq, read by an ordered consumer.
pub async fn stored_events(t: &Team, conversation: Uuid) -> anyhow::Result<Vec<(u64, Envelope)>> {
    let js = async_nats::jetstream::new(t.stack.nats.client().await?);
    let stream = js.get_stream(subjects::STREAM_CONV).await?;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: subjects::conv_all(conversation),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut out = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(1), messages.next()).await {
        let m = m?;
        let info = m.info().map_err(|e| anyhow::anyhow!("{e}"))?;
        out.push((info.stream_sequence, serde_json::from_slice(&m.payload)?));
        if info.pending == 0 {
            break;
        }
    }
    Ok(out)
}

/// Waits until the api's outbox has published every row (none left unpublished).
pub async fn outbox_drained(t: &Team) -> anyhow::Result<()> {
    let pg = t.stack.db.connect().await?;
    rh_testkit::eventually(WAIT, "the outbox to drain", || async {
        let n: i64 = pg.query_one("SELECT count(*) FROM outbox WHERE published_seq IS NULL", &[]).await.ok()?.get(0);
        (n == 0).then_some(())
    })
    .await
}

/// The `participant.removed` events of `user` in the stream, with their seqs.
pub async fn removals(t: &Team, conversation: Uuid, user: Uuid) -> anyhow::Result<Vec<u64>> {
    Ok(stored_events(t, conversation)
        .await?
        .into_iter()
        .filter(|(_, e)| matches!(e.event, Event::ParticipantRemoved { user_id } if user_id == user))
        .map(|(seq, _)| seq)
        .collect())
}

/// Ben's socket, subscribed to `conversation`, with his inbox attached (a pong proves the edge has the socket).
async fn bens_socket(t: &Team, conversation: Uuid) -> anyhow::Result<WsClient> {
    let mut ws = WsClient::connect(&t.stack.ws_url(), &t.ben.token).await?;
    ws.subscribe(conversation, None).await?;
    ws.until(WAIT, |f| matches!(f, ServerFrame::Subscribed { .. })).await?;
    ws.send(&rh_protocol::ClientFrame::Ping).await?;
    ws.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    Ok(ws)
}

/// Reads Ben's socket until both `access_revoked` and the sidebar's `removed` for `conversation` arrived.
async fn until_revoked_and_removed(ws: &mut WsClient, conversation: Uuid) -> anyhow::Result<()> {
    let (mut revoked, mut removed) = (false, false);
    while !(revoked && removed) {
        let (f, _) = ws
            .until(Duration::from_secs(30), |f| {
                matches!(f, ServerFrame::AccessRevoked { conversation_id, .. } if *conversation_id == conversation)
                    || matches!(f, ServerFrame::Sidebar { action: SidebarAction::Removed, conversation_id, .. }
                        if *conversation_id == conversation)
            })
            .await?;
        match f {
            ServerFrame::AccessRevoked { .. } => revoked = true,
            _ => removed = true,
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_made_while_nats_is_down_reaches_the_socket_when_nats_returns() -> anyhow::Result<()> {
    let mut t = team(StackOptions { workers: 0, ..StackOptions::default() }).await?;
    let conv = t.api.create_conversation(&t.owner, "Outage").await?;
    t.api.share(&t.owner, conv, &t.ben, "view").await?;
    let mut ben = bens_socket(&t, conv).await?;

    t.stack.nats.stop().await;
    let (s, body) = t.api.as_user(&t.owner).delete(&format!("/conversations/{conv}/shares/{}", t.ben.user_id)).await?;
    assert_eq!(s.as_u16(), 204, "the revocation is stored while NATS is down: {body}");
    let (s, _) = t.api.as_user(&t.ben).get(&format!("/conversations/{conv}")).await?;
    assert_eq!(s.as_u16(), 404, "and takes effect on the api at once");

    t.stack.nats.restart().await?;
    until_revoked_and_removed(&mut ben, conv).await?;
    outbox_drained(&t).await?;
    assert_eq!(removals(&t, conv, t.ben.user_id).await?.len(), 1, "participant.removed is in the stream once");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_dying_between_publish_and_mark_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let options = StackOptions {
        workers: 0,
        api_env: vec![("RH_OUTBOX_CRASH_AFTER".into(), "participant.removed".into())],
        ..StackOptions::default()
    };
    let mut t = team(options).await?;
    let conv = t.api.create_conversation(&t.owner, "Relay crash").await?;
    t.api.share(&t.owner, conv, &t.ben, "view").await?;
    let mut ben = bens_socket(&t, conv).await?;

    // With NATS down the revocation is stored (204) and waits in the outbox; when NATS returns the relay
    // publishes it and the failpoint aborts the api before the row is marked.
    t.stack.nats.stop().await;
    let (s, body) = t.api.as_user(&t.owner).delete(&format!("/conversations/{conv}/shares/{}", t.ben.user_id)).await?;
    assert_eq!(s.as_u16(), 204, "{body}");
    t.stack.nats.restart().await?;
    let health = format!("{}/healthz", t.stack.api.http_url());
    let http = reqwest::Client::new();
    rh_testkit::eventually(WAIT, "the api to abort at the failpoint", || async {
        http.get(&health).send().await.is_err().then_some(())
    })
    .await?;
    let pg = t.stack.db.connect().await?;
    let unmarked: i64 = pg
        .query_one("SELECT count(*) FROM outbox WHERE kind = 'participant.removed' AND published_seq IS NULL", &[])
        .await?
        .get(0);
    assert_eq!(unmarked, 1, "the crash came between publish and mark");
    let first = removals(&t, conv, t.ben.user_id).await?;
    assert_eq!(first.len(), 1, "published before the crash");

    // A new api (no failpoint) publishes the row again: JetStream stores it once and acks with the first seq.
    t.stack.api = t.stack.spawn_api(&[]).await?;
    outbox_drained(&t).await?;
    assert_eq!(removals(&t, conv, t.ben.user_id).await?, first, "still once in the stream");
    let marked: i64 =
        pg.query_one("SELECT published_seq FROM outbox WHERE kind = 'participant.removed'", &[]).await?.get(0);
    assert_eq!(marked as u64, first[0], "marked with the seq of the copy that was stored");
    until_revoked_and_removed(&mut ben, conv).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_api_during_a_burst_of_sends_loses_no_accepted_message() -> anyhow::Result<()> {
    const SENDERS: usize = 4;
    let mut t = team(StackOptions { api_env: api_env_without_reply_limits(), ..Default::default() }).await?;
    let conv = t.api.create_conversation(&t.owner, "Api crash").await?;
    let pg = t.stack.db.connect().await?;

    // Senders post until their api goes away; each remembers the texts that got a 2xx.
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (api, owner) = (t.api.clone(), t.owner.clone());
        senders.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for i in 0..500 {
                let text = format!("/sim tokens=2 rate=1000\nsender {s} message {i}");
                match api.send_message(&owner, conv, &text).await {
                    Ok(_) => accepted.push(text),
                    Err(_) => break,
                }
            }
            accepted
        }));
    }
    rh_testkit::eventually(WAIT, "part of the burst stored", || async {
        let n: i64 = pg
            .query_one("SELECT count(*) FROM messages WHERE conversation_id = $1 AND role = 'user'", &[&conv])
            .await
            .ok()?
            .get(0);
        (n >= 20).then_some(())
    })
    .await?;
    t.stack.api.kill().await;
    let mut accepted = Vec::new();
    for task in senders {
        accepted.extend(task.await?);
    }
    // The restarted api takes messages again.
    t.stack.api = t.stack.api.respawn().await?;
    let api = t.stack.api();
    for i in 0..5 {
        let text = format!("/sim tokens=2 rate=1000\nafter the restart {i}");
        api.send_message(&t.owner, conv, &text).await?;
        accepted.push(text);
    }
    // At least the 20 stored before the kill, but the replies of those in flight (one per sender) were cut off.
    assert!(accepted.len() >= 20 - SENDERS + 5, "accepted {}", accepted.len());

    // Every accepted message is in the transcript exactly once (ones cut off mid-request may be there too,
    // also once).
    let stored = rh_testkit::eventually(Duration::from_secs(60), "every accepted message stored", || async {
        let rows =
            pg.query("SELECT text FROM messages WHERE conversation_id = $1 AND role = 'user'", &[&conv]).await.ok()?;
        let texts: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let set: HashSet<&String> = texts.iter().collect();
        accepted.iter().all(|a| set.contains(a)).then_some(texts)
    })
    .await?;
    let distinct: HashSet<&String> = stored.iter().collect();
    assert_eq!(distinct.len(), stored.len(), "no message stored twice");
    Ok(())
}

/// `relayhub_api_outbox_published_total` of one api process.
async fn published_by(api: &rh_testkit::Service) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{}/metrics", api.http_url())).await?.text().await?;
    let line = text
        .lines()
        .find(|l| l.starts_with("relayhub_api_outbox_published_total "))
        .ok_or_else(|| anyhow::anyhow!("no outbox metric"))?;
    Ok(line.rsplit(' ').next().unwrap_or_default().parse()?)
}

/// The titles of `conversation.renamed` in the stream, in stream order.
async fn renames(t: &Team, conversation: Uuid) -> anyhow::Result<Vec<String>> {
    Ok(stored_events(t, conversation)
        .await?
        .into_iter()
        .filter_map(|(_, e)| match e.event {
            Event::ConversationRenamed { title, .. } => Some(title),
            _ => None,
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_replicas_publish_each_change_once_in_order_and_survive_the_leaders_death() -> anyhow::Result<()> {
    let mut t = team(StackOptions { workers: 0, ..StackOptions::default() }).await?;
    let mut other = t.stack.spawn_api(&[]).await?;
    let conv = t.api.create_conversation(&t.owner, "Replicas").await?;
    let apis = [t.stack.api(), rh_testkit::Api::new(&other.http_url())];

    // Renames alternate between the replicas: one of them relays all of them, in the order they were made.
    let mut want = Vec::new();
    for i in 0..10 {
        let title = format!("title {i}");
        let (s, body) = apis[i % 2]
            .as_user(&t.owner)
            .patch(&format!("/conversations/{conv}"), serde_json::json!({"title": title}))
            .await?;
        assert!(s.is_success(), "{s} {body}");
        want.push(title);
    }
    outbox_drained(&t).await?;
    assert_eq!(renames(&t, conv).await?, want, "each once, in commit order");

    // The leader dies (SIGKILL); the other replica takes over and relays what is committed from now on.
    let (a, b) = (published_by(&t.stack.api).await?, published_by(&other).await?);
    assert!((a == 0) != (b == 0), "exactly one replica relays: {a} and {b}");
    let survivor = if a > 0 {
        t.stack.api.kill().await;
        rh_testkit::Api::new(&other.http_url())
    } else {
        other.kill().await;
        t.stack.api()
    };
    let mut ben = bens_socket_after_share(&t, &survivor, conv).await?;
    for i in 10..15 {
        let title = format!("title {i}");
        let (s, body) = survivor
            .as_user(&t.owner)
            .patch(&format!("/conversations/{conv}"), serde_json::json!({"title": title}))
            .await?;
        assert!(s.is_success(), "{s} {body}");
        want.push(title);
    }
    ben.until(WAIT, |f| {
        matches!(f, ServerFrame::Event { event, .. }
            if matches!(&event.event, Event::ConversationRenamed { title, .. } if title == "title 14"))
    })
    .await?;
    outbox_drained(&t).await?;
    assert_eq!(renames(&t, conv).await?, want, "each once, in commit order, across the leader's death");
    Ok(())
}

/// Shares `conversation` with Ben through `api` and opens his socket on it.
async fn bens_socket_after_share(t: &Team, api: &rh_testkit::Api, conversation: Uuid) -> anyhow::Result<WsClient> {
    api.share(&t.owner, conversation, &t.ben, "view").await?;
    let mut ws = WsClient::connect(&t.stack.ws_url(), &t.ben.token).await?;
    ws.subscribe(conversation, None).await?;
    ws.until(WAIT, |f| matches!(f, ServerFrame::Subscribed { .. })).await?;
    Ok(ws)
}
