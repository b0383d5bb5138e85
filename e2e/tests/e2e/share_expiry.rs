//! Shares that expire (issue 14): at `expires_at` a share ends exactly like a revoke — the person's live
//! subscription is cut with `access_revoked`, the conversation leaves their sidebar — with nobody acting.

use crate::helpers::*;
use rh_protocol::frame::{RevokeReason, SidebarAction};
use rh_protocol::{ClientFrame, ServerFrame};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_share_ends_like_a_revoke_without_anyone_acting() -> anyhow::Result<()> {
    let t = team(Default::default()).await?;
    let conv = t.api.create_conversation(&t.owner, "For a moment").await?;
    let expires = chrono::Utc::now() + chrono::Duration::seconds(3);
    let body = json!({ "shares": [
        { "user_id": t.ben.user_id, "permission": "respond", "expires_at": expires.to_rfc3339() },
        { "user_id": t.cy.user_id, "permission": "view" },
    ]});
    let (s, list) = t.api.as_user(&t.owner).post(&format!("/conversations/{conv}/shares"), body).await?;
    anyhow::ensure!(s.is_success(), "{s} {list}");
    let ben_share =
        list["shares"].as_array().and_then(|l| l.iter().find(|p| p["user_id"] == t.ben.user_id.to_string()));
    assert!(ben_share.is_some_and(|p| p["expires_at"].is_string()), "the expiry is listed: {list}");

    // Ben follows the conversation until his share ends; Cy's share has no end.
    let mut ben = Viewer::join(&t.stack.ws_url(), &t.ben, conv, None).await?;
    let mut cy = Viewer::join(&t.stack.ws_url(), &t.cy, conv, None).await?;
    let (f, before) = ben.ws.until(Duration::from_secs(10), |f| matches!(f, ServerFrame::AccessRevoked { .. })).await?;
    assert_eq!(f, ServerFrame::AccessRevoked { conversation_id: conv, reason: Some(RevokeReason::Removed) });
    assert!(chrono::Utc::now() >= expires, "not before expires_at");
    // The sidebar's `removed` comes on another path (the inbox): before or after the revoke.
    let removed = |f: &ServerFrame| matches!(f, ServerFrame::Sidebar { action: SidebarAction::Removed, conversation_id, .. } if *conversation_id == conv);
    if !before.iter().any(removed) {
        ben.ws.until(WAIT, removed).await?;
    }

    // Everywhere else it is gone too: history, the sidebar list, sending, subscribing again.
    let (s, _) = t.api.as_user(&t.ben).get(&format!("/conversations/{conv}")).await?;
    assert_eq!(s.as_u16(), 404);
    let (_, list) = t.api.as_user(&t.ben).get("/conversations").await?;
    assert!(!list.to_string().contains(&conv.to_string()), "{list}");
    let (s, _) = t.api.as_user(&t.ben).post(&format!("/conversations/{conv}/messages"), json!({"text": "hi"})).await?;
    assert_eq!(s.as_u16(), 404);
    ben.ws
        .send(&ClientFrame::Subscribe { conversation_id: conv, after_seq: None, compact: false, grant: None })
        .await?;
    let (f, _) =
        ben.ws.until(WAIT, |f| matches!(f, ServerFrame::Error { .. } | ServerFrame::Subscribed { .. })).await?;
    assert!(matches!(&f, ServerFrame::Error { code, .. } if code == "not_found"), "{f:?}");

    // Everyone watching saw him leave, as after a revoke; Cy still has access.
    cy.until_event(
        |s| matches!(s.event.event, rh_protocol::Event::ParticipantRemoved { user_id } if user_id == t.ben.user_id),
    )
    .await?;
    let v = t.api.conversation(&t.cy, conv).await?;
    assert_eq!(v["participants"].as_array().map(Vec::len), Some(1), "{v}");
    Ok(())
}
