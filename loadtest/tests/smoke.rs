//! A small scenario against the real stack (nats-server, PostgreSQL, api, edge, audit, worker as processes):
//! a few hundred viewers, late joiners and churn, run in-process through `loadtest::run`. It asserts what the
//! tool is for — every viewer saw every response, in order, without gap or duplicate, with the right text — and
//! never a time.

use loadtest::{Baseline, Config, PhaseReport};
use rh_testkit::{NatsServer, Service, Stack, StackOptions, TestDb};

fn assert_clean(p: &PhaseReport, sockets: u64) {
    assert_eq!(p.violation_total, 0, "violations: {:?}\n{:#?}", p.violations, p.violation_samples);
    assert_eq!(p.error_total, 0, "errors: {:?}", p.errors);
    assert_eq!(p.sockets.failed, 0);
    assert_eq!(p.viewers_checked, sockets, "every socket was checked");
    assert_eq!(p.viewers_all_completed, p.viewers_checked, "every viewer saw every response it should see completed");
    assert!(p.completions_expected > 0);
    assert_eq!(p.completions_ok, p.completions_expected);
    assert_eq!(p.responses_ended, p.responses_sent);
    assert!(p.deliveries > 0);
    assert!(p.latency_us.count > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_crowd_sees_every_response_exactly_once() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::default()).await?;
    let mut cfg = Config::new(stack.api.http_url(), vec![stack.ws_url()]);
    cfg.conversations = 3;
    cfg.viewers_per_conversation = 100;
    cfg.responders = 1;
    cfg.messages = 2;
    cfg.tokens = 60;
    cfg.rate = 100.0;
    cfg.late_joiners = 7;
    cfg.join_after_tokens = 10;
    cfg.churn = 0.1;
    cfg.churn_pause = std::time::Duration::from_millis(50);
    cfg.idle_connections = 20;
    cfg.viewer_users = 5;
    cfg.edge_pid = stack.edges[0].pid().into_iter().collect();
    let report_path = std::env::temp_dir().join(format!("loadtest-smoke-{}.json", uuid::Uuid::new_v4()));
    cfg.report = Some(report_path.clone());

    let report = loadtest::run(cfg).await?;
    println!("{}", report.summary());
    assert_eq!(report.phases.len(), 1);
    let edge = &report.phases[0];
    assert_eq!(edge.transport, "edge");
    assert_clean(edge, 3 + 300 + 21);
    assert_eq!(edge.responses_sent, 6);
    assert_eq!(edge.sockets.late_joiners, 21);
    assert_eq!(edge.sockets.subscribed, 3 + 300 + 21 + 20);
    assert!(edge.sockets.reconnects >= 30, "churning viewers reconnected: {}", edge.sockets.reconnects);
    assert!(edge.memory.as_ref().is_some_and(|m| m.rss_before_kib > 0), "edge memory was read");
    assert!(report.passed);

    // The JSON report says the same.
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_path)?)?;
    assert_eq!(json["passed"], true);
    assert_eq!(json["phases"][0]["violation_total"], 0);
    let _ = std::fs::remove_file(report_path);
    Ok(())
}

/// The baseline phase needs nats-server's WebSocket listener, which `Stack` does not open: this test wires the
/// same processes by hand around a nats-server started with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nats_ws_baseline_runs_beside_the_edge() -> anyhow::Result<()> {
    let nats =
        NatsServer::start_with_config(Some("websocket {\n  host: 127.0.0.1\n  port: -1\n  no_tls: true\n}\n")).await?;
    nats.jetstream().await?;
    let ws_port_file = std::fs::read_dir(nats.dir())?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))
        .ok_or_else(|| anyhow::anyhow!("no ports file"))?;
    let ports: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ws_port_file.path())?)?;
    let nats_ws =
        ports["websocket"][0].as_str().ok_or_else(|| anyhow::anyhow!("no websocket port in {ports}"))?.to_owned();

    let db = TestDb::create().await?;
    let secret = format!("smoke-{}", uuid::Uuid::new_v4());
    let api = Service::spawn(
        "api",
        &[
            ("RH_NATS_URL", nats.url()),
            ("RH_DATABASE_URL", db.url()),
            ("RH_JWT_SECRET", &secret),
            ("RH_API_LISTEN", "127.0.0.1:0"),
        ],
    )
    .await?;
    let edge = Service::spawn(
        "edge",
        &[("RH_NATS_URL", nats.url()), ("RH_JWT_SECRET", &secret), ("RH_EDGE_LISTEN", "127.0.0.1:0")],
    )
    .await?;
    let _audit = Service::spawn(
        "audit",
        &[("RH_NATS_URL", nats.url()), ("RH_DATABASE_URL", db.url()), ("RH_AUDIT_OPS_LISTEN", "127.0.0.1:0")],
    )
    .await?;
    let _worker =
        Service::spawn("worker", &[("RH_NATS_URL", nats.url()), ("RH_WORKER_OPS_LISTEN", "127.0.0.1:0")]).await?;

    let mut cfg = Config::new(api.http_url(), vec![format!("ws://{}/ws", edge.addr())]);
    cfg.conversations = 2;
    cfg.viewers_per_conversation = 50;
    cfg.tokens = 30;
    cfg.rate = 100.0;
    cfg.viewer_users = 3;
    cfg.baseline = vec![Baseline::NatsWs];
    cfg.nats_ws_url = nats_ws.replace("wss://", "ws://");
    let (user, password) = nats.admin_login();
    cfg.nats_ws_user = Some(user.into());
    cfg.nats_ws_password = Some(rh_auth::Secret::new(password));
    let report = loadtest::run(cfg).await?;
    println!("{}", report.summary());
    assert_eq!(report.phases.len(), 2);
    assert_clean(&report.phases[0], 2 + 100);
    assert_eq!(report.phases[1].transport, "nats-ws");
    assert_clean(&report.phases[1], 2 + 100);
    assert_eq!(report.comparisons.len(), 1);
    assert!(report.passed);
    Ok(())
}
