//! Sessions from the attacker's side: a logged-out token, a reused refresh token, an expired token are refused
//! over REST, and the edge is told when a session ends.

use crate::helpers::*;
use futures::StreamExt;
use rh_protocol::rpc::SessionEnded;
use rh_protocol::subjects;
use serde_json::json;
use std::time::{Duration, Instant};

async fn me_status(app: &App, token: &str) -> u16 {
    app.api.with_token(token).get("/me").await.unwrap().0.as_u16()
}

#[tokio::test]
async fn logout_ends_the_session_and_only_that_one() {
    let app = spawn_app().await;
    let t = team(&app).await;
    let client = app.api.client();
    let other_device = client.login(&t.ben.email, "pw-ben-123456").await.unwrap();
    let mut ended = app.nc.subscribe(subjects::SESSION_ENDED).await.unwrap();
    barrier(&app.nc).await;

    client.logout(&t.ben).await.unwrap();

    // The stolen access token is refused everywhere at once, not when it expires.
    for path in ["/me", "/conversations"] {
        let (s, v) = app.api.with_token(&t.ben.token).get(path).await.unwrap();
        assert_error(s, &v, 401, "unauthorized");
    }
    let (s, v) = app.api.with_token(&t.ben.token).post("/conversations", json!({"title": "x"})).await.unwrap();
    assert_error(s, &v, 401, "unauthorized");
    // Its refresh token too.
    let (s, v) = app.api.post("/auth/refresh", json!({"refresh_token": t.ben.refresh_token})).await.unwrap();
    assert_error(s, &v, 401, "unauthorized");
    // A second logout with it is refused as well.
    let (s, v) = app.api.with_token(&t.ben.token).post("/auth/logout", json!({})).await.unwrap();
    assert_error(s, &v, 401, "unauthorized");

    // The edge hears of it (to close that session's sockets).
    let msg = tokio::time::timeout(WAIT, ended.next()).await.expect("session_ended in time").unwrap();
    let msg: SessionEnded = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(msg.user_id, t.ben.user_id);
    assert!(msg.session_id.is_some());

    // Ben's other device, and everyone else, keep working.
    assert_eq!(me_status(&app, &other_device.token).await, 200);
    assert_eq!(me_status(&app, &t.cy.token).await, 200);
    let renewed = client.refresh(&other_device).await.unwrap();
    assert_eq!(me_status(&app, &renewed.token).await, 200);
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_ends_the_session() {
    let app = spawn_app().await;
    let t = team(&app).await;
    let client = app.api.client();

    let second = client.refresh(&t.ben).await.unwrap();
    assert_ne!(second.refresh_token, t.ben.refresh_token);
    assert_eq!(second.user_id, t.ben.user_id);
    assert_eq!(me_status(&app, &second.token).await, 200);
    // Ben goes on: his second refresh token is used too.
    let third = client.refresh(&second).await.unwrap();

    // Someone replays the refresh token Ben used first (seconds ago, but its successor is used: no grace):
    // refused, and Ben's whole session ends with it (the thief may have been first, so nothing of that session
    // can be trusted).
    let (s, v) = app.api.post("/auth/refresh", json!({"refresh_token": t.ben.refresh_token})).await.unwrap();
    assert_error(s, &v, 401, "unauthorized");
    assert_eq!(me_status(&app, &third.token).await, 401, "the session's newest access token is refused");
    let (s, v) = app.api.post("/auth/refresh", json!({"refresh_token": third.refresh_token})).await.unwrap();
    assert_error(s, &v, 401, "unauthorized");

    // Garbage and missing refresh tokens: a 401 and a 400, never a 500.
    let (s, v) = app.api.post("/auth/refresh", json!({"refresh_token": "not-a-token"})).await.unwrap();
    assert_error(s, &v, 401, "unauthorized");
    let (s, v) = app.api.post("/auth/refresh", json!({})).await.unwrap();
    assert_error(s, &v, 400, "bad_request");

    // Signing in again starts a fresh session.
    let again = client.login(&t.ben.email, "pw-ben-123456").await.unwrap();
    assert_eq!(me_status(&app, &again.token).await, 200);
}

#[tokio::test]
async fn an_expired_access_token_is_refused_and_refresh_renews_it() {
    let app = spawn_app_with(&[("RH_TOKEN_TTL_SECS", "1")]).await;
    let t = team(&app).await;
    let (s, v) = app.api.post("/auth/login", json!({"email": t.ben.email, "password": "pw-ben-123456"})).await.unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
    assert_eq!(v["expires_in"], 1);

    // The token expires (after the verifier's few seconds of clock leeway): wait for the refusal.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = app.api.with_token(&t.ben.token).get("/conversations").await.unwrap();
        if s.as_u16() == 401 {
            assert_error(s, &v, 401, "unauthorized");
            break;
        }
        assert_eq!(s.as_u16(), 200, "{v}");
        assert!(Instant::now() < deadline, "a 1 s token still works after 20 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let renewed = app.api.client().refresh(&t.ben).await.unwrap();
    let (s, v) = app.api.with_token(&renewed.token).get("/conversations").await.unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
}

/// Two refreshes racing with one refresh token (a script refreshing in parallel) both get the same new pair's
/// refresh token, and the session goes on; the same token presented after the grace ends the session as theft.
#[tokio::test]
async fn parallel_refreshes_with_one_token_share_one_successor_and_a_reuse_after_the_grace_is_theft() {
    let app = spawn_app_with(&[("RH_REFRESH_REUSE_GRACE_SECS", "5")]).await;
    let t = team(&app).await;
    let client = app.api.client();

    let racing: Vec<_> = (0..4).map(|_| client.refresh(&t.ben)).collect();
    let renewed: Vec<_> = futures::future::join_all(racing).await.into_iter().map(Result::unwrap).collect();
    for r in &renewed {
        assert_eq!(r.refresh_token, renewed[0].refresh_token, "one successor");
        assert_ne!(r.refresh_token, t.ben.refresh_token);
        assert_eq!(me_status(&app, &r.token).await, 200);
    }
    // The session goes on with that one successor.
    let next = client.refresh(&renewed[0]).await.unwrap();
    assert_eq!(me_status(&app, &next.token).await, 200);

    // Within the grace, the rotated token gets that same successor again (still unused)...
    let again = client.refresh(&renewed[0]).await.unwrap();
    assert_eq!(again.refresh_token, next.refresh_token);
    // ...past it, the rotated token is theft: the session ends.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let (s, v) = app.api.post("/auth/refresh", json!({"refresh_token": renewed[0].refresh_token})).await.unwrap();
    assert_error(s, &v, 401, "unauthorized");
    assert_eq!(me_status(&app, &next.token).await, 401, "the session ended");
}
