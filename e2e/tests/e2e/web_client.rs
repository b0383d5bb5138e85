//! The web client in a real headless Chromium: `web/tests/e2e.mjs` (Playwright) drives two teammates through
//! sharing, live streaming, an upgrade and a removal against this stack; then `web/tests/stuck.mjs` takes three
//! people through a paused worker and a paused edge (it gets their pids), delete vs revoke, sign-out across tabs
//! and the keyboard / axe-core checks. Screenshots of every step land in `target/web-artifacts/`.
//! `web/tests/run.sh` installs Node, Chromium and the npm packages when missing. The client's pure parts (the
//! conversation reducer) have unit tests of their own, run first and also alone by `web_client_unit_tests`.

use rh_testkit::{Service, Stack, StackOptions};
use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_teammates_in_a_browser_share_watch_upgrade_and_remove() -> anyhow::Result<()> {
    // stuck.mjs waits for the "AI unavailable" state: a short wait keeps it quick.
    let wait = ("RH_AI_WAIT_SECS", "3");
    // e2e.mjs meets this limit: a fourth answer at once in one conversation is refused.
    let busy = ("RH_LIMIT_CONVERSATION_RESPONSES", "3");
    let api_env = [wait, busy].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
    let options = StackOptions { api_env, ..StackOptions::default() };
    let stack = Stack::start(options).await?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let web_dir = root.join("web");
    let ws_url = stack.ws_url();
    // A second api replica serves the web client and tells browsers where the edge is (any api replica can
    // serve any request: they share PostgreSQL and NATS).
    let web = Service::spawn(
        "api",
        &[
            ("RH_NATS_URL", stack.nats.url()),
            ("RH_DATABASE_URL", stack.db.url()),
            ("RH_JWT_SECRET", stack.jwt_secret()),
            ("RH_API_LISTEN", "127.0.0.1:0"),
            ("RH_WEB_DIR", web_dir.to_str().unwrap_or("web")),
            ("RH_PUBLIC_WS_URL", &ws_url),
            wait,
            busy,
        ],
    )
    .await?;
    let artifacts = root.join("target/web-artifacts");
    let pid = |s: Option<&Service>| s.and_then(Service::pid).map(|p| p.to_string()).unwrap_or_default();
    let out = tokio::process::Command::new("bash")
        .arg(web_dir.join("tests/run.sh"))
        .env("RH_APP_URL", web.http_url())
        .env("RH_WORKER_PID", pid(stack.workers.first()))
        .env("RH_EDGE_PID", pid(stack.edges.first()))
        .env("RH_ARTIFACTS_DIR", &artifacts)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "web client scenario failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(std::fs::read_dir(&artifacts)?.count() >= 5, "a screenshot of each step in {}", artifacts.display());
    Ok(())
}

/// `node --test web/tests/unit/`: the conversation reducer (`web/js/conversation/state.js`), no browser or stack.
#[tokio::test]
async fn web_client_unit_tests() -> anyhow::Result<()> {
    let run = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web/tests/run.sh");
    let out = tokio::process::Command::new("bash").arg(run).arg("unit").output().await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "web client unit tests failed ({}):\n{stdout}\n{stderr}", out.status);
    Ok(())
}
