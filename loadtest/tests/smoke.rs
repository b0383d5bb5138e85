//! A small scenario against the real stack (nats-server, PostgreSQL, api, edge, audit, worker as processes):
//! a few hundred viewers, late joiners and churn, run in-process through `loadtest::run`. It asserts what the
//! tool is for — every viewer saw every response, in order, without gap or duplicate, with the right text — and
//! never a time.

mod common;

use common::{Crowd, nats_with_websocket};
use loadtest::{Baseline, PhaseReport};
use rh_testkit::{Service, TestDb};

/// [`common::assert_clean`], and every response ended, with deliveries and latencies measured.
fn assert_clean(p: &PhaseReport, sockets: u64) {
    common::assert_clean(p, sockets);
    assert_eq!(p.responses_ended, p.responses_sent);
    assert!(p.deliveries > 0);
    assert!(p.latency_us.count > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_crowd_sees_every_response_exactly_once() -> anyhow::Result<()> {
    let crowd = Crowd { conversations: 3, viewers: 100, viewer_users: 5, messages: 2, tokens: 60 };
    let (stack, mut cfg) = crowd.on_stack().await?;
    cfg.responders = 1;
    cfg.late_joiners = 7;
    cfg.join_after_tokens = 10;
    cfg.churn = 0.1;
    cfg.churn_pause = std::time::Duration::from_millis(50);
    cfg.idle_connections = 20;
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
    let (nats, nats_ws) = nats_with_websocket().await?;
    nats.jetstream().await?;

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

    let crowd = Crowd { conversations: 2, viewers: 50, viewer_users: 3, messages: 1, tokens: 30 };
    let mut cfg = crowd.config(api.http_url(), format!("ws://{}/ws", edge.addr()));
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
