//! The OpenAI-compatible client against a real local HTTP server that streams Server-Sent Events.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use rh_llm::{ApiKey, ErrorKind, GenerateRequest, LlmError, OpenAiCompatible, OpenAiConfig, Provider};
use rh_protocol::rpc::ChatMessage;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// (authorization header, JSON body) of each request the fake saw.
type Requests = Arc<Mutex<Vec<(Option<String>, serde_json::Value)>>>;

/// What the fake provider answers.
#[derive(Clone)]
enum Script {
    /// 200 `text/event-stream`, these byte pieces with a pause between, then end (or break off if `abort`).
    Stream { pieces: Vec<Vec<u8>>, abort: bool },
    /// An HTTP error with this body.
    Error { status: u16, body: String, json: bool },
}

#[derive(Clone)]
struct Fake {
    script: Script,
    /// (authorization header, JSON body) of each request.
    seen: Requests,
}

async fn completions(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    fake.seen.lock().expect("lock").push((auth, json));
    match fake.script {
        Script::Error { status, body, json } => {
            let ct = if json { "application/json" } else { "text/plain" };
            (StatusCode::from_u16(status).expect("status"), [("content-type", ct)], body).into_response()
        }
        Script::Stream { pieces, abort } => {
            let n = pieces.len();
            let pause = Duration::from_millis(if n > 50 { 1 } else { 15 });
            let stream = futures::stream::iter(pieces.into_iter().enumerate()).then(move |(i, piece)| async move {
                tokio::time::sleep(pause).await;
                if abort && i + 1 == n {
                    return Err(std::io::Error::other("server gone"));
                }
                Ok::<_, std::io::Error>(Bytes::from(piece))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .expect("response")
        }
    }
}

/// Starts the fake on 127.0.0.1:0 and returns its base URL and the requests it saw.
async fn serve(script: Script) -> (String, Requests) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app =
        Router::new().route("/v1/chat/completions", post(completions)).with_state(Fake { script, seen: seen.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn client(base: &str, key: Option<&str>, models: &[&str]) -> OpenAiCompatible {
    let mut cfg = OpenAiConfig::new(base);
    cfg.api_key = key.map(ApiKey::new);
    cfg.models = models.iter().map(|m| m.to_string()).collect();
    OpenAiCompatible::new(cfg).expect("client")
}

fn request(model: &str) -> GenerateRequest {
    GenerateRequest {
        model: model.into(),
        messages: vec![
            ChatMessage { role: "system".into(), content: "Be brief.".into() },
            ChatMessage { role: "user".into(), content: "Say hello".into() },
        ],
        temperature: Some(0.5),
        max_tokens: Some(64),
    }
}

fn sse(tokens: &[&str]) -> Vec<u8> {
    let mut out =
        String::from("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n");
    out.push_str(": keep-alive\n\n");
    for t in tokens {
        let chunk =
            serde_json::json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]});
        out.push_str(&format!("data: {chunk}\r\n\r\n"));
    }
    out.push_str("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// Cuts `bytes` at awkward places: every `step` bytes, so cuts land inside `data:`, inside JSON, inside `\r\n`
/// and inside multi-byte characters.
fn cut(bytes: &[u8], step: usize) -> Vec<Vec<u8>> {
    bytes.chunks(step).map(<[u8]>::to_vec).collect()
}

async fn collect(p: &OpenAiCompatible, r: GenerateRequest) -> (Vec<String>, Option<LlmError>) {
    let mut s = p.generate(r).await.expect("stream starts");
    let mut tokens = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(t) => tokens.push(t),
            Err(e) => {
                assert!(s.next().await.is_none(), "nothing after an error");
                return (tokens, Some(e));
            }
        }
    }
    (tokens, None)
}

const TOKENS: &[&str] = &["Hel", "lo", ", wörld", " — ✓", " 日本語", "\n\n```rust\nfn x() {}\n```"];

#[tokio::test]
async fn streams_tokens_split_anywhere_and_sends_the_request_openai_expects() {
    for step in [1usize, 3, 7, 64, 100_000] {
        let (base, seen) = serve(Script::Stream { pieces: cut(&sse(TOKENS), step), abort: false }).await;
        let p = client(&base, Some("sk-test-123"), &["gpt-test"]);
        let (tokens, err) = collect(&p, request("gpt-test")).await;
        assert!(err.is_none(), "step {step}: {err:?}");
        assert_eq!(tokens.concat(), TOKENS.concat(), "step {step}");
        let seen = seen.lock().expect("lock");
        let (auth, body) = &seen[0];
        assert_eq!(auth.as_deref(), Some("Bearer sk-test-123"));
        assert_eq!(body["model"], "gpt-test");
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], 64);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "Say hello");
    }
}

