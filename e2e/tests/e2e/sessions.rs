//! Sessions on the socket, from the attacker's side: a reused ticket, a token in the URL, a logged-out session's
//! open socket and token, an expired token — each refused or closed; a socket that re-authenticates lives on.

use crate::helpers::*;
use rh_protocol::{ClientFrame, ServerFrame};
use rh_testkit::{StackOptions, WsClient};
use std::time::{Duration, Instant};

/// Reads until the edge closes the socket; returns the last `error` frame's code.
async fn closed_with(ws: &mut WsClient) -> anyhow::Result<Option<String>> {
    let mut code = None;
    loop {
        match ws.next_or_close(WAIT).await? {
            Ok(ServerFrame::Error { code: c, .. }) => code = Some(c),
            Ok(_) => {}
            Err(_) => return Ok(code),
        }
    }
}

/// Sends `auth` with `token`; returns the socket's expiry from the `authenticated` answer.
async fn authenticate(ws: &mut WsClient, token: &str) -> anyhow::Result<u64> {
    ws.send(&ClientFrame::Auth { token: token.to_owned() }).await?;
    let (f, _) = ws.until(WAIT, |f| matches!(f, ServerFrame::Authenticated { .. } | ServerFrame::Error { .. })).await?;
    match f {
        ServerFrame::Authenticated { expires_at } => Ok(expires_at),
        other => anyhow::bail!("auth refused: {other:?}"),
    }
}

