//! The web client in a real headless Chromium: `web/tests/e2e.mjs` (Playwright) drives two teammates through
//! sharing, live streaming, an upgrade and a removal against this stack; `web/tests/sso.mjs` signs a new person in
//! through a real OpenID Connect provider's own login page (`e2e/oidc/provider.mjs`, started here) and sees an
//! email of another domain refused; then `web/tests/stuck.mjs` takes three people through a paused worker and a
//! paused edge (it gets their pids), delete vs revoke, sign-out across tabs and the keyboard / axe-core checks.
//! Screenshots of every step land in `target/web-artifacts/`. `web/tests/run.sh` installs Node, Chromium and the
//! npm packages when missing. The client's pure parts (the conversation reducer) have unit tests of their own, run
//! first and also alone by `web_client_unit_tests`.

use crate::oidc::{CLIENT, Provider};
use rh_testkit::{Service, Stack, StackOptions};
use std::path::{Path, PathBuf};

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
    let (web, provider) = web_replica(&stack, &web_dir, &[wait, busy]).await?;
    let artifacts = root.join("target/web-artifacts");
    let pid = |s: Option<&Service>| s.and_then(Service::pid).map(|p| p.to_string()).unwrap_or_default();
    let out = tokio::process::Command::new("bash")
        .arg(web_dir.join("tests/run.sh"))
        .env("RH_APP_URL", web.http_url())
        .env("RH_WORKER_PID", pid(stack.workers.first()))
        .env("RH_EDGE_PID", pid(stack.edges.first()))
        .env("RH_ARTIFACTS_DIR", &artifacts)
        .env("RH_OIDC_ISSUER", &provider.issuer)
        .env("RH_OIDC_CLIENT_ID", CLIENT.0)
        .env("RH_OIDC_CLIENT_SECRET", CLIENT.1)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "web client scenario failed ({}):\n{stdout}\n{stderr}", out.status);
    let shots: Vec<String> = std::fs::read_dir(&artifacts)?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(shots.len() >= 5, "a screenshot of each step in {}", artifacts.display());
    assert!(shots.iter().any(|f| f.ends_with("sso-signed-in.png")), "sso.mjs ran: {shots:?}");
    Ok(())
}

/// A second api replica that serves the web client and tells browsers where the edge is (any api replica can serve
/// any request: they share PostgreSQL and NATS), and the OIDC provider that sends people back to it. Its public URL
/// (the SSO redirect URI) names its port, so the port is picked before it starts; should another process take the
/// port first, the replica fails to bind and another port is picked.
async fn web_replica(stack: &Stack, web_dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<(Service, Provider)> {
    let ws_url = stack.ws_url();
    let mut failed = None;
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let (listen, public_url) = (format!("127.0.0.1:{port}"), format!("http://127.0.0.1:{port}"));
        let mut all = vec![
            ("RH_NATS_URL", stack.nats.url()),
            ("RH_DATABASE_URL", stack.db.url()),
            ("RH_JWT_SECRET", stack.jwt_secret()),
            ("RH_API_LISTEN", &listen),
            ("RH_WEB_DIR", web_dir.to_str().unwrap_or("web")),
            ("RH_PUBLIC_WS_URL", &ws_url),
            ("RH_PUBLIC_URL", &public_url),
            ("RH_SSO_ALLOWED_ISSUERS", "http://127.0.0.1:"),
        ];
        all.extend_from_slice(env);
        match Service::spawn("api", &all).await {
            Ok(web) => return Ok((web, Provider::start_for(&public_url).await?)),
            Err(e) => failed = Some(e),
        }
    }
    Err(failed.unwrap_or_else(|| anyhow::anyhow!("the web replica did not start")))
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
