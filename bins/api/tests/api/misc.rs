//! Models, config, static files, ops endpoints, and the demo seeding.

use crate::helpers::*;
use futures::StreamExt;
use rh_protocol::rpc::{ModelInfo, ModelList, Reply};
use rh_protocol::subjects;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_from_the_pool_or_the_default() {
    // A generous wait for the worker's answer: this machine runs many tests at once.
    let app = spawn_app_with(&[("RH_MODELS_TIMEOUT_MS", "5000")]).await;
    let team = team(&app).await;
    // No worker (NATS says "no responders" at once): the default model, and a hint that no worker answered.
    let (s, v) = app.api.as_user(&team.ben).get("/models").await.unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
    assert_eq!(v["models"], json!([{"id": "sim-1", "provider": "default"}]));
    assert_eq!(v["workers"], false);

    // A worker answering rh.worker.models.
    let mut sub = app.nc.subscribe(subjects::WORKER_MODELS).await.unwrap();
    barrier(&app.nc).await;
    let nc = app.nc.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let list = ModelList {
                models: vec![
                    ModelInfo { id: "sim-1".into(), provider: "simulated".into() },
                    ModelInfo { id: "sim-2".into(), provider: "simulated".into() },
                ],
            };
            rh_bus::respond(&nc, &m, &Reply::Ok(list)).await;
        }
    });
    let (_, v) = app.api.as_user(&team.ben).get("/models").await.unwrap();
    assert_eq!(v["models"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["models"][1]["id"], "sim-2");
    assert_eq!(v["workers"], true);
    let (s, _) = app.api.get("/models").await.unwrap();
    assert_eq!(s.as_u16(), 401);
}

#[tokio::test]
async fn config_static_files_and_ops() {
    let web = rh_testkit::scratch_dir("web");
    std::fs::write(web.join("index.html"), "<html>RelayHub</html>").unwrap();
    std::fs::write(web.join("app.js"), "console.log(1)").unwrap();
    let web_dir = web.to_string_lossy().into_owned();
    let app = spawn_app_with(&[("RH_WEB_DIR", &web_dir), ("RH_PUBLIC_WS_URL", "ws://chat.example.test/ws")]).await;

    let (s, v) = app.api.get("/config").await.unwrap();
    assert_eq!(s.as_u16(), 200);
    assert_eq!(v, json!({"ws_url": "ws://chat.example.test/ws"}));

    let base = app.process.http_url();
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}")).send();
    let r = get("/").await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "<html>RelayHub</html>");
    assert_eq!(get("/app.js").await.unwrap().text().await.unwrap(), "console.log(1)");
    assert_eq!(
        get("/c/some-conversation").await.unwrap().text().await.unwrap(),
        "<html>RelayHub</html>",
        "SPA fallback"
    );
    // Unknown API paths stay JSON 404s.
    let (s, v) = app.api.get("/no-such-endpoint").await.unwrap();
    assert_error(s, &v, 404, "not_found");

    // Ops endpoints on the same port; metrics count requests by route template.
    assert_eq!(get("/healthz").await.unwrap().status().as_u16(), 200);
    rh_testkit::eventually(WAIT, "ready", || async {
        (get("/readyz").await.ok()?.status().as_u16() == 200).then_some(())
    })
    .await
    .unwrap();
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("relayhub_api_http_requests_total") && metrics.contains(r#"route="/api/v1/config""#),
        "{metrics}"
    );

    // Without --public-ws-url, ws_url is null.
    let plain = spawn_app().await;
    let (_, v) = plain.api.get("/config").await.unwrap();
    assert_eq!(v, json!({"ws_url": null}));
}