async fn pong(ws: &mut WsClient) -> anyhow::Result<()> {
    ws.send(&ClientFrame::Ping).await?;
    ws.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_work_once_and_logout_closes_the_sessions_sockets() -> anyhow::Result<()> {
    let t = team(StackOptions { workers: 0, audit: false, ..Default::default() }).await?;
    let (client, url) = (t.api.client(), t.stack.ws_url());

    // A ticket opens one socket; the same ticket again is refused.
    let ticket = client.socket_ticket(&t.ben).await?;
    let mut ws = WsClient::connect_ticket(&url, &ticket.ticket).await?;
    pong(&mut ws).await?;
    assert_eq!(WsClient::upgrade_status(&format!("{url}?ticket={}", ticket.ticket), None).await?, 401);
    // A token in the URL is not accepted (URLs are logged by proxies).
    assert_eq!(WsClient::upgrade_status(&format!("{url}?token={}", t.ben.token), None).await?, 401);

    // Ben's other device keeps its socket when this session logs out.
    let phone = client.login(&t.ben.email, "pw-ben-123456").await?;
    let mut phone_ws = WsClient::connect(&url, &phone.token).await?;
    let unused_ticket = client.socket_ticket(&t.ben).await?;

    client.logout(&t.ben).await?;
    assert_eq!(closed_with(&mut ws).await?.as_deref(), Some("unauthorized"), "the open socket is closed");
    // The logged-out token and the ticket issued before the logout open nothing.
    assert_eq!(WsClient::upgrade_status(&url, Some(&t.ben.token)).await?, 401);
    assert_eq!(WsClient::upgrade_status(&format!("{url}?ticket={}", unused_ticket.ticket), None).await?, 401);
    let (s, _) = t.api.with_token(&t.ben.token).post("/auth/ticket", serde_json::json!({})).await?;
    assert_eq!(s.as_u16(), 401);
    pong(&mut phone_ws).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_closes_when_its_token_expires_unless_it_reauthenticates() -> anyhow::Result<()> {
    let options = StackOptions {
        workers: 0,
        audit: false,
        api_env: vec![("RH_TOKEN_TTL_SECS".into(), "6".into())],
        ..Default::default()
    };
    let t = team(options).await?;
    let (client, url) = (t.api.client(), t.stack.ws_url());
    let ben = client.login(&t.ben.email, "pw-ben-123456").await?;
    let mut stale = WsClient::connect(&url, &ben.token).await?;
    let mut renewed = WsClient::connect(&url, &ben.token).await?;

    // The stale socket's expiry, as the edge sees it.
    let expires_stale = authenticate(&mut stale, &ben.token).await?;
    // The other re-authenticates (as the web client does after a silent refresh) until its new token outlives the
    // stale one by a few seconds (tokens expire in whole seconds: the first refresh may land in the same second).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut fresh = ben.clone();
    loop {
        fresh = client.refresh(&fresh).await?;
        if authenticate(&mut renewed, &fresh.token).await? >= expires_stale + 3 {
            break;
        }
        assert!(Instant::now() < deadline, "no later token in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The socket that did not re-authenticate is closed at its token's expiry.
    assert_eq!(closed_with(&mut stale).await?.as_deref(), Some("token_expired"));
    // The other one lives on.
    pong(&mut renewed).await?;

    // The expired token opens nothing (once past the verifier's few seconds of clock leeway).
    let deadline = Instant::now() + Duration::from_secs(30);
    while WsClient::upgrade_status(&url, Some(&ben.token)).await? != 401 {
        assert!(Instant::now() < deadline, "an expired token still opens sockets");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A token of another person's session on an open socket closes it.
    let cy = client.login(&t.cy.email, "pw-cy-1234567").await?;
    let current = client.refresh(&fresh).await?;
    let mut ws = WsClient::connect(&url, &current.token).await?;
    ws.send(&ClientFrame::Auth { token: cy.token }).await?;
    assert_eq!(closed_with(&mut ws).await?.as_deref(), Some("unauthorized"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_removes_a_member_or_resets_a_password_and_their_sessions_end() -> anyhow::Result<()> {
    let t = team(StackOptions { workers: 0, audit: false, ..Default::default() }).await?;
    let (client, url) = (t.api.client(), t.stack.ws_url());
    let org = t.owner.org_id;
    let mut ben_ws = WsClient::connect(&url, &t.ben.token).await?;
    let mut cy_ws = WsClient::connect(&url, &t.cy.token).await?;

    // Refused from the side of whoever may not: a member, and an admin of another org.
    let gil =
        t.api.sign_up("Globex", "Gil", &format!("gil-{}@globex.test", uuid::Uuid::new_v4()), "pw-gil-123456").await?;
    let remove_ben = format!("/orgs/{org}/members/{}", t.ben.user_id);
    for who in [&t.cy, &gil] {
        let (s, v) = t.api.as_user(who).delete(&remove_ben).await?;
        assert_eq!(s.as_u16(), 403, "{v}");
        assert_eq!(v["error"]["code"], "forbidden");
    }
    let (s, _) = t
        .api
        .as_user(&gil)
        .put(
            &format!("/orgs/{}/members/{}/password", gil.org_id, t.cy.user_id),
            serde_json::json!({"password": "pw-stolen-12345"}),
        )
        .await?;
    assert_eq!(s.as_u16(), 404, "another org's member is not found");
    pong(&mut ben_ws).await?;

    // Removed: Ben's open socket closes, his token and refresh token are refused, he cannot sign in again.
    let (s, v) = t.api.as_user(&t.owner).delete(&remove_ben).await?;
    assert_eq!(s.as_u16(), 204, "{v}");
    assert_eq!(closed_with(&mut ben_ws).await?.as_deref(), Some("unauthorized"));
    let (s, _) = t.api.as_user(&t.ben).get("/conversations").await?;
    assert_eq!(s.as_u16(), 401);
    assert_eq!(WsClient::upgrade_status(&url, Some(&t.ben.token)).await?, 401);
    assert!(client.refresh(&t.ben).await.is_err());
    assert!(client.login(&t.ben.email, "pw-ben-123456").await.is_err());

    // Password reset: Cy's sessions end; the new password works, the old one does not.
    let (s, v) = t
        .api
        .as_user(&t.owner)
        .put(
            &format!("/orgs/{org}/members/{}/password", t.cy.user_id),
            serde_json::json!({"password": "pw-cy-new-12345"}),
        )
        .await?;
    assert_eq!(s.as_u16(), 204, "{v}");
    assert_eq!(closed_with(&mut cy_ws).await?.as_deref(), Some("unauthorized"));
    let (s, _) = t.api.as_user(&t.cy).get("/me").await?;
    assert_eq!(s.as_u16(), 401);
    assert!(client.login(&t.cy.email, "pw-cy-1234567").await.is_err());
    let cy = client.login(&t.cy.email, "pw-cy-new-12345").await?;
    let mut ws = WsClient::connect(&url, &cy.token).await?;
    pong(&mut ws).await?;
    Ok(())
}
