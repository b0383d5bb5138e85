//! Limits on abuse, shared by api replicas: every test runs two api processes on the same PostgreSQL and NATS
//! and spreads its requests over both. Buckets are small and refill slowly (one token in hours), so which
//! request is refused never depends on the clock.

use crate::helpers::*;
use rh_protocol::frame::ErrorCode;
use rh_protocol::rpc::{MessageAccepted, RpcError, SendMessageRequest};
use rh_protocol::subjects;
use rh_testkit::{Api, Session};
use serde_json::{Value, json};
use uuid::Uuid;

/// A refill so slow that no token comes back during a test (one a day).
const SLOW: &str = "0.0007";

/// A response's status, `Retry-After` and body.
async fn answer(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, retry, response.json().await.unwrap_or(Value::Null))
}

/// `POST /conversations/{id}/messages` on `api` as `token`: status, `Retry-After`, body.
async fn post_message(api: &Api, token: &str, conv: Uuid, body: Value) -> (u16, Option<String>, Value) {
    let (http, base, _) = api.raw();
    let request = http.post(format!("{base}/conversations/{conv}/messages")).bearer_auth(token).json(&body);
    answer(request.send().await.unwrap()).await
}

/// A send over NATS as the edge makes it for `who`'s socket (`rh.api.send_message`), which must be refused: the
/// api's error reply.
async fn send_over_nats(app: &App, who: &Session, conv: Uuid) -> RpcError {
    let req = SendMessageRequest {
        user_id: who.user_id,
        conversation_id: conv,
        text: "from a socket".into(),
        client_msg_id: Some("s-1".into()),
        max_tokens: None,
        edit_of: None,
    };
    let e = rh_bus::request::<_, MessageAccepted>(&app.nc, subjects::API_SEND_MESSAGE, &req, WAIT).await.unwrap_err();
    e.rejection.expect("an error reply")
}

