//! Permissions over the socket, tested from the side of the person who must be refused, plus live access
//! changes: upgrades take effect on open sockets, revocation ends a live stream within a second, sidebars follow.
//! (The full REST matrix lives in the api's own tests.)

use crate::helpers::*;
use rh_protocol::frame::{RevokeReason, SidebarAction};
use rh_protocol::{ClientFrame, Permission, ServerFrame};
use rh_testkit::{StackOptions, WsClient};
use serde_json::json;
use std::time::{Duration, Instant};

/// Sends a message over the viewer's socket and returns the reply to it (recording any event that arrives first).
async fn send_over_socket(viewer: &mut Viewer, conv: uuid::Uuid, id: &str) -> anyhow::Result<ServerFrame> {
    viewer
        .ws
        .send(&ClientFrame::SendMessage {
            conversation_id: conv,
            text: "/sim tokens=3 rate=500\nhi".into(),
            client_msg_id: id.into(),
            edit_of: None,
        })
        .await?;
    viewer
        .until_frame(|f| match f {
            ServerFrame::Error { reference, .. } => reference.as_deref() == Some(id),
            ServerFrame::MessageAccepted { client_msg_id, .. } => client_msg_id == id,
            _ => false,
        })
        .await
}

fn is_forbidden(f: &ServerFrame) -> bool {
    matches!(f, ServerFrame::Error { code, .. } if code == "forbidden")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_only_is_refused_on_the_socket_until_upgraded() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let conv = t.api.create_conversation(&t.owner, "Review").await?;
    t.api.share(&t.owner, conv, &t.ben, "view").await?;

    let mut ben = Viewer::join(&t.stack.ws_url(), &t.ben, conv, None).await?;
    let f = send_over_socket(&mut ben, conv, "m1").await?;
    assert!(is_forbidden(&f), "view only cannot send: {f:?}");
    ben.ws.send(&ClientFrame::Stop { conversation_id: conv, response_id: None }).await?;
    let f = ben.until_frame(|f| matches!(f, ServerFrame::Error { .. })).await?;
    assert!(is_forbidden(&f), "view only cannot stop: {f:?}");

    // Cy, a teammate it was never shared with, cannot even subscribe.
    let mut cy = WsClient::connect(&t.stack.ws_url(), &t.cy.token).await?;
    cy.subscribe(conv, None).await?;
    let (f, _) = cy.until(WAIT, |f| matches!(f, ServerFrame::Error { .. } | ServerFrame::Subscribed { .. })).await?;
    assert!(matches!(&f, ServerFrame::Error { code, .. } if code == "not_found"), "{f:?}");

    // The owner upgrades Ben: his open socket is told at once, and sending now works.
    let (s, body) = t
        .api
        .as_user(&t.owner)
        .patch(&format!("/conversations/{conv}/shares/{}", t.ben.user_id), json!({"permission": "respond"}))
        .await?;
    assert!(s.is_success(), "{s} {body}");
    let f = ben.until_frame(|f| matches!(f, ServerFrame::PermissionChanged { .. })).await?;
    assert!(matches!(f, ServerFrame::PermissionChanged { permission: Permission::Respond, .. }));
    let f = send_over_socket(&mut ben, conv, "m2").await?;
    let ServerFrame::MessageAccepted { response_id, .. } = f else { anyhow::bail!("upgraded send refused: {f:?}") };
    ben.until_response_end(response_id).await?;
    check_response(&ben.seen, response_id)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_viewer_stops_within_a_second_while_others_keep_streaming() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let conv = t.api.create_conversation(&t.owner, "Sensitive").await?;
    t.api.share(&t.owner, conv, &t.ben, "view").await?;
    t.api.share(&t.owner, conv, &t.cy, "respond").await?;
    let ws = t.stack.ws_url();
    let mut ben = Viewer::join(&ws, &t.ben, conv, None).await?;
    let mut cy = Viewer::join(&ws, &t.cy, conv, None).await?;

    // Cy's message stays in history after Ben is revoked; the response streams for a few seconds.
    let rid = response_id(&t.api.send_message(&t.cy, conv, "/sim tokens=150 rate=50\nplan").await?)?;
    ben.until_deltas(rid, 5).await?;

    let t0 = Instant::now();
    let (s, _) = t.api.as_user(&t.owner).delete(&format!("/conversations/{conv}/shares/{}", t.ben.user_id)).await?;
    assert!(s.is_success());
    let (_, _) = ben
        .ws
        .until(
            Duration::from_secs(2),
            |f| matches!(f, ServerFrame::AccessRevoked { conversation_id, reason: Some(RevokeReason::Removed) } if *conversation_id == conv),
        )
        .await?;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");

    // Nothing more of that conversation reaches Ben, while Cy's stream completes.
    let quiet = tokio::time::timeout(Duration::from_millis(700), async {
        loop {
            match ben.ws.next_frame(Duration::from_secs(5)).await {
                Ok(ServerFrame::Event { conversation_id, .. }) if conversation_id == conv => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    })
    .await;
    assert!(!matches!(quiet, Ok(true)), "an event reached the revoked viewer");
    cy.until_response_end(rid).await?;
    check_response(&cy.seen, rid)?;

    // Ben's REST access is gone and he cannot subscribe again; Cy's message stays in history.
    let (s, _) = t.api.as_user(&t.ben).get(&format!("/conversations/{conv}")).await?;
    assert_eq!(s.as_u16(), 404);
    ben.ws.subscribe(conv, None).await?;
    let (f, _) =
        ben.ws.until(WAIT, |f| matches!(f, ServerFrame::Error { .. } | ServerFrame::Subscribed { .. })).await?;
    assert!(matches!(&f, ServerFrame::Error { code, .. } if code == "not_found"), "{f:?}");
    stored_response(&t.api, &t.owner, conv, rid).await?;
    let v = t.api.conversation(&t.owner, conv).await?;
    assert!(v["messages"].as_array().into_iter().flatten().any(|m| m["author_id"] == t.cy.user_id.to_string()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidebar_frames_follow_share_change_revoke_and_delete() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let mut ben = WsClient::connect(&t.stack.ws_url(), &t.ben.token).await?;
    // Give the edge a moment to attach Ben's inbox before the first share.
    ben.send(&ClientFrame::Ping).await?;
    ben.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;

    let conv = t.api.create_conversation(&t.owner, "Roadmap").await?;
    let sidebar = |want: SidebarAction| move |f: &ServerFrame| matches!(f, ServerFrame::Sidebar { action, conversation_id, .. } if *action == want && *conversation_id == conv);

    t.api.share(&t.owner, conv, &t.ben, "view").await?;
    let (f, _) = ben.until(WAIT, sidebar(SidebarAction::Added)).await?;
    let ServerFrame::Sidebar { conversation: Some(summary), .. } = f else { anyhow::bail!("no summary") };
    assert_eq!(summary.title, "Roadmap");
    assert_eq!(summary.permission, Permission::View);
    assert!(summary.shared);

    let (s, _) = t
        .api
        .as_user(&t.owner)
        .patch(&format!("/conversations/{conv}/shares/{}", t.ben.user_id), json!({"permission": "respond"}))
        .await?;
    assert!(s.is_success());
    let (f, _) = ben.until(WAIT, sidebar(SidebarAction::Changed)).await?;
    assert!(matches!(f, ServerFrame::Sidebar { conversation: Some(ref c), .. } if c.permission == Permission::Respond));

    let (s, _) = t.api.as_user(&t.owner).delete(&format!("/conversations/{conv}/shares/{}", t.ben.user_id)).await?;
    assert!(s.is_success());
    ben.until(WAIT, sidebar(SidebarAction::Removed)).await?;
    let (_, list) = t.api.as_user(&t.ben).get("/conversations").await?;
    assert!(!list.to_string().contains(&conv.to_string()), "gone from Ben's sidebar over REST too");

    // Deleting removes it from every participant's sidebar, live.
    t.api.share(&t.owner, conv, &t.ben, "view").await?;
    ben.until(WAIT, sidebar(SidebarAction::Added)).await?;
    let (s, _) = t.api.as_user(&t.owner).delete(&format!("/conversations/{conv}")).await?;
    assert!(s.is_success());
    ben.until(WAIT, sidebar(SidebarAction::Deleted)).await?;
    let (s, _) = t.api.as_user(&t.owner).get(&format!("/conversations/{conv}")).await?;
    assert_eq!(s.as_u16(), 404, "deleted for the owner too");
    Ok(())
}
