//! Shares with `expires_at` (issue 14): refused input, access ending at the second on every path (before the
//! expiry task has run), and the task removing the share like a revoke, once, with several replicas.

use crate::helpers::*;
use chrono::{Duration as Span, Utc};
use rh_bus::RequestErrorKind;
use rh_protocol::frame::{ErrorCode, SidebarAction};
use rh_protocol::rpc::{AccessGrant, AccessRequest};
use rh_protocol::{Event, subjects};
use serde_json::json;
use std::time::Duration;

fn share_body(user: uuid::Uuid, permission: &str, expires_at: serde_json::Value) -> serde_json::Value {
    json!({ "shares": [{ "user_id": user, "permission": permission, "expires_at": expires_at }] })
}

#[tokio::test]
async fn bad_expiries_are_refused_and_only_the_owner_sets_one() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Expiry input").await;
    let path = format!("/conversations/{conv}/shares");
    let owner = app.api.as_user(&team.ada);
    for bad in [json!((Utc::now() - Span::seconds(1)).to_rfc3339()), json!("tomorrow"), json!(17)] {
        let (s, v) = owner.post(&path, share_body(team.ben.user_id, "view", bad.clone())).await.unwrap();
        assert_error(s, &v, 400, "bad_request");
    }
    let later = json!((Utc::now() + Span::hours(1)).to_rfc3339());
    // Can Respond and View Only people may not share, with or without an expiry.
    for who in [&team.ben, &team.cy] {
        let (s, v) =
            app.api.as_user(who).post(&path, share_body(team.cy.user_id, "view", later.clone())).await.unwrap();
        assert_error(s, &v, 403, "forbidden");
    }
    // Another org does not see the conversation at all.
    let gil = outsider(&app).await;
    let (s, v) = app.api.as_user(&gil).post(&path, share_body(team.cy.user_id, "view", later)).await.unwrap();
    assert_error(s, &v, 404, "not_found");
}

#[tokio::test]
async fn access_ends_at_expires_at_even_before_the_task_runs() {
    // The expiry task runs once at start, then not for ten minutes.
    let app = spawn_app_with(&[("RH_SHARE_EXPIRY_CHECK_MS", "600000")]).await;
    let team = team(&app).await;
    let conv = app.api.create_conversation(&team.ada, "Brief").await.unwrap();
    let expires = Utc::now() + Span::milliseconds(1500);
    let (s, v) = app
        .api
        .as_user(&team.ada)
        .post(&format!("/conversations/{conv}/shares"), share_body(team.ben.user_id, "respond", json!(expires)))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
    app.api.conversation(&team.ben, conv).await.expect("Ben sees it before the expiry");

    tokio::time::sleep((expires - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100)).await;
    let (s, v) = app.api.as_user(&team.ben).get(&format!("/conversations/{conv}")).await.unwrap();
    assert_error(s, &v, 404, "not_found");
    let (s, v) = app
        .api
        .as_user(&team.ben)
        .post(&format!("/conversations/{conv}/messages"), json!({"text": "hi"}))
        .await
        .unwrap();
    assert_error(s, &v, 404, "not_found");
    let (_, list) = app.api.as_user(&team.ben).get("/conversations").await.unwrap();
    assert!(!list.to_string().contains(&conv.to_string()), "{list}");
    // The edge's question (socket subscribe) gets the same answer.
    let req = AccessRequest { user_id: team.ben.user_id, conversation_id: conv };
    let e = rh_bus::request::<_, AccessGrant>(&app.nc, subjects::API_ACCESS, &req, WAIT).await.unwrap_err();
    assert_eq!(e.kind(), RequestErrorKind::Rejected);
    assert_eq!(e.rejection.unwrap().code, ErrorCode::NotFound);
    // The row is still there: it is the access rule that refused him, not the task.
    let db = app.db.connect().await.unwrap();
    let n: i64 = db.query_one("SELECT count(*) FROM shares WHERE conversation_id = $1", &[&conv]).await.unwrap().get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn the_task_removes_an_expired_share_like_a_revoke_once_across_replicas() {
    let app = spawn_app_with(&[("RH_SHARE_EXPIRY_CHECK_MS", "200")]).await;
    let (_replica, _) = spawn_replica(&app, &[("RH_SHARE_EXPIRY_CHECK_MS", "200")]).await;
    let team = team(&app).await;
    let conv = app.api.create_conversation(&team.ada, "Brief").await.unwrap();
    let mut ben_inbox = Inbox::open(&app.nc, team.ben.user_id).await;
    let path = format!("/conversations/{conv}/shares");
    let soon = json!(Utc::now() + Span::seconds(1));
    let owner = app.api.as_user(&team.ada);
    let (s, v) = owner.post(&path, share_body(team.ben.user_id, "respond", soon.clone())).await.unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
    // Renewed before it ends: Cy's first expiry is replaced by a later one, so hers stays.
    let (s, _) = owner.post(&path, share_body(team.cy.user_id, "view", soon)).await.unwrap();
    assert_eq!(s.as_u16(), 200);
    let (s, _) =
        owner.post(&path, share_body(team.cy.user_id, "view", json!(Utc::now() + Span::hours(1)))).await.unwrap();
    assert_eq!(s.as_u16(), 200);

    let m = ben_inbox.next_where(|m| m.action == SidebarAction::Removed).await;
    assert_eq!(m.conversation_id, conv);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let removed: Vec<_> = conv_events(&app, conv)
        .await
        .into_iter()
        .filter(|(_, e)| matches!(e.event, Event::ParticipantRemoved { .. }))
        .collect();
    assert_eq!(removed.len(), 1, "announced once by one replica: {removed:?}");
    let (_, e) = &removed[0];
    assert_eq!(e.event, Event::ParticipantRemoved { user_id: team.ben.user_id });
    assert_eq!(e.actor, None, "nobody acted");
    let (_, v) = owner.get(&path).await.unwrap();
    let shares = v["shares"].as_array().unwrap();
    assert_eq!(shares.len(), 1, "{v}");
    assert_eq!(shares[0]["user_id"], team.cy.user_id.to_string());
    app.api.conversation(&team.cy, conv).await.expect("Cy's renewed share still works");
}
