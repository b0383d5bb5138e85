//! The history's signed subscribe grant (`GET /conversations/{id}` → `grant`, `subscribe {grant}`): the edge takes
//! it without asking the api, and it never outlives access — tested from the side of the person who lost it.

use crate::helpers::*;
use rh_auth::{Secret, SubscribeGrant, TokenKeys};
use rh_protocol::frame::RevokeReason;
use rh_protocol::{ClientFrame, Event, Permission, ServerFrame};
use rh_testkit::{Session, StackOptions, WsClient};
use std::time::Duration;
use uuid::Uuid;

/// The edge's counter of subscribes it granted from a signed grant.
async fn signed_grants(t: &Team) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("http://{}/metrics", t.stack.edges[0].addr())).await?.text().await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("relayhub_edge_signed_grants_total ")?.trim().parse().ok())
        .unwrap_or(0.0))
}

/// `(seq, grant)` of the person's history request.
async fn history(t: &Team, who: &Session, conv: Uuid) -> anyhow::Result<(u64, String)> {
    let v = t.api.conversation(who, conv).await?;
    let seq = v["seq"].as_u64().ok_or_else(|| anyhow::anyhow!("no seq: {v}"))?;
    let grant = v["grant"].as_str().ok_or_else(|| anyhow::anyhow!("no grant: {v}"))?.to_owned();
    Ok((seq, grant))
}

/// A new socket of `who` subscribing with `grant`; returns the first `subscribed`/`error` frame and the socket.
async fn subscribe(
    t: &Team,
    who: &Session,
    conv: Uuid,
    after_seq: Option<u64>,
    grant: &str,
) -> anyhow::Result<(ServerFrame, WsClient)> {
    let mut ws = WsClient::connect(&t.stack.ws_url(), &who.token).await?;
    ws.send(&ClientFrame::Subscribe { conversation_id: conv, after_seq, compact: true, grant: Some(grant.into()) })
        .await?;
    let (f, _) = ws.until(WAIT, |f| matches!(f, ServerFrame::Subscribed { .. } | ServerFrame::Error { .. })).await?;
    Ok((f, ws))
}

fn is_not_found(f: &ServerFrame) -> bool {
    matches!(f, ServerFrame::Error { code, .. } if code == "not_found")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_spares_the_access_check_for_its_person_and_conversation_only() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let conv = t.api.create_conversation(&t.owner, "Granted").await?;
    let other = t.api.create_conversation(&t.owner, "Not shared").await?;
    t.api.share(&t.owner, conv, &t.ben, "view").await?;
    let rid = response_id(&t.api.send_message(&t.owner, conv, "/sim tokens=5 rate=500\nhi").await?)?;
    stored_response(&t.api, &t.owner, conv, rid).await?;

    let (seq, grant) = history(&t, &t.ben, conv).await?;
    let before = signed_grants(&t).await?;
    let (f, _ben) = subscribe(&t, &t.ben, conv, Some(seq), &grant).await?;
    assert!(matches!(f, ServerFrame::Subscribed { permission: Permission::View, seq: s, .. } if s == seq), "{f:?}");
    assert_eq!(signed_grants(&t).await?, before + 1.0, "the edge took the grant without asking the api");

    // Ben's grant is Ben's, for that conversation: Cy (never shared) and Ben on another conversation are refused.
    let (f, _) = subscribe(&t, &t.cy, conv, Some(seq), &grant).await?;
    assert!(is_not_found(&f), "someone else's grant: {f:?}");
    let (f, _) = subscribe(&t, &t.ben, other, Some(seq), &grant).await?;
    assert!(is_not_found(&f), "a grant for another conversation: {f:?}");
    // Forged (another key) and expired grants are refused for Cy too.
    let forged = TokenKeys::new(&Secret::new("x".repeat(40))).issue_grant(&SubscribeGrant::new(
        t.cy.user_id,
        conv,
        Permission::Owner,
        seq,
    ))?;
    let (f, _) = subscribe(&t, &t.cy, conv, Some(seq), &forged).await?;
    assert!(is_not_found(&f), "forged grant: {f:?}");
    let keys = TokenKeys::new(&Secret::new(t.stack.jwt_secret()));
    let mut old = SubscribeGrant::new(t.ben.user_id, other, Permission::View, seq);
    old.exp = 1_000_000;
    let (f, _) = subscribe(&t, &t.ben, other, Some(seq), &keys.issue_grant(&old)?).await?;
    assert!(is_not_found(&f), "expired grant: {f:?}");
    assert_eq!(signed_grants(&t).await?, before + 1.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_taken_before_a_removal_ends_in_access_revoked_with_nothing_after_it() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let conv = t.api.create_conversation(&t.owner, "Leaving").await?;
    t.api.share(&t.owner, conv, &t.ben, "respond").await?;
    let (seq, grant) = history(&t, &t.ben, conv).await?;

    // Ben is removed after loading the history, and the conversation goes on without him.
    let (s, _) = t.api.as_user(&t.owner).delete(&format!("/conversations/{conv}/shares/{}", t.ben.user_id)).await?;
    assert!(s.is_success());
    let rid = response_id(&t.api.send_message(&t.owner, conv, "/sim tokens=5 rate=500\nsecret plan").await?)?;
    stored_response(&t.api, &t.owner, conv, rid).await?;
    let (s, body) = t.api.as_user(&t.ben).get(&format!("/conversations/{conv}")).await?;
    assert_eq!(s.as_u16(), 404, "no history (and no new grant) after the removal: {body}");

    // His earlier grant still subscribes him, but the replay carries the removal: access_revoked, and none of
    // what was said after it.
    let (f, mut ws) = subscribe(&t, &t.ben, conv, Some(seq), &grant).await?;
    assert!(matches!(f, ServerFrame::Subscribed { .. }), "{f:?}");
    let (_, before) =
        ws.until(WAIT, |f| matches!(f, ServerFrame::AccessRevoked { reason: Some(RevokeReason::Removed), .. })).await?;
    let after = ws.until(Duration::from_millis(700), |f| matches!(f, ServerFrame::Event { .. })).await;
    assert!(after.is_err(), "an event after access_revoked: {after:?}");
    // What he may see is what he had access to: the conversation's setup (it may reach the stream after the
    // history's position), up to his removal; nothing after it, and none of the answer given after it.
    let events: Vec<&Event> = before
        .iter()
        .filter_map(|f| if let ServerFrame::Event { event, .. } = f { Some(&event.event) } else { None })
        .collect();
    let removal =
        events.iter().position(|e| matches!(e, Event::ParticipantRemoved { user_id } if *user_id == t.ben.user_id));
    assert_eq!(removal, events.len().checked_sub(1), "the removal is the last event he gets: {events:?}");
    assert!(
        !events.iter().any(|e| e.kind().starts_with("message.") || e.kind().starts_with("response.")),
        "the removed person saw what was said after: {events:?}"
    );

    // A grant does not reach past its position: subscribing after the removal asks the api, which refuses.
    let (f, _) = subscribe(&t, &t.ben, conv, Some(seq + 1_000), &grant).await?;
    assert!(is_not_found(&f), "after_seq past the grant: {f:?}");
    Ok(())
}
