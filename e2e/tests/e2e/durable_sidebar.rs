//! Issue 10's leftovers on real processes: a sidebar message sent while NATS was down reaches an open sidebar
//! when NATS returns, and an outbox row retried after JetStream's duplicate window is still stored once. What each
//! proves is in `docs/delivery.md`.

use crate::faults::{outbox_drained, removals};
use crate::helpers::*;
use rh_protocol::ServerFrame;
use rh_protocol::frame::SidebarAction;
use rh_testkit::{StackOptions, WsClient};
use std::time::Duration;

/// Ben's socket, open and known to the edge (a pong), following no conversation: only his sidebar.
async fn bens_sidebar(t: &Team) -> anyhow::Result<WsClient> {
    let mut ws = WsClient::connect(&t.stack.ws_url(), &t.ben.token).await?;
    ws.send(&rh_protocol::ClientFrame::Ping).await?;
    ws.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    Ok(ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_made_while_nats_is_down_reaches_the_open_sidebar_once_when_nats_returns() -> anyhow::Result<()> {
    let mut t = team(StackOptions { workers: 0, ..StackOptions::default() }).await?;
    let conv = t.api.create_conversation(&t.owner, "Shared in the dark").await?;
    let mut ben = bens_sidebar(&t).await?;

    t.stack.nats.stop().await;
    t.api.share(&t.owner, conv, &t.ben, "view").await?;
    t.stack.nats.restart().await?;

    let added = |f: &ServerFrame| matches!(f, ServerFrame::Sidebar { action: SidebarAction::Added, conversation_id, .. } if *conversation_id == conv);
    let (frame, _) = ben.until(Duration::from_secs(30), added).await?;
    let ServerFrame::Sidebar { conversation: Some(summary), .. } = frame else { anyhow::bail!("{frame:?}") };
    assert_eq!(summary.title, "Shared in the dark");
    outbox_drained(&t).await?;
    // Once: nothing more about it arrives (a later ping is answered first).
    ben.send(&rh_protocol::ClientFrame::Ping).await?;
    let (next, _) = ben.until(WAIT, |f| added(f) || matches!(f, ServerFrame::Pong)).await?;
    assert!(matches!(next, ServerFrame::Pong), "the share reached the sidebar twice: {next:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_published_before_a_crash_longer_than_the_duplicate_window_is_stored_once() -> anyhow::Result<()> {
    // A 1 s duplicate window stands for the 120 s one: the api stays down longer than it.
    let options = StackOptions {
        workers: 0,
        api_env: vec![("RH_OUTBOX_CRASH_AFTER".into(), "participant.removed".into())],
        topology: rh_bus::Topology { duplicate_window: Duration::from_secs(1), ..rh_bus::Topology::default() },
        ..StackOptions::default()
    };
    let mut t = team(options).await?;
    let conv = t.api.create_conversation(&t.owner, "Long crash").await?;
    t.api.share(&t.owner, conv, &t.ben, "view").await?;

    // The revocation is stored (204) while NATS is down, so the failpoint cannot abort the api before it answers;
    // when NATS returns the relay publishes it and the failpoint aborts the api before the row is marked.
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
    let first = removals(&t, conv, t.ben.user_id).await?;
    assert_eq!(first.len(), 1, "published before the crash");

    // Down for longer than the window: JetStream no longer knows the id. The new api finds the copy instead.
    tokio::time::sleep(Duration::from_secs(3)).await;
    t.stack.api = t.stack.spawn_api(&[]).await?;
    outbox_drained(&t).await?;
    assert_eq!(removals(&t, conv, t.ben.user_id).await?, first, "still once in the stream");
    let pg = t.stack.db.connect().await?;
    let marked: i64 =
        pg.query_one("SELECT published_seq FROM outbox WHERE kind = 'participant.removed'", &[]).await?.get(0);
    assert_eq!(marked as u64, first[0], "marked with the seq of the copy that was stored");
    // At least the revocation was found, not published again; the share's rows are too when the relay had not
    // marked them yet (they go out in the same round as the revocation on a busy machine).
    let metrics = reqwest::get(format!("{}/metrics", t.stack.api.http_url())).await?.text().await?;
    let found = metrics.lines().find(|l| l.starts_with("relayhub_api_outbox_found_in_stream_total"));
    let count: f64 = found.and_then(|l| l.split_whitespace().nth(1)).and_then(|n| n.parse().ok()).unwrap_or(0.0);
    assert!(count >= 1.0, "{found:?}");
    Ok(())
}

/// `?sidebar=off` (a program following conversations): Ben's quiet socket gets no sidebar frame when a
/// conversation is shared with him, while his ordinary socket does; a removal still ends the quiet socket's
/// subscription; and a value other than on/off is refused before the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_opened_with_sidebar_off_gets_no_sidebar_frames_but_is_still_revoked() -> anyhow::Result<()> {
    let t = team(StackOptions { workers: 0, ..StackOptions::default() }).await?;
    let followed = t.api.create_conversation(&t.owner, "Followed by a program").await?;
    t.api.share(&t.owner, followed, &t.ben, "view").await?;
    let quiet_url = format!("{}?sidebar=off", t.stack.ws_url());
    let mut quiet = Viewer::join(&quiet_url, &t.ben, followed, None).await?;
    let mut tab = bens_sidebar(&t).await?;

    let other = t.api.create_conversation(&t.owner, "Shared later").await?;
    t.api.share(&t.owner, other, &t.ben, "view").await?;
    let added = |f: &ServerFrame| matches!(f, ServerFrame::Sidebar { action: SidebarAction::Added, conversation_id, .. } if *conversation_id == other);
    tab.until(WAIT, added).await?;
    // The removal comes after the share on Ben's inbox: the quiet socket sees the revocation, never the share.
    let (s, body) =
        t.api.as_user(&t.owner).delete(&format!("/conversations/{followed}/shares/{}", t.ben.user_id)).await?;
    assert_eq!(s.as_u16(), 204, "{body}");
    let revoked = quiet
        .until_frame(|f| {
            assert!(!matches!(f, ServerFrame::Sidebar { .. }), "a sidebar frame on a sidebar=off socket: {f:?}");
            matches!(f, ServerFrame::AccessRevoked { conversation_id, .. } if *conversation_id == followed)
        })
        .await?;
    assert!(matches!(revoked, ServerFrame::AccessRevoked { .. }));

    let bad = format!("{}?sidebar=maybe", t.stack.ws_url());
    assert_eq!(WsClient::upgrade_status(&bad, Some(&t.ben.token)).await?, 400);
    Ok(())
}
