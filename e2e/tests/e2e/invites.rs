//! Invitations instead of first passwords (issue 15): an admin invites by link (several emails at once, or one open
//! link), lists and revokes them; the teammate looks theirs up, picks a name and password and joins, signed in.
//! Refused, each with its own message: a used, expired, revoked and tampered invite. And anyone changes their own
//! password: the old one stops working, their other sessions end, this one stays.

use crate::helpers::*;
use reqwest::StatusCode;
use rh_protocol::invites::{CreatedInvites, InviteList, InviteStatus};
use rh_testkit::StackOptions;
use serde_json::{Value, json};

fn refusal(v: &Value) -> String {
    v["error"]["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teammates_join_by_invite_and_every_bad_invite_is_refused() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let admin = t.api.as_user(&t.owner);
    let anon = t.stack.api();
    let invites = format!("/orgs/{}/invites", t.owner.org_id);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let (dee, eve) = (format!("dee-{tag}@acme.test"), format!("eve-{tag}@acme.test"));

    // Not an admin: refused.
    let (s, v) = t.api.as_user(&t.ben).post(&invites, json!({"emails": [dee]})).await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = admin.post(&invites, json!({"emails": ["not an email"]})).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = admin.post(&invites, json!({"expires_in_hours": 0})).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // Two emails at once, and one open link.
    let (s, v) = admin.post(&invites, json!({"emails": [dee, eve]})).await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let by_email: CreatedInvites = serde_json::from_value(v)?;
    let (dee_token, eve_invite) = (by_email.invites[0].token.clone(), by_email.invites[1].clone());
    let (_, v) = admin.post(&invites, json!({})).await?;
    let open: CreatedInvites = serde_json::from_value(v)?;
    let open_token = open.invites[0].token.clone();

    // Dee looks hers up and joins: signed in, in the org.
    let (s, v) = anon.post("/invites/lookup", json!({"token": dee_token})).await?;
    assert!(s.is_success(), "{s} {v}");
    assert_eq!((v["org_name"].as_str(), v["email"].as_str()), (Some("Acme"), Some(dee.as_str())), "{v}");
    let join = json!({"token": dee_token, "name": "Dee Designer", "password": "pw-dee-123456"});
    let (s, v) = anon.post("/invites/accept", join.clone()).await?;
    assert!(s.is_success(), "{s} {v}");
    let token = v["token"].as_str().unwrap_or_default().to_owned();
    let (s, me) = anon.with_token(&token).get("/me").await?;
    assert!(s.is_success() && me["org_id"] == t.owner.org_id.to_string() && me["role"] == "member", "{me}");
    t.api.login(&dee, "pw-dee-123456").await?;

    // Used: refused, with why.
    let (s, v) = anon
        .post("/invites/accept", json!({"token": dee_token, "name": "Mallory", "password": "pw-mal-123456"}))
        .await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(refusal(&v).contains("already used"), "{v}");
    // Tampered: one character changed.
    let mut tampered = open_token.clone();
    let last = if tampered.ends_with('A') { "B" } else { "A" };
    tampered.replace_range(tampered.len() - 1.., last);
    for path in ["/invites/lookup", "/invites/accept"] {
        let body = json!({"token": tampered, "name": "Mallory", "password": "pw-mal-123456", "email": format!("mal-{tag}@acme.test")});
        let (s, v) = anon.post(path, body).await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert!(refusal(&v).contains("no such invite"), "{v}");
    }
    // An invite for Eve's email is not for anyone else's.
    let body = json!({"token": eve_invite.token, "name": "Mallory", "password": "pw-mal-123456", "email": format!("mal-{tag}@acme.test")});
    let (s, v) = anon.post("/invites/accept", body).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Revoked: refused; the list says so.
    let (s, v) = admin.delete(&format!("{invites}/{}", eve_invite.id)).await?;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = anon.post("/invites/lookup", json!({"token": eve_invite.token})).await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(refusal(&v).contains("revoked"), "{v}");
    // Expired: refused (aged in the database, as a week would).
    let pg = t.stack.db.connect().await?;
    pg.execute("UPDATE invites SET expires_at = now() - interval '1 minute' WHERE id = $1", &[&open.invites[0].id])
        .await?;
    let body = json!({"token": open_token, "name": "Late", "password": "pw-late-123456", "email": format!("late-{tag}@acme.test")});
    let (s, v) = anon.post("/invites/accept", body).await?;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(refusal(&v).contains("expired"), "{v}");

    let (_, v) = admin.get(&invites).await?;
    let list: InviteList = serde_json::from_value(v)?;
    let mut statuses: Vec<_> = list.invites.iter().map(|i| i.status).collect();
    statuses.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(statuses, vec![InviteStatus::Expired, InviteStatus::Revoked, InviteStatus::Used], "{list:?}");
    let (s, _) = t.api.as_user(&t.ben).get(&invites).await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = admin.delete(&format!("{invites}/{}", by_email.invites[0].id)).await?;
    assert_eq!(s, StatusCode::CONFLICT, "a used invite cannot be revoked: {v}");

    // In the audit log, without secrets.
    let (_, audit) = admin.get("/admin/audit").await?;
    let text = audit.to_string();
    for action in ["invite.created", "invite.revoked", "invite.accepted"] {
        assert!(text.contains(action), "{action}: {text}");
    }
    assert!(!text.contains(&dee_token), "no secret in the audit log");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anyone_changes_their_own_password_and_their_other_sessions_end() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let other_device = t.api.login(&t.ben.email, "pw-ben-123456").await?;
    let ben = t.api.as_user(&t.ben);

    let (s, v) = ben
        .put("/me/password", json!({"current_password": "wrong-password", "new_password": "pw-ben-new-123"}))
        .await?;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) = ben.put("/me/password", json!({"current_password": "pw-ben-123456", "new_password": "short"})).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) =
        ben.put("/me/password", json!({"current_password": "pw-ben-123456", "new_password": "pw-ben-new-123"})).await?;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    assert!(t.api.login(&t.ben.email, "pw-ben-123456").await.is_err(), "the old password no longer works");
    t.api.login(&t.ben.email, "pw-ben-new-123").await?;
    let (s, _) = ben.get("/me").await?;
    assert!(s.is_success(), "this session stays");
    let (s, _) = t.api.as_user(&other_device).get("/me").await?;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the other session ended");
    let (s, _) =
        t.stack.api().put("/me/password", json!({"current_password": "x", "new_password": "pw-anon-123456"})).await?;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "signed out: refused");
    Ok(())
}