#[tokio::test]
async fn a_base_url_ending_in_v1_works_too_and_no_key_sends_no_header() {
    let (base, seen) = serve(Script::Stream { pieces: vec![sse(&["ok"])], abort: false }).await;
    let p = client(&format!("{base}/v1/"), None, &["anything"]);
    let (tokens, err) = collect(&p, request("anything")).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(tokens, vec!["ok"]);
    assert_eq!(seen.lock().expect("lock")[0].0, None);
}

#[tokio::test]
async fn http_errors_carry_status_and_the_providers_message() {
    let body = r#"{"error":{"message":"Incorrect API key provided: sk-bad","type":"invalid_request_error","code":"invalid_api_key"}}"#;
    let (base, _) = serve(Script::Error { status: 401, body: body.into(), json: true }).await;
    let e = client(&base, Some("sk-bad"), &["m"]).generate(request("m")).await.err().expect("401 fails");
    assert_eq!(e.kind(), ErrorKind::Status(401));
    assert_eq!(e.message(), "Incorrect API key provided: sk-bad");

    let (base, _) = serve(Script::Error { status: 500, body: "upstream exploded".into(), json: false }).await;
    let e = client(&base, None, &["m"]).generate(request("m")).await.err().expect("500 fails");
    assert_eq!(e.kind(), ErrorKind::Status(500));
    assert!(e.to_string().contains("upstream exploded") && e.to_string().contains("500"), "{e}");
}

#[tokio::test]
async fn a_mid_stream_disconnect_is_an_error_after_the_tokens_so_far() {
    let mut pieces = cut(&sse(&["one", " two", " three"]), 40);
    // Keep the first three pieces (the role chunk and part of the tokens), then the server breaks off.
    pieces.truncate(6);
    let (base, _) = serve(Script::Stream { pieces: pieces.clone(), abort: true }).await;
    let (tokens, err) = collect(&client(&base, None, &["m"]), request("m")).await;
    let err = err.expect("the break-off is reported");
    assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    assert!(!tokens.is_empty() && "one two three".starts_with(&tokens.concat()), "{tokens:?}");

    // A clean end of the body without [DONE] (nor a finish_reason) is a break-off too.
    let body = "data: {\"choices\":[{\"delta\":{\"content\":\"half\"}}]}\n\n";
    let (base, _) = serve(Script::Stream { pieces: vec![body.as_bytes().to_vec()], abort: false }).await;
    let (tokens, err) = collect(&client(&base, None, &["m"]), request("m")).await;
    assert_eq!(tokens, vec!["half"]);
    assert_eq!(err.expect("truncated").kind(), ErrorKind::Disconnected);
}

#[tokio::test]
async fn an_error_event_inside_the_stream_ends_it() {
    let body = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"model overloaded\"}}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n";
    let (base, _) = serve(Script::Stream { pieces: vec![body.as_bytes().to_vec()], abort: false }).await;
    let (tokens, err) = collect(&client(&base, None, &["m"]), request("m")).await;
    assert_eq!(tokens, vec!["a"]);
    let err = err.expect("error event");
    assert_eq!(err.kind(), ErrorKind::Upstream);
    assert_eq!(err.message(), "model overloaded");
}

#[tokio::test]
async fn unreachable_servers_and_unknown_models_fail_before_streaming() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let e = client(&format!("http://{addr}"), None, &["m"]).generate(request("m")).await.err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");

    let (base, seen) = serve(Script::Stream { pieces: vec![sse(&["x"])], abort: false }).await;
    let p = client(&base, None, &["gpt-a", "gpt-b"]);
    assert_eq!(p.models(), vec!["gpt-a", "gpt-b"]);
    let e = p.generate(request("gpt-c")).await.err().expect("unknown");
    assert_eq!(e.kind(), ErrorKind::UnknownModel);
    assert!(seen.lock().expect("lock").is_empty(), "nothing was sent upstream");
}

#[test]
fn no_allowlist_no_provider() {
    for models in [vec![], vec![" ".to_owned()]] {
        let e = OpenAiCompatible::new(OpenAiConfig { models, ..OpenAiConfig::new("http://x") }).expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Config);
    }
}

#[test]
fn the_api_key_never_prints() {
    let key = ApiKey::new("sk-very-secret");
    let cfg = OpenAiConfig { api_key: Some(key.clone()), ..OpenAiConfig::new("http://x") };
    assert!(!format!("{cfg:?} {key}").contains("sk-very-secret"));
}
