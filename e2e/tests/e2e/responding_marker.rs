//! The sidebar's "responding…" marker (issue 14): every participant's sidebar learns, on its socket and with no
//! polling, that a conversation is answering, and that it stopped answering — completed, stopped, or finished by
//! another worker after a crash. Nobody else hears of it.

use crate::helpers::*;
use rh_protocol::frame::SidebarAction;
use rh_protocol::{ClientFrame, ServerFrame};
use rh_testkit::{Session, WsClient};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// A socket with its sidebar attached (a pong proves it), subscribed to nothing.
async fn sidebar_socket(ws_url: &str, who: &Session) -> anyhow::Result<WsClient> {
    let mut ws = WsClient::connect(ws_url, &who.token).await?;
    ws.send(&ClientFrame::Ping).await?;
    ws.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    Ok(ws)
}

/// Reads until the sidebar says `conversation` is (or is not) responding.
async fn until_marker(ws: &mut WsClient, conversation: Uuid, responding: bool) -> anyhow::Result<()> {
    ws.until(WAIT, |f| {
        matches!(f, ServerFrame::Sidebar { action: SidebarAction::Activity, conversation_id, responding: Some(r), .. }
            if *conversation_id == conversation && *r == responding)
    })
    .await?;
    Ok(())
}

/// `responding` of `conversation` in `who`'s `GET /conversations`.
async fn listed_responding(t: &Team, who: &Session, conversation: Uuid) -> anyhow::Result<Option<bool>> {
    let (status, list) = t.api.as_user(who).get("/conversations").await?;
    anyhow::ensure!(status.is_success(), "{status} {list}");
    let entry = list["conversations"].as_array().and_then(|l| l.iter().find(|c| c["id"] == conversation.to_string()));
    Ok(entry.and_then(|c| c["responding"].as_bool()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_participant_sees_the_marker_come_and_go_and_nobody_else_does() -> anyhow::Result<()> {
    let t = team(Default::default()).await?;
    let dee =
        t.api.add_member(&t.owner, "Dee Gone", &format!("dee-{}@acme.test", Uuid::new_v4()), "pw-dee-123456").await?;
    let gil =
        t.api.sign_up("Globex", "Gil Other", &format!("gil-{}@globex.test", Uuid::new_v4()), "pw-gil-123456").await?;
    let conv = shared(&t, "Marker").await?;
    t.api.share(&t.owner, conv, &dee, "respond").await?;
    let (s, body) = t.api.as_user(&t.owner).delete(&format!("/conversations/{conv}/shares/{}", dee.user_id)).await?;
    anyhow::ensure!(s.is_success(), "revoke: {s} {body}");

    let ws = t.stack.ws_url();
    let mut participants = Vec::new();
    for who in [&t.owner, &t.ben, &t.cy] {
        participants.push(sidebar_socket(&ws, who).await?);
    }
    let mut refused = [sidebar_socket(&ws, &dee).await?, sidebar_socket(&ws, &gil).await?];

    // A long answer: everyone's sidebar marks it, and the list says so after a reload; then Ben stops it.
    let reply = t.api.send_message(&t.ben, conv, "/sim tokens=400 rate=40\nA long one").await?;
    let rid = response_id(&reply)?;
    for p in participants.iter_mut() {
        until_marker(p, conv, true).await?;
    }
    assert_eq!(listed_responding(&t, &t.cy, conv).await?, Some(true), "Cy's reloaded sidebar");
    let (s, body) =
        t.api.as_user(&t.ben).post(&format!("/conversations/{conv}/stop"), json!({ "response_id": rid })).await?;
    anyhow::ensure!(s.is_success(), "stop: {s} {body}");
    for p in participants.iter_mut() {
        until_marker(p, conv, false).await?;
    }
    assert_eq!(listed_responding(&t, &t.cy, conv).await?, Some(false));

    // An answer that completes (long enough that its start and end reach the audit writer apart): on, then off.
    t.api.send_message(&t.owner, conv, "/sim tokens=60 rate=20\nNot so short").await?;
    for p in participants.iter_mut() {
        until_marker(p, conv, true).await?;
        until_marker(p, conv, false).await?;
    }
    assert_eq!(listed_responding(&t, &t.owner, conv).await?, Some(false));

    // The revoked person and the other org heard nothing of it (Dee may still get her own revoke's `removed`).
    for r in refused.iter_mut() {
        r.send(&ClientFrame::Ping).await?;
        let (_, before) = r.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
        assert!(
            !before.iter().any(|f| matches!(f, ServerFrame::Sidebar { action: SidebarAction::Activity, .. })),
            "{before:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marker_stays_through_a_worker_crash_and_clears_when_the_retry_ends() -> anyhow::Result<()> {
    let mut t = team(sim_env(&[("RH_JOB_ACK_WAIT_SECS", "2")])).await?;
    let conv = shared(&t, "Crash marker").await?;
    let h = history_seq(&t.api, &t.owner, conv).await?;
    let mut v = Viewer::join(&t.stack.ws_url(), &t.owner, conv, Some(h)).await?;
    let mut cy = sidebar_socket(&t.stack.ws_url(), &t.cy).await?;
    let rid = response_id(&t.api.send_message(&t.owner, conv, "/sim tokens=150 rate=50\nexplain").await?)?;
    until_marker(&mut cy, conv, true).await?;

    v.until_deltas(rid, 15).await?;
    t.stack.workers[0].kill().await;
    // No worker: the answer is still owed, so the marker stays.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(listed_responding(&t, &t.cy, conv).await?, Some(true));
    let replacement = t.stack.spawn_worker().await?;
    t.stack.workers.push(replacement);

    v.until_response_end(rid).await?;
    let (_, before) = cy
        .until(WAIT, |f| {
            matches!(f, ServerFrame::Sidebar { action: SidebarAction::Activity, responding: Some(false), .. })
        })
        .await?;
    assert!(
        !before.iter().any(|f| matches!(f, ServerFrame::Sidebar { responding: Some(false), .. })),
        "cleared only once the retry ended: {before:?}"
    );
    assert_eq!(listed_responding(&t, &t.cy, conv).await?, Some(false));
    Ok(())
}

/// A conversation of the team's owner that Ben can respond in and Cy can view.
async fn shared(t: &Team, title: &str) -> anyhow::Result<Uuid> {
    let conv = t.api.create_conversation(&t.owner, title).await?;
    t.api.share(&t.owner, conv, &t.ben, "respond").await?;
    t.api.share(&t.owner, conv, &t.cy, "view").await?;
    Ok(conv)
}
