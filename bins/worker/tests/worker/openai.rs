//! `RH_PROVIDER=openai` against a real local HTTP server that streams Server-Sent Events like OpenAI.

use crate::*;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rh_protocol::rpc::ModelList;
use std::sync::{Arc, Mutex};

const ANSWER: &[&str] = &["Sure", ", here", " is ", "the plan: ", "ship ", "it", " — ✓"];

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Request>>>);

/// (authorization header, JSON body) of one request.
type Request = (Option<String>, serde_json::Value);

/// Model `gpt-test` streams [`ANSWER`] in awkward pieces; `gpt-denied` gets a 401; `gpt-flaky` breaks off.
async fn completions(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    seen.0.lock().map(|mut s| s.push((auth, req.clone()))).ok();
    let model = req["model"].as_str().unwrap_or_default().to_owned();
    if model == "gpt-denied" {
        let body = r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#;
        return (StatusCode::UNAUTHORIZED, [("content-type", "application/json")], body).into_response();
    }
    let mut sse = String::new();
    for t in ANSWER {
        let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": t}}]});
        sse.push_str(&format!("data: {chunk}\n\n"));
    }
    let flaky = model == "gpt-flaky";
    if !flaky {
        sse.push_str("data: [DONE]\n\n");
    }
    let bytes = sse.into_bytes();
    let pieces: Vec<Vec<u8>> = bytes.chunks(11).map(<[u8]>::to_vec).collect();
    let n = pieces.len();
    let stream = futures::stream::iter(pieces.into_iter().enumerate()).then(move |(i, p)| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if flaky && i + 1 == n {
            return Err(std::io::Error::other("connection reset"));
        }
        Ok::<_, std::io::Error>(Bytes::from(p))
    });
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(stream)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_provider_streams_a_real_sse_server_onto_the_conversation() -> anyhow::Result<()> {
    let seen = Seen::default();
    let app = Router::new().route("/v1/chat/completions", post(completions)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let bus = Bus::start().await?;
    let _worker = bus
        .worker(&[
            ("RH_PROVIDER", "openai"),
            ("RH_OPENAI_BASE_URL", &base),
            ("RH_OPENAI_API_KEY", "sk-local-test"),
            ("RH_OPENAI_MODELS", "gpt-test,gpt-denied,gpt-flaky"),
        ])
        .await?;
    let conv = Uuid::new_v4();
    let mut r = bus.reader(conv).await?;

    let j = job(conv, "gpt-test", "Plan the release");
    bus.publish_job(&j).await?;
    let end = r.until_end(j.response_id).await?;
    let Event::ResponseCompleted { text, model, attempt, .. } = end else { bail!("ended with {end:?}") };
    assert_eq!((text.as_str(), model.as_str(), attempt), (ANSWER.concat().as_str(), "gpt-test", 1));
    check_deltas(&r.seen, j.response_id, 1, &text)?;
    {
        let seen = seen.0.lock().map_err(|_| anyhow::anyhow!("lock"))?;
        let (auth, body) = &seen[0];
        assert_eq!(auth.as_deref(), Some("Bearer sk-local-test"));
        assert_eq!(body["stream"], true);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "Plan the release");
    }

    // An HTTP error becomes response.failed with the provider's message.
    let denied = job(conv, "gpt-denied", "hello?");
    bus.publish_job(&denied).await?;
    let end = r.until_end(denied.response_id).await?;
    let Event::ResponseFailed { error, text, .. } = end else { bail!("ended with {end:?}") };
    assert!(error.contains("401") && error.contains("Incorrect API key provided"), "{error}");
    assert_eq!(text, "");

    // A stream that breaks off fails with the text that did arrive, which the deltas add up to.
    let flaky = job(conv, "gpt-flaky", "and now?");
    bus.publish_job(&flaky).await?;
    let end = r.until_end(flaky.response_id).await?;
    let Event::ResponseFailed { error, text, .. } = end else { bail!("ended with {end:?}") };
    assert!(error.contains("broke off"), "{error}");
    assert!(!text.is_empty() && ANSWER.concat().starts_with(&text), "{text:?}");
    check_deltas(&r.seen, flaky.response_id, 1, &text)?;

    let models: ModelList =
        rh_bus::request(&bus.client, subjects::WORKER_MODELS, &serde_json::json!({}), Duration::from_secs(5)).await?;
    assert_eq!(
        models.models.iter().map(|m| (m.id.as_str(), m.provider.as_str())).collect::<Vec<_>>(),
        [("gpt-test", "openai"), ("gpt-denied", "openai"), ("gpt-flaky", "openai")]
    );
    Ok(())
}

/// Without an allowlist, a client could make the worker ask the endpoint for any model its key reaches: the
/// worker refuses to start, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_provider_refuses_to_start_without_a_model_allowlist() -> anyhow::Result<()> {
    let bus = Bus::start().await?;
    for models in ["", " , "] {
        let refused = bus
            .worker(&[
                ("RH_PROVIDER", "openai"),
                ("RH_OPENAI_BASE_URL", "http://127.0.0.1:9"),
                ("RH_OPENAI_MODELS", models),
                // The reason ends the log, not a backtrace.
                ("RUST_BACKTRACE", "0"),
                ("RUST_LIB_BACKTRACE", "0"),
            ])
            .await;
        let Err(e) = refused else { bail!("a worker started without an allowlist ({models:?})") };
        assert!(format!("{e:#}").contains("allowlist"), "the reason is told: {e:#}");
    }
    Ok(())
}
