//! A real model out of the box (issue 12): the worker on the OpenAI-compatible provider against a real local
//! server streaming Server-Sent Events, serving `team-gpt` (and `team-broken`, whose upstream answers 503). The
//! api's `--default-model` stays `sim-1`, which no worker serves here.

use crate::helpers::*;
use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rh_protocol::Event;
use serde_json::json;

const ANSWER: &[&str] = &["Ship", " it", " on", " Friday."];

/// `/v1/chat/completions`: `team-broken` gets a 503 with an OpenAI-style error; anything else streams [`ANSWER`].
async fn completions(body: Bytes) -> Response {
    let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if req["model"] == "team-broken" {
        let body = r#"{"error":{"message":"upstream overloaded","type":"server_error"}}"#;
        return (StatusCode::SERVICE_UNAVAILABLE, [("content-type", "application/json")], body).into_response();
    }
    let mut sse = String::new();
    for t in ANSWER {
        sse.push_str(&format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": t}}]})));
    }
    sse.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], sse).into_response()
}

async fn openai_team() -> anyhow::Result<Team> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(
        async move { axum::serve(listener, Router::new().route("/v1/chat/completions", post(completions))).await },
    );
    team(sim_env(&[
        ("RH_PROVIDER", "openai"),
        ("RH_OPENAI_BASE_URL", &base),
        ("RH_OPENAI_MODELS", "team-gpt,team-broken"),
    ]))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_conversations_get_a_model_the_workers_serve_and_others_are_refused() -> anyhow::Result<()> {
    let t = openai_team().await?;
    let owner = t.api.as_user(&t.owner);

    let (status, models) = owner.get("/models").await?;
    assert_eq!(status, 200);
    assert_eq!((models["default"].as_str(), models["workers"].as_bool()), (Some("team-gpt"), Some(true)), "{models}");
    let ids: Vec<&str> = models["models"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["team-gpt", "team-broken"]);

    // No model given: the pool's, not the api's configured `sim-1`; the first message is answered.
    let (status, conv) = owner.post("/conversations", json!({"title": "Release"})).await?;
    assert_eq!((status.as_u16(), conv["model"].as_str()), (201, Some("team-gpt")), "{conv}");
    let conv_id = uuid::Uuid::parse_str(conv["id"].as_str().unwrap_or_default())?;
    let rid = response_id(&t.api.send_message(&t.owner, conv_id, "When do we ship?").await?)?;
    assert_eq!(stored_response(&t.api, &t.owner, conv_id, rid).await?, ANSWER.concat());

    // A model nobody serves: refused, saying which exist; nothing created or changed.
    let (status, body) = owner.post("/conversations", json!({"model": "sim-1"})).await?;
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (422, Some("unknown_model")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("team-gpt"), "{body}");
    let path = format!("/conversations/{conv_id}/settings");
    let (status, body) = owner.patch(&path, json!({"model": "gpt-4o"})).await?;
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (422, Some("unknown_model")), "{body}");
    let (_, list) = owner.get("/conversations").await?;
    assert_eq!(list["conversations"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(t.api.conversation(&t.owner, conv_id).await?["model"], "team-gpt");

    // A served one is taken.
    let (status, body) = owner.patch(&path, json!({"model": "team-broken"})).await?;
    assert_eq!((status.as_u16(), body["model"].as_str()), (200, Some("team-broken")), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_response_tells_every_viewer_and_a_later_reader_why() -> anyhow::Result<()> {
    let t = openai_team().await?;
    let owner = t.api.as_user(&t.owner);
    let (_, conv) = owner.post("/conversations", json!({"title": "Broken upstream", "model": "team-broken"})).await?;
    let conv = uuid::Uuid::parse_str(conv["id"].as_str().unwrap_or_default())?;
    t.api.share(&t.owner, conv, &t.ben, "view").await?;
    let h = history_seq(&t.api, &t.owner, conv).await?;
    let mut viewers = [
        Viewer::join(&t.stack.ws_url(), &t.owner, conv, Some(h)).await?,
        Viewer::join(&t.stack.ws_url(), &t.ben, conv, Some(h)).await?,
    ];

    let rid = response_id(&t.api.send_message(&t.owner, conv, "Anyone there?").await?)?;
    for v in &mut viewers {
        let end = v.until_response_end(rid).await?;
        let Event::ResponseFailed { error, .. } = &end.event.event else { anyhow::bail!("ended with {end:?}") };
        assert!(error.contains("503") && error.contains("upstream overloaded"), "the reason: {error:?}");
    }

    // A reload, or someone who opens it later, reads the same reason from the stored history.
    let ben = t.api.as_user(&t.ben);
    let stored = rh_testkit::eventually(WAIT, "the failed answer in the stored history", || async {
        let (_, v) = ben.get(&format!("/conversations/{conv}")).await.ok()?;
        v["messages"].as_array()?.iter().find(|m| m["id"] == rid.to_string() && m["status"] == "failed").cloned()
    })
    .await?;
    let reason = stored["error"].as_str().unwrap_or_default();
    assert!(reason.contains("503") && reason.contains("upstream overloaded"), "the stored reason: {stored}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_offers_every_workers_models_and_each_is_answered_by_a_worker_that_serves_it() -> anyhow::Result<()> {
    // Two workers serving different models: sim-1/sim-2 (the stack's), and a "large" one.
    let mut t = team(sim_env(&[("RH_SIM_TOKENS", "5"), ("RH_SIM_TOKENS_PER_SEC", "200")])).await?;
    let large = t.stack.spawn_worker_with(&[("RH_SIM_MODELS", "sim-large")]).await?;
    t.stack.workers.push(large);
    let owner = t.api.as_user(&t.owner);

    let (status, models) = owner.get("/models").await?;
    assert_eq!(status, 200);
    let mut ids: Vec<&str> =
        models["models"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["sim-1", "sim-2", "sim-large"], "{models}");

    // Each model's answers come from a worker that serves it, whichever worker pulls the job first.
    for model in ["sim-large", "sim-1", "sim-large"] {
        let (status, conv) = owner.post("/conversations", json!({"model": model})).await?;
        assert_eq!(status.as_u16(), 201, "{conv}");
        let conv = uuid::Uuid::parse_str(conv["id"].as_str().unwrap_or_default())?;
        let rid = response_id(&t.api.send_message(&t.owner, conv, "Which model?").await?)?;
        let text = stored_response(&t.api, &t.owner, conv, rid).await?;
        assert!(!text.is_empty(), "{model} answered");
    }
    Ok(())
}
