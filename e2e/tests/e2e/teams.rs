//! Teams (issue 15): joining or leaving a team gains or loses access live, exactly as a personal share does (the
//! sidebar frame, `access_revoked` within a second, presence); with a personal and a team share the higher wins and
//! removing one leaves the other; everything is in the audit log without content; removed members disappear from
//! team lists and search while their messages stay; and what is refused, from the refused side.

use crate::helpers::*;
use reqwest::StatusCode;
use rh_protocol::frame::{RevokeReason, SidebarAction};
use rh_protocol::{ClientFrame, Permission, ServerFrame};
use rh_testkit::{StackOptions, WsClient};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn sidebar(conv: Uuid, want: SidebarAction) -> impl FnMut(&ServerFrame) -> bool {
    move |f| matches!(f, ServerFrame::Sidebar { action, conversation_id, .. } if *action == want && *conversation_id == conv)
}

fn permission_changed(conv: Uuid, want: Permission) -> impl FnMut(&ServerFrame) -> bool {
    move |f| matches!(f, ServerFrame::PermissionChanged { conversation_id, permission } if *conversation_id == conv && *permission == want)
}

async fn permission_over_rest(t: &Team, who: &rh_testkit::Session, conv: Uuid) -> anyhow::Result<serde_json::Value> {
    let (s, v) = t.api.as_user(who).get(&format!("/conversations/{conv}")).await?;
    Ok(if s.is_success() { v["permission"].clone() } else { json!(s.as_u16()) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_and_leaving_a_team_gains_and_loses_access_live() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let (admin, client) = (&t.owner, t.api.client());
    let design = client.create_team(admin, "Design").await?.id;
    client.add_team_members(admin, design, &[t.cy.user_id]).await?;
    let conv = t.api.create_conversation(admin, "Brand refresh").await?;
    let shared = client.share_with_team(admin, conv, design, "view").await?;
    assert_eq!(shared.teams.len(), 1);
    assert_eq!((shared.teams[0].members, shared.teams[0].permission), (1, Permission::View));
    assert_eq!(permission_over_rest(&t, &t.ben, conv).await?, json!(404), "Ben is in no team yet");

    // Ben's open socket learns of the conversation when he joins the team.
    let mut ben_ws = WsClient::connect(&t.stack.ws_url(), &t.ben.token).await?;
    ben_ws.send(&ClientFrame::Ping).await?;
    ben_ws.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    client.add_team_members(admin, design, &[t.ben.user_id]).await?;
    let (f, _) = ben_ws.until(WAIT, sidebar(conv, SidebarAction::Added)).await?;
    let ServerFrame::Sidebar { conversation: Some(entry), .. } = f else { anyhow::bail!("no sidebar entry: {f:?}") };
    assert_eq!((entry.permission, entry.title.as_str()), (Permission::View, "Brand refresh"));
    let (_, list) = t.api.as_user(&t.ben).get("/conversations").await?;
    assert!(list.to_string().contains(&conv.to_string()), "in Ben's sidebar over REST: {list}");

    // He watches; Ada sees him in presence.
    let ws = t.stack.ws_url();
    let mut ada = Viewer::join(&ws, admin, conv, None).await?;
    let mut ben = Viewer::join(&ws, &t.ben, conv, None).await?;
    let want: BTreeSet<_> = [admin.user_id, t.ben.user_id].into_iter().collect();
    ada.until_frame(|f| matches!(f, ServerFrame::Presence { viewers, .. } if viewers.iter().map(|p| p.user_id).collect::<BTreeSet<_>>() == want)).await?;

    // The team may respond now: on his open socket at once.
    client.share_with_team(admin, conv, design, "respond").await?;
    ben.until_frame(permission_changed(conv, Permission::Respond)).await?;

    // A personal View share under the team's Can Respond: the higher wins, nothing changes.
    t.api.share(admin, conv, &t.ben, "view").await?;
    assert_eq!(permission_over_rest(&t, &t.ben, conv).await?, json!("respond"));
    // Leaving the team leaves the personal share: View Only, not revoked.
    client.remove_team_member(admin, design, t.ben.user_id).await?;
    ben.until_frame(permission_changed(conv, Permission::View)).await?;
    assert_eq!(permission_over_rest(&t, &t.ben, conv).await?, json!("view"));
    // Back in the team, and the personal share removed: the team's Can Respond stays.
    client.add_team_members(admin, design, &[t.ben.user_id]).await?;
    ben.until_frame(permission_changed(conv, Permission::Respond)).await?;
    let (s, v) = t.api.as_user(admin).delete(&format!("/conversations/{conv}/shares/{}", t.ben.user_id)).await?;
    assert!(s.is_success(), "{s} {v}");
    assert_eq!(permission_over_rest(&t, &t.ben, conv).await?, json!("respond"));

    // Leaving the team while an answer streams: access_revoked within a second, out of the sidebar and presence.
    let rid = response_id(&t.api.send_message(admin, conv, "/sim tokens=150 rate=50\nmood board").await?)?;
    ben.until_deltas(rid, 3).await?;
    let t0 = Instant::now();
    client.remove_team_member(admin, design, t.ben.user_id).await?;
    ben.ws
        .until(Duration::from_secs(2), |f| {
            matches!(f, ServerFrame::AccessRevoked { conversation_id, reason: Some(RevokeReason::Removed) } if *conversation_id == conv)
        })
        .await?;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    ben_ws.until(WAIT, sidebar(conv, SidebarAction::Removed)).await?;
    let only_ada: BTreeSet<_> = [admin.user_id].into_iter().collect();
    ada.until_frame(|f| matches!(f, ServerFrame::Presence { viewers, .. } if viewers.iter().map(|p| p.user_id).collect::<BTreeSet<_>>() == only_ada)).await?;
    assert_eq!(permission_over_rest(&t, &t.ben, conv).await?, json!(404));
    ada.until_response_end(rid).await?;

    // Everything is in the audit log, without content.
    let audit = rh_testkit::eventually(WAIT, "team changes in the audit log", || async {
        let (s, v) = t.api.as_user(admin).get("/admin/audit").await.ok()?;
        let text = v.to_string();
        let all = ["team.created", "team.member_added", "team.member_removed", "team_share.set", "participant.removed"];
        (s.is_success() && all.iter().all(|a| text.contains(a))).then_some(text)
    })
    .await?;
    assert!(!audit.contains("mood board"), "no content in the audit log: {audit}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_members_leave_team_lists_and_search_but_their_messages_stay() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let (admin, client) = (&t.owner, t.api.client());
    let ops = client.create_team(admin, "Ops").await?.id;
    client.add_team_members(admin, ops, &[t.ben.user_id, t.cy.user_id]).await?;
    let conv = t.api.create_conversation(admin, "Runbook").await?;
    client.share_with_team(admin, conv, ops, "respond").await?;
    t.api.send_message(&t.cy, conv, "/sim tokens=2 rate=500\nCy's checklist").await?;

    // A team member finds it in search, like any conversation they can see.
    let found = rh_testkit::eventually(WAIT, "Ben finds the team's conversation", || async {
        let (_, v) = t.api.as_user(&t.ben).get("/search?q=checklist").await.ok()?;
        v.to_string().contains(&conv.to_string()).then_some(v)
    })
    .await?;
    assert!(!found.to_string().is_empty());

    let (s, v) = t.api.as_user(admin).delete(&format!("/orgs/{}/members/{}", admin.org_id, t.cy.user_id)).await?;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let listed = client.teams(&t.ben).await?;
    let members: Vec<_> = listed.teams[0].members.iter().map(|m| m.user_id).collect();
    assert_eq!(members, vec![t.ben.user_id], "Cy is gone from the team list");
    let (_, found) = t.api.as_user(&t.ben).get("/users?q=cy").await?;
    assert!(!found.to_string().contains(&t.cy.user_id.to_string()), "nor found in search: {found}");
    let (_, shared) = t.api.as_user(admin).get(&format!("/conversations/{conv}/teams")).await?;
    assert_eq!(shared["teams"][0]["members"], 1, "{shared}");
    rh_testkit::eventually(WAIT, "Cy's message stays", || async {
        let v = t.api.conversation(&t.ben, conv).await.ok()?;
        v.to_string().contains("Cy's checklist").then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_refusals_from_the_refused_side() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let (admin, client) = (&t.owner, t.api.client());
    let org = admin.org_id;
    let tag = Uuid::new_v4().simple().to_string();
    let gil = t.api.sign_up("Globex", "Gil", &format!("gil-{tag}@globex.test"), "pw-gil-123456").await?;
    let globex_team = client.create_team(&gil, "Globex team").await?.id;
    let team_id = client.create_team(admin, "Sales").await?.id;
    let conv = t.api.create_conversation(&t.ben, "Pipeline").await?;
    let ben = t.api.as_user(&t.ben);

    // Not an admin, or not of this org: 403 with the JSON error, nothing created.
    let (s, v) = ben.post(&format!("/orgs/{org}/teams"), json!({"name": "Mine"})).await?;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{v}");
    let (s, v) =
        ben.post(&format!("/orgs/{org}/teams/{team_id}/members"), json!({"user_ids": [t.ben.user_id]})).await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = t.api.as_user(&gil).get(&format!("/orgs/{org}/teams")).await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "another org's teams are not listed: {v}");
    let (s, v) = t.api.as_user(&gil).delete(&format!("/orgs/{org}/teams/{team_id}")).await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // Bad input: 400/409/404 with the JSON error, never a 500.
    for (body, want) in [
        (json!({"name": "  "}), StatusCode::BAD_REQUEST),
        (json!({"name": "sales"}), StatusCode::CONFLICT),
        (json!({"nom": "x"}), StatusCode::BAD_REQUEST),
    ] {
        let (s, v) = t.api.as_user(admin).post(&format!("/orgs/{org}/teams"), body.clone()).await?;
        assert_eq!(s, want, "{body}: {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    let members = format!("/orgs/{org}/teams/{team_id}/members");
    let (s, v) = t.api.as_user(admin).post(&members, json!({"user_ids": [gil.user_id]})).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "another org's person cannot join: {v}");
    let (s, v) = t.api.as_user(admin).post(&members, json!({"user_ids": []})).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = t.api.as_user(admin).delete(&format!("{members}/{}", t.cy.user_id)).await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "not in the team: {v}");
    let (s, v) = t.api.as_user(admin).get(&format!("/orgs/{org}/teams/{globex_team}")).await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "another org's team id: {v}");

    // Sharing: another org's team is not found; a bad permission is a 400; a non-owner is refused.
    let share = |team: Uuid| format!("/conversations/{conv}/teams/{team}");
    let (s, v) = ben.put(&share(globex_team), json!({"permission": "view"})).await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = ben.put(&share(team_id), json!({"permission": "owner"})).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = t.api.as_user(&t.cy).put(&share(team_id), json!({"permission": "view"})).await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "Cy cannot see Ben's conversation: {v}");
    let (s, v) = t.api.as_user(&gil).put(&share(globex_team), json!({"permission": "view"})).await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = ben.delete(&share(team_id)).await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "not shared with that team: {v}");
    // An empty team shared gives nobody access; Cy still cannot see it.
    let (s, v) = ben.put(&share(team_id), json!({"permission": "respond"})).await?;
    assert!(s.is_success(), "{s} {v}");
    assert_eq!(permission_over_rest(&t, &t.cy, conv).await?, json!(404));
    Ok(())
}