/// Asserts a 429 `rate_limited` with a `Retry-After` of whole seconds matching `retry_after_ms`.
fn assert_rate_limited((status, retry, body): &(u16, Option<String>, Value)) {
    assert_eq!(*status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let ms = body["error"]["retry_after_ms"].as_u64().expect("retry_after_ms");
    let secs: u64 = retry.as_deref().expect("Retry-After").parse().unwrap();
    assert!(ms > 60_000 && secs == ms.div_ceil(1000), "{ms} ms vs Retry-After {secs}");
}

async fn metrics(url: &str) -> String {
    reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap()
}

async fn created_messages(app: &App, conv: Uuid) -> usize {
    conv_events(app, conv).await.iter().filter(|(_, e)| e.event.kind() == "message.created").count()
}

#[tokio::test]
async fn ai_replies_per_person_are_counted_across_replicas_and_a_refused_send_leaves_nothing() {
    let limits = [("RH_LIMIT_USER_REPLIES_BURST", "2"), ("RH_LIMIT_USER_REPLIES_PER_MIN", SLOW)];
    let app = spawn_app_with(&limits).await;
    let (replica, api_b) = spawn_replica(&app, &limits).await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Busy").await;
    let ben = team.ben.token.as_str();

    assert_eq!(post_message(&app.api, ben, conv, json!({"text": "one"})).await.0, 202);
    assert_eq!(post_message(&api_b, ben, conv, json!({"text": "two"})).await.0, 202);
    // Ben's third, on either replica, is refused: the bucket is shared.
    assert_rate_limited(&post_message(&app.api, ben, conv, json!({"text": "three"})).await);
    assert_rate_limited(&post_message(&api_b, ben, conv, json!({"text": "three again"})).await);
    // The same over NATS (what the edge sends for a socket): rate_limited with retry_after_ms.
    let rejection = send_over_nats(&app, &team.ben, conv).await;
    assert_eq!(rejection.code, ErrorCode::RateLimited);
    assert!(rejection.retry_after_ms.is_some_and(|ms| ms > 60_000), "{rejection:?}");

    // Nothing of the refused sends was published; Ada (same org, own bucket) still may send.
    assert_eq!(created_messages(&app, conv).await, 2);
    assert_eq!(post_message(&api_b, &team.ada.token, conv, json!({"text": "mine"})).await.0, 202);
    assert_eq!(created_messages(&app, conv).await, 3);

    // Each replica counts its own refusals.
    let refused =
        |m: &str| m.lines().any(|l| l.starts_with("relayhub_api_limit_refusals_total{limit=\"user_replies\"}"));
    assert!(refused(&metrics(&app.process.http_url()).await));
    assert!(refused(&metrics(&replica.http_url()).await));
}

#[tokio::test]
async fn ai_replies_per_organization_are_counted_across_replicas() {
    let limits = [
        ("RH_LIMIT_USER_REPLIES_BURST", "0"),
        ("RH_LIMIT_ORG_REPLIES_BURST", "3"),
        ("RH_LIMIT_ORG_REPLIES_PER_MIN", SLOW),
    ];
    let app = spawn_app_with(&limits).await;
    let (_replica, api_b) = spawn_replica(&app, &limits).await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let conv = shared_conversation(&app, &team, "Team").await;
    let own = app.api.create_conversation(&gil, "Globex").await.unwrap();

    for (api, who) in [(&app.api, &team.ada), (&api_b, &team.ben), (&app.api, &team.ada)] {
        assert_eq!(post_message(api, &who.token, conv, json!({"text": "go"})).await.0, 202);
    }
    let refused = post_message(&api_b, &team.ben.token, conv, json!({"text": "one more"})).await;
    assert_rate_limited(&refused);
    assert!(refused.2["error"]["message"].as_str().unwrap().contains("organization"), "{}", refused.2);
    assert_eq!(created_messages(&app, conv).await, 3);
    // Another organization has its own bucket.
    assert_eq!(post_message(&api_b, &gil.token, own, json!({"text": "hello"})).await.0, 202);
}

#[tokio::test]
async fn max_tokens_has_a_default_and_a_bound() {
    let limits = [("RH_DEFAULT_MAX_TOKENS", "300"), ("RH_MAX_TOKENS_LIMIT", "1000")];
    let app = spawn_app_with(&limits).await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Tokens").await;
    let ben = team.ben.token.as_str();
    let last_job = || async {
        let stream = app.js.get_stream(subjects::STREAM_JOBS).await.unwrap();
        let last = stream.get_last_raw_message_by_subject(subjects::JOBS_GENERATE).await.unwrap();
        serde_json::from_slice::<rh_protocol::rpc::GenerateJob>(&last.payload).unwrap()
    };

    assert_eq!(post_message(&app.api, ben, conv, json!({"text": "a"})).await.0, 202);
    assert_eq!(last_job().await.max_tokens, Some(300));
    assert_eq!(post_message(&app.api, ben, conv, json!({"text": "b", "max_tokens": 1000})).await.0, 202);
    assert_eq!(last_job().await.max_tokens, Some(1000));
    let (status, _, body) = post_message(&app.api, ben, conv, json!({"text": "c", "max_tokens": 1001})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("1000"), "{body}");
    assert_eq!(created_messages(&app, conv).await, 2);
}

/// `POST {path}` with `body`, as coming from `addr` (the proxy header the test api trusts).
async fn post_from(api: &Api, addr: &str, path: &str, body: Value) -> (u16, Option<String>, Value) {
    let (http, base, _) = api.raw();
    answer(http.post(format!("{base}{path}")).header("x-forwarded-for", addr).json(&body).send().await.unwrap()).await
}

#[tokio::test]
async fn sign_in_attempts_per_email_are_counted_across_replicas() {
    let limits = [
        ("RH_LIMIT_SIGNIN_ADDR_BURST", "0"),
        ("RH_LIMIT_SIGNIN_EMAIL_BURST", "4"),
        ("RH_LIMIT_SIGNIN_EMAIL_PER_MIN", SLOW),
    ];
    let app = spawn_app_with(&limits).await;
    let (_replica, api_b) = spawn_replica(&app, &limits).await;
    let team = team(&app).await; // Ada's email: sign-up and sign-in, two attempts
    let ada_email = team.ada.email.clone();
    let login = |password: &str| json!({"email": ada_email.to_uppercase(), "password": password});

    assert_eq!(post_from(&api_b, "192.0.2.1", "/auth/login", login("wrong-password")).await.0, 401);
    assert_eq!(post_from(&app.api, "192.0.2.2", "/auth/login", login("wrong-password")).await.0, 401);
    // The fifth attempt for this email, from anywhere, on either replica: refused, even with the right password.
    assert_rate_limited(&post_from(&api_b, "192.0.2.3", "/auth/login", login("pw-ada-123456")).await);
    let sign_up = json!({"org_name": "Again", "name": "Ada", "email": ada_email, "password": "pw-ada-123456"});
    assert_rate_limited(&post_from(&app.api, "192.0.2.4", "/orgs", sign_up).await);
    // Someone else's email is not held up.
    app.api.login(&team.ben.email, "pw-ben-123456").await.expect("Ben signs in");
}

#[tokio::test]
async fn sign_in_attempts_per_address_are_counted_across_replicas() {
    let limits = [
        ("RH_LIMIT_SIGNIN_EMAIL_BURST", "0"),
        ("RH_LIMIT_SIGNIN_ADDR_BURST", "3"),
        ("RH_LIMIT_SIGNIN_ADDR_PER_MIN", SLOW),
        ("RH_CLIENT_IP_HEADER", "x-forwarded-for"),
    ];
    let app = spawn_app_with(&limits).await;
    let (replica, api_b) = spawn_replica(&app, &limits).await;
    let attempt = |i: usize| json!({"email": format!("guess-{i}@acme.test"), "password": "pw-guess-1234"});

    for (i, api) in [&app.api, &api_b, &app.api].into_iter().enumerate() {
        // The proxy appended the client's address last; what the client put first is not trusted.
        assert_eq!(post_from(api, "10.9.9.9, 198.51.100.7", "/auth/login", attempt(i)).await.0, 401);
    }
    let refused = post_from(&api_b, "198.51.100.7", "/auth/login", attempt(3)).await;
    assert_rate_limited(&refused);
    let sign_up = json!({"org_name": "Spam", "name": "Sam", "email": "sam@spam.test", "password": "pw-spam-1234"});
    assert_rate_limited(&post_from(&app.api, "198.51.100.7", "/orgs", sign_up.clone()).await);
    // Another address still may sign up.
    assert_eq!(post_from(&api_b, "198.51.100.8", "/orgs", sign_up).await.0, 202);
    let m = metrics(&replica.http_url()).await;
    assert!(m.lines().any(|l| l.starts_with("relayhub_api_limit_refusals_total{limit=\"signin_addr\"}")), "{m}");
}

#[tokio::test]
async fn password_hashes_run_at_most_the_bound_at_once() {
    let limits = [
        ("RH_LIMIT_SIGNIN_ADDR_BURST", "0"),
        ("RH_LIMIT_SIGNIN_EMAIL_BURST", "0"),
        ("RH_MAX_CONCURRENT_HASHES", "1"),
        ("RH_HASH_WAIT_MS", "120000"),
    ];
    let app = spawn_app_with(&limits).await;
    let team = team(&app).await;
    let logins = (0..8).map(|_| {
        let (api, email) = (app.api.clone(), team.ben.email.clone());
        tokio::spawn(async move { api.login(&email, "pw-ben-123456").await })
    });
    for login in logins.collect::<Vec<_>>() {
        login.await.unwrap().expect("every sign-in waits for its turn and succeeds");
    }
    let m = metrics(&app.process.http_url()).await;
    assert!(m.lines().any(|l| l == "relayhub_api_password_hashes_most 1"), "{m}");
}

/// Asserts a 429 `rate_limited` for answers in progress: `Retry-After: 5`, a message naming `whose`.
fn assert_busy((status, retry, body): &(u16, Option<String>, Value), whose: &str) {
    assert_eq!((*status, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");
    assert_eq!((retry.as_deref(), body["error"]["retry_after_ms"].as_u64()), (Some("5"), Some(5000)), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(whose), "{body}");
}

#[tokio::test]
async fn answers_in_progress_per_conversation_and_organization_are_counted_across_replicas() {
    // No worker and no audit writer here: every accepted answer stays in progress.
    let limits = [("RH_LIMIT_CONVERSATION_RESPONSES", "2"), ("RH_LIMIT_ORG_RESPONSES", "3")];
    let app = spawn_app_with(&limits).await;
    let (replica, api_b) = spawn_replica(&app, &limits).await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let conv = shared_conversation(&app, &team, "Busy").await;
    let other = shared_conversation(&app, &team, "Other").await;
    let own = app.api.create_conversation(&gil, "Globex").await.unwrap();

    assert_eq!(post_message(&app.api, &team.ada.token, conv, json!({"text": "one"})).await.0, 202);
    assert_eq!(post_message(&api_b, &team.ben.token, conv, json!({"text": "two"})).await.0, 202);
    // A third in the same conversation, on either replica, from either person: refused.
    assert_busy(&post_message(&app.api, &team.ada.token, conv, json!({"text": "three"})).await, "conversation");
    assert_busy(&post_message(&api_b, &team.ben.token, conv, json!({"text": "three"})).await, "conversation");
    let rejection = send_over_nats(&app, &team.ben, conv).await;
    assert_eq!((rejection.code, rejection.retry_after_ms), (ErrorCode::RateLimited, Some(5000)));

    // The org's third answer fits in another conversation; its fourth does not, anywhere in the org.
    assert_eq!(post_message(&api_b, &team.ben.token, other, json!({"text": "elsewhere"})).await.0, 202);
    assert_busy(&post_message(&app.api, &team.ada.token, other, json!({"text": "more"})).await, "organization");
    // Another organization has its own slots.
    assert_eq!(post_message(&api_b, &gil.token, own, json!({"text": "hello"})).await.0, 202);

    // Nothing of the refused sends was published, and no reply token was spent on them.
    assert_eq!(created_messages(&app, conv).await, 2);
    assert_eq!(created_messages(&app, other).await, 1);
    let slots: i64 =
        app.db.connect().await.unwrap().query_one("SELECT count(*) FROM response_slots", &[]).await.unwrap().get(0);
    assert_eq!(slots, 4);
    let refused = |m: &str, limit: &str| {
        m.lines().any(|l| l.starts_with(&format!("relayhub_api_limit_refusals_total{{limit=\"{limit}\"}}")))
    };
    let (a, b) = (metrics(&app.process.http_url()).await, metrics(&replica.http_url()).await);
    assert!(refused(&a, "conversation_responses") && refused(&b, "conversation_responses"), "{a}\n{b}");
    assert!(refused(&a, "org_responses"), "{a}");

    // Stopping them (no worker holds them: the api ends them itself) frees both slots once their end events
    // are written, as the audit writer writes them.
    let (status, _) = app.api.as_user(&team.ada).post(&format!("/conversations/{conv}/stop"), json!({})).await.unwrap();
    assert_eq!(status.as_u16(), 202);
    apply_transcript(&app, conv).await;
    assert_eq!(post_message(&api_b, &team.ben.token, conv, json!({"text": "now"})).await.0, 202);
}
