//! Bad input from outside: NUL characters and invalid UTF-8 in every kind of field, tokens of deleted accounts,
//! and requests axum itself refuses (bad multipart, too large, wrong method, unknown route) — each a clear
//! status with the `{"error":{"code","message"}}` body, never a 500 or a plain-text body.

use crate::helpers::*;
use serde_json::{Value, json};

/// Status and JSON body of a response (the test fails when the body is not JSON).
async fn status_json(r: reqwest::Response) -> (reqwest::StatusCode, Value) {
    let status = r.status();
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = r.text().await.unwrap();
    assert!(content_type.starts_with("application/json"), "{status} {content_type}: {text}");
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

/// A multipart body with one `file` part whose Content-Disposition carries `filename` as raw bytes.
fn multipart_with_filename(filename: &[u8]) -> Vec<u8> {
    let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"".to_vec();
    body.extend_from_slice(filename);
    body.extend_from_slice(b"\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n");
    body
}

#[tokio::test]
async fn nul_and_invalid_utf8_are_400s_on_every_kind_of_field() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Input").await;
    let (http, base, _) = app.api.raw();
    let ada = app.api.as_user(&team.ada);

    // Query strings and path segments, percent-encoded.
    for path in [
        "/users?q=a%00b".to_owned(),
        "/users?q=%FF%FE".to_owned(),
        "/conversations?before=%00".to_owned(),
        format!("/conversations/{conv}%00"),
        "/conversations/%C3%28".to_owned(),
        format!("/conversations/{conv}/shares/%00"),
    ] {
        let (s, v) = ada.get(&path).await.unwrap();
        assert_error(s, &v, 400, "bad_request");
    }

    // JSON bodies: the login email (no token needed), a title, a rename, a message, settings, a share.
    let (s, v) = app.api.post("/auth/login", json!({"email": "ada\u{0}@acme.test", "password": "x"})).await.unwrap();
    assert_error(s, &v, 400, "bad_request");
    let nul = "a\u{0}b";
    let refused = [
        ada.post("/conversations", json!({"title": nul})).await.unwrap(),
        ada.patch(&format!("/conversations/{conv}"), json!({"title": nul})).await.unwrap(),
        ada.post(&format!("/conversations/{conv}/messages"), json!({"text": nul})).await.unwrap(),
        ada.patch(&format!("/conversations/{conv}/settings"), json!({"system_prompt": nul})).await.unwrap(),
        ada.post(&format!("/conversations/{conv}/shares"), json!({"shares": [{"user_id": nul}]})).await.unwrap(),
        ada.post("/conversations", json!({"title": "ok", nul: 1})).await.unwrap(),
    ];
    for (s, v) in refused {
        assert_error(s, &v, 400, "bad_request");
    }
    // Invalid UTF-8 in a JSON body.
    let r = http
        .post(format!("{base}/auth/login"))
        .header("content-type", "application/json")
        .body(b"{\"email\":\"\xff\xfe\",\"password\":\"x\"}".to_vec())
        .send()
        .await
        .unwrap();
    let (s, v) = status_json(r).await;
    assert_error(s, &v, 400, "bad_request");

    // Multipart: a file name with a NUL, and one that is not UTF-8.
    for filename in [&b"a\0b.txt"[..], b"\xff\xfe.txt"] {
        let r = http
            .post(format!("{base}/conversations/{conv}/attachments"))
            .bearer_auth(&team.ada.token)
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(multipart_with_filename(filename))
            .send()
            .await
            .unwrap();
        let (s, v) = status_json(r).await;
        assert_error(s, &v, 400, "bad_request");
    }

    // Nothing was stored on the way, and the api still serves.
    let got = app.api.conversation(&team.ada, conv).await.unwrap();
    assert_eq!(got["title"], "Input", "{got}");
    assert_eq!(got["attachments"], json!([]), "{got}");
    let (s, v) = ada.get("/users?q=okafor").await.unwrap();
    assert_eq!((s.as_u16(), v["users"][0]["name"].as_str()), (200, Some("Ben Okafor")), "{v}");
}