#[tokio::test]
async fn seed_demo_is_idempotent() {
    let app = spawn_app().await;
    let bin = rh_testkit::target_dir().join("debug").join("api");
    for _ in 0..2 {
        let out = tokio::process::Command::new(&bin)
            .arg("seed-demo")
            .env("RH_NATS_URL", app.nats.url())
            .envs(app.nats.service_env(rh_bus::Role::Api))
            .env("RH_DATABASE_URL", app.db.url())
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let ada = app.api.login("ada@acme.test", "relayhub-demo").await.unwrap();
    let ben = app.api.login("ben@acme.test", "relayhub-demo").await.unwrap();
    let cy = app.api.login("cy@acme.test", "relayhub-demo").await.unwrap();
    app.api.login("dee@acme.test", "relayhub-demo").await.unwrap();
    let gil = app.api.login("gil@globex.test", "relayhub-demo").await.unwrap();
    assert_ne!(gil.org_id, ada.org_id);
    assert_eq!(ben.org_id, ada.org_id);
    let (_, me) = app.api.as_user(&ada).get("/me").await.unwrap();
    assert_eq!((me["name"].as_str(), me["role"].as_str()), (Some("Ada Lovelace"), Some("admin")));

    let (_, list) = app.api.as_user(&ada).get("/conversations").await.unwrap();
    let convs = list["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 1, "created once: {list}");
    // It holds a finished exchange (once, however often the seeding runs): Ada's question and the answer.
    let welcome: uuid::Uuid = convs[0]["id"].as_str().unwrap().parse().unwrap();
    let kinds: Vec<_> = conv_events(&app, welcome).await.into_iter().map(|(_, e)| e.event).collect();
    let asked = kinds
        .iter()
        .filter(
            |e| matches!(e, rh_protocol::Event::MessageCreated { author_name, .. } if author_name == "Ada Lovelace"),
        )
        .count();
    let answered: Vec<_> = kinds
        .iter()
        .filter_map(|e| match e {
            rh_protocol::Event::ResponseCompleted { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!((asked, answered.len()), (1, 1), "{kinds:?}");
    assert!(answered[0].contains("| You want to | Do this |") && answered[0].contains("```python"), "{}", answered[0]);
    let (_, list) = app.api.as_user(&ben).get("/conversations").await.unwrap();
    assert_eq!(list["conversations"][0]["permission"], "respond");
    let (_, list) = app.api.as_user(&cy).get("/conversations").await.unwrap();
    assert_eq!(list["conversations"][0]["permission"], "view");
    let (_, users) = app.api.as_user(&ada).get("/users").await.unwrap();
    assert_eq!(users["users"].as_array().unwrap().len(), 4);
}

/// A JWT key shorter than 32 bytes stops the api and the edge at startup, saying why.
#[tokio::test]
async fn a_short_jwt_secret_stops_the_api_and_the_edge_at_startup() {
    let nats = rh_testkit::NatsServer::start().await.unwrap();
    let db = rh_testkit::TestDb::create().await.unwrap();
    for bin in ["api", "edge"] {
        let out = tokio::process::Command::new(rh_testkit::target_dir().join("debug").join(bin))
            .env("RH_NATS_URL", nats.url())
            .env("RH_DATABASE_URL", db.url())
            .env("RH_JWT_SECRET", "only-31-bytes-long-secret-here!")
            .env("RH_API_LISTEN", "127.0.0.1:0")
            .env("RH_EDGE_LISTEN", "127.0.0.1:0")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bin} started with a short secret");
        assert!(stderr.contains("at least 32 bytes"), "{bin}: {stderr}");
    }
}

/// The api serves the committed contract (`docs/openapi.json`, checked against the code by the rh-api unit test
/// `openapi_json_is_committed`), and every path it lists answers the methods it does not list with a JSON 405.
#[tokio::test]
async fn openapi_is_served_and_other_methods_get_405() {
    let app = spawn_app().await;
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json")).unwrap();
    let url = format!("{}/api/v1/openapi.json", app.process.http_url());
    let served = reqwest::get(&url).await.unwrap();
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.headers()["content-type"], "application/json");
    assert_eq!(served.text().await.unwrap(), committed, "the served contract is the committed one");

    let doc: serde_json::Value = serde_json::from_str(&committed).unwrap();
    let methods = ["get", "post", "put", "patch", "delete"];
    let http = reqwest::Client::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete: String = path
            .split('/')
            .map(|part| if part.starts_with('{') { uuid::Uuid::now_v7().to_string() } else { part.to_owned() })
            .collect::<Vec<_>>()
            .join("/");
        for method in methods.iter().filter(|m| item.get(**m).is_none()) {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = http.request(m, format!("{}/api/v1{concrete}", app.process.http_url())).send().await.unwrap();
            let status = r.status().as_u16();
            let allow = r.headers().get("allow").map(|a| a.to_str().unwrap().to_owned()).unwrap_or_default();
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            assert_eq!((status, v["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{method} {path}");
            let listed = methods.iter().filter(|m| item.get(**m).is_some());
            for m in listed {
                assert!(allow.to_lowercase().contains(m), "{method} {path}: Allow {allow:?} lacks {m}");
            }
        }
    }
}
