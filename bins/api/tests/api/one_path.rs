//! One path through the api: every conversation request, write or read, makes exactly one access query (counted by
//! `relayhub_api_conversation_access_checks_total`), access comes before validation, and the NATS responder
//! answers a send like REST does.

use crate::helpers::*;
use rh_protocol::rpc::{Reply, SendMessageRequest};
use rh_protocol::subjects;
use rh_testkit::Api;
use serde_json::{Value, json};
use uuid::Uuid;

async fn access_checks(app: &App) -> u64 {
    let text = reqwest::get(format!("{}/metrics", app.process.http_url())).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("relayhub_api_conversation_access_checks_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `request` and asserts its status and that it made exactly one access query.
async fn once(app: &App, what: &str, want: u16, request: impl std::future::Future<Output = (u16, Value)>) {
    let before = access_checks(app).await;
    let (status, body) = request.await;
    assert_eq!(status, want, "{what}: {body}");
    assert_eq!(access_checks(app).await - before, 1, "{what}: one access query");
}

/// A request's status as a number, and its body.
fn status(r: anyhow::Result<(reqwest::StatusCode, Value)>) -> (u16, Value) {
    let (s, v) = r.unwrap();
    (s.as_u16(), v)
}

/// The api, the team, Ada's conversation `title` shared with Ben (Can Respond) and Cy (View Only), and a stranger
/// from another org signed in.
async fn scene(title: &str) -> (App, Team, Uuid, Api) {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, title).await;
    let stranger = outsider(&app).await;
    let stranger = app.api.as_user(&stranger);
    (app, team, conv, stranger)
}

#[tokio::test]
async fn every_conversation_write_makes_one_access_query() {
    let (app, team, conv, stranger) = scene("One path").await;
    let (ada, ben, cy) = (app.api.as_user(&team.ada), app.api.as_user(&team.ben), app.api.as_user(&team.cy));
    let p = |rest: &str| format!("/conversations/{conv}{rest}");

    once(&app, "send", 202, async { status(ben.post(&p("/messages"), json!({"text": "hi"})).await) }).await;
    // Its answer is still owed (nothing ends it here): regenerate and edit are refused, after the one query.
    apply_transcript(&app, conv).await;
    once(&app, "regenerate", 409, async { status(ben.post(&p("/regenerate"), json!({})).await) }).await;
    let (_, detail) = status(ben.get(&p("")).await);
    let hi = detail["messages"][0]["id"].clone();
    once(&app, "edit", 409, async { status(ben.post(&p("/messages"), json!({"text": "hey", "edit_of": hi})).await) })
        .await;
    once(&app, "regenerate view only", 403, async { status(cy.post(&p("/regenerate"), json!({})).await) }).await;
    once(&app, "regenerate stranger", 404, async { status(stranger.post(&p("/regenerate"), json!({})).await) }).await;
    once(&app, "settings", 200, async { status(ben.patch(&p("/settings"), json!({"temperature": 0.5})).await) }).await;
    once(&app, "stop", 202, async { status(ben.post(&p("/stop"), json!({})).await) }).await;
    once(&app, "rename", 200, async { status(ada.patch(&p(""), json!({"title": "Renamed"})).await) }).await;
    let cy_id = team.cy.user_id;
    once(&app, "change share", 200, async {
        status(ada.patch(&p(&format!("/shares/{cy_id}")), json!({"permission": "view"})).await)
    })
    .await;
    once(&app, "share", 200, async {
        status(ada.post(&p("/shares"), json!({"shares": [{"user_id": cy_id, "permission": "view"}]})).await)
    })
    .await;
    // Refusals cost the same one query: 403 for View Only, 404 for a stranger, and access before validation
    // (a stranger's invalid body is a 404, not a 400).
    once(&app, "view only", 403, async { status(cy.post(&p("/messages"), json!({"text": "hi"})).await) }).await;
    once(&app, "stranger", 404, async { status(stranger.post(&p("/messages"), json!({"text": ""})).await) }).await;
    once(&app, "invalid", 400, async { status(ben.post(&p("/messages"), json!({"text": ""})).await) }).await;

    // The socket's path (rh.api.send_message) is the same service call: same answer, one query.
    let before = access_checks(&app).await;
    let req = SendMessageRequest {
        user_id: team.cy.user_id,
        conversation_id: conv,
        text: "hi".into(),
        client_msg_id: None,
        max_tokens: None,
        edit_of: None,
    };
    let reply = app.nc.request(subjects::API_SEND_MESSAGE, serde_json::to_vec(&req).unwrap().into()).await.unwrap();
    let reply: Reply<Value> = serde_json::from_slice(&reply.payload).unwrap();
    let Reply::Error(e) = reply else { panic!("view only sent over NATS") };
    assert_eq!(e.code.as_str(), "forbidden");
    assert_eq!(access_checks(&app).await - before, 1, "rh.api.send_message: one access query");

    once(&app, "leave", 204, async { status(cy.delete(&p(&format!("/shares/{cy_id}"))).await) }).await;
    once(&app, "delete", 204, async { status(ada.delete(&p("")).await) }).await;
}

/// Reads take the same path: one access query each (a refusal too), none for the reads that only ever see the
/// caller's own (sidebar, search, directory, admin views) nor for the reply of a create or a copy.
#[tokio::test]
async fn every_conversation_read_makes_one_access_query() {
    let (app, team, conv, stranger) = scene("Read path").await;
    let (ada, cy) = (app.api.as_user(&team.ada), app.api.as_user(&team.cy));
    let p = |rest: &str| format!("/conversations/{conv}{rest}");
    // A file to download, uploaded by the owner.
    let (http, base, _) = app.api.raw();
    let part =
        reqwest::multipart::Part::bytes(b"notes".to_vec()).file_name("notes.txt").mime_str("text/plain").unwrap();
    let uploaded: Value = http
        .post(format!("{base}{}", p("/attachments")))
        .bearer_auth(&team.ada.token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file = uploaded["id"].as_str().expect("the upload's id").to_owned();

    once(&app, "conversation", 200, async { status(cy.get(&p("")).await) }).await;
    once(&app, "older page", 200, async { status(cy.get(&p("?limit=1&before=1")).await) }).await;
    once(&app, "shares", 200, async { status(cy.get(&p("/shares")).await) }).await;
    once(&app, "team shares", 200, async { status(cy.get(&p("/teams")).await) }).await;
    once(&app, "export", 200, async { status(cy.get(&p("/export?format=json")).await) }).await;
    once(&app, "download", 200, async {
        let r = http.get(format!("{base}{}", p(&format!("/attachments/{file}")))).bearer_auth(&team.cy.token);
        let r = r.send().await.unwrap();
        (r.status().as_u16(), Value::Null)
    })
    .await;
    once(&app, "copy", 201, async { status(cy.post(&p("/copy"), json!({})).await) }).await;
    // Refusals: a stranger learns nothing, and access comes before validating the query.
    once(&app, "stranger", 404, async { status(stranger.get(&p("")).await) }).await;
    once(&app, "stranger, bad page", 404, async { status(stranger.get(&p("?limit=0")).await) }).await;
    once(&app, "bad page", 400, async { status(cy.get(&p("?limit=0")).await) }).await;

    for (what, path) in [
        ("sidebar", "/conversations"),
        ("search", "/search?q=read"),
        ("directory", "/users?q=a"),
        ("admin conversations", "/admin/conversations"),
        ("admin audit", "/admin/audit"),
    ] {
        let before = access_checks(&app).await;
        let (s, body) = status(ada.get(path).await);
        assert_eq!(s, 200, "{what}: {body}");
        assert_eq!(access_checks(&app).await - before, 0, "{what}: no conversation access query");
    }
    let before = access_checks(&app).await;
    let (s, body) = status(ada.post("/conversations", json!({"title": "New"})).await);
    assert_eq!(s, 201, "create: {body}");
    assert_eq!(access_checks(&app).await - before, 0, "create: its reply needs no access query");
}