#[tokio::test]
async fn a_token_of_a_deleted_account_is_a_401_everywhere() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let dee =
        app.api.add_member(&team.ada, "Dee Ramos", &format!("dee-{}@acme.test", tag()), "pw-dee-123456").await.unwrap();
    let pg = app.db.connect().await.unwrap();
    assert_eq!(pg.execute("DELETE FROM users WHERE id = $1", &[&dee.user_id]).await.unwrap(), 1);

    let dee = app.api.as_user(&dee);
    for (s, v) in [
        dee.post("/conversations", json!({"title": "ghost"})).await.unwrap(),
        dee.get("/conversations").await.unwrap(),
        dee.get("/me").await.unwrap(),
        dee.get("/users?q=a").await.unwrap(),
    ] {
        assert_error(s, &v, 401, "unauthorized");
    }
    // Nothing was created in the ghost's name, and everyone else is unaffected.
    let n: i64 = pg.query_one("SELECT count(*) FROM conversations", &[]).await.unwrap().get(0);
    assert_eq!(n, 0);
    let (s, _) = app.api.as_user(&team.ben).get("/me").await.unwrap();
    assert_eq!(s.as_u16(), 200);
}

#[tokio::test]
async fn what_axum_refuses_is_answered_in_the_json_error_shape() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Shapes").await;
    let (http, base, _) = app.api.raw();
    let token = team.ada.token.as_str();
    let attachments = format!("{base}/conversations/{conv}/attachments");

    // Multipart without a boundary: 400; a JSON body on the multipart endpoint: 415.
    let r = http.post(&attachments).bearer_auth(token).header("content-type", "multipart/form-data").body("x");
    let (s, v) = status_json(r.send().await.unwrap()).await;
    assert_error(s, &v, 400, "bad_request");
    let r = http.post(&attachments).bearer_auth(token).json(&json!({"file": "x"}));
    let (s, v) = status_json(r.send().await.unwrap()).await;
    assert_error(s, &v, 415, "unsupported_media_type");

    // 10 MB where a small JSON body is expected: 413.
    let big = format!("{{\"title\":\"{}\"}}", "x".repeat(10 * 1024 * 1024));
    let r = http.post(format!("{base}/conversations")).bearer_auth(token).header("content-type", "application/json");
    let (s, v) = status_json(r.body(big).send().await.unwrap()).await;
    assert_error(s, &v, 413, "payload_too_large");

    // Broken JSON, and JSON of the wrong shape: 400 — an array too, which serde would read as a struct's fields
    // (Schemathesis found `[null, null]` taken as `{}`), on optional bodies and required ones alike.
    let settings = format!("{base}/conversations/{conv}/settings");
    let copy = format!("{base}/conversations/{conv}/copy");
    let conversations = format!("{base}/conversations");
    for (url, body) in [
        (&conversations, "{\"title\":"),
        (&conversations, "[1,2]"),
        (&conversations, "[null, null]"),
        (&copy, "[null]"),
        (&copy, "\"x\""),
        (&settings, "[null, null]"),
    ] {
        let r = http.request(if url == &settings { reqwest::Method::PATCH } else { reqwest::Method::POST }, url);
        let r = r.bearer_auth(token).header("content-type", "application/json");
        let (s, v) = status_json(r.body(body).send().await.unwrap()).await;
        assert_error(s, &v, 400, "bad_request");
    }
    // An optional body may be `null`, as the document allows: the same as none.
    let r = http.post(&conversations).bearer_auth(token).header("content-type", "application/json").body("null");
    let (s, v) = status_json(r.send().await.unwrap()).await;
    assert_eq!(s, 201, "{v}");

    // An unknown route: 404; a known one with the wrong method: 405 with the methods it does answer.
    for url in [format!("{base}/nothing/here"), format!("{}/nothing/here", app.process.http_url())] {
        let (s, v) = status_json(http.get(url).send().await.unwrap()).await;
        assert_error(s, &v, 404, "not_found");
    }
    let r = http.delete(format!("{base}/users")).bearer_auth(token).send().await.unwrap();
    let allow = r.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (s, v) = status_json(r).await;
    assert_error(s, &v, 405, "method_not_allowed");
    assert!(allow.contains("GET"), "Allow: {allow:?}");
}

#[tokio::test]
async fn security_headers_on_the_api_and_the_web_client() {
    let web = rh_testkit::scratch_dir("web");
    std::fs::write(web.join("index.html"), "<html>RelayHub</html>").unwrap();
    let app = spawn_app_with(&[("RH_WEB_DIR", &web.to_string_lossy())]).await;
    let http = reqwest::Client::new();
    let base = app.process.http_url();
    for path in ["/", "/c/123", "/api/v1/config", "/api/v1/me"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{path}: {csp:?}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }
    // The web client's files answer a wrong method in the JSON error shape too.
    let (s, v) = status_json(http.post(format!("{base}/")).send().await.unwrap()).await;
    assert_error(s, &v, 405, "method_not_allowed");
}
