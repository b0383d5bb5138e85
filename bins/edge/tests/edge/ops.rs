//! Authentication before the upgrade, the ops endpoints on the same port, graceful shutdown.

use crate::helpers::*;
use futures::{SinkExt, StreamExt};
use rh_protocol::{ClientFrame, ServerFrame};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

async fn upgrade_status(url: &str, bearer: Option<&str>) -> anyhow::Result<u16> {
    let mut req = url.into_client_request()?;
    if let Some(t) = bearer {
        req.headers_mut().insert("authorization", format!("Bearer {t}").parse()?);
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, resp)) => {
            let _ = ws.close(None).await;
            Ok(resp.status().as_u16())
        }
        Err(tungstenite::Error::Http(resp)) => Ok(resp.status().as_u16()),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_missing_token_is_401_and_ops_endpoints_answer() -> anyhow::Result<()> {
    rh_testkit::init_crypto();
    let env = Env::start(1).await?;
    let url = env.ws_url(0);
    assert_eq!(upgrade_status(&url, None).await?, 401);
    assert_eq!(upgrade_status(&format!("{url}?token=not-a-token"), None).await?, 401);
    assert_eq!(upgrade_status(&url, Some("not-a-token")).await?, 401);
    // A token signed with another key.
    let other = rh_auth::TokenKeys::new(&rh_auth::Secret::new("another-secret"));
    let claims = rh_auth::Claims {
        sub: uuid::Uuid::new_v4(),
        org: uuid::Uuid::nil(),
        name: "Mallory".into(),
        email: "m@evil.test".into(),
        role: rh_auth::Role::Member,
        sid: uuid::Uuid::new_v4(),
        exp: rh_auth::expiry_in(3600),
    };
    assert_eq!(upgrade_status(&url, Some(&other.issue(&claims)?)).await?, 401);
    // A token in the URL is not looked at (URLs end up in logs); an unknown ticket is refused.
    let ada = env.user("Ada")?;
    assert_eq!(upgrade_status(&format!("{url}?token={}", ada.token), None).await?, 401);
    assert_eq!(upgrade_status(&format!("{url}?ticket=not-a-ticket"), None).await?, 401);

    // The Authorization header.
    assert_eq!(upgrade_status(&url, Some(&ada.token)).await?, 101);
    let mut ws = env.connect(0, &ada).await?;
    ws.send(&ClientFrame::Ping).await?;
    ws.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;

    let base = env.edges[0].http_url();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = reqwest::get(format!("{base}{path}")).await?;
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    assert_eq!(env.metric(0, "connections").await?, 1.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_sockets_to_go_away() -> anyhow::Result<()> {
    rh_testkit::init_crypto();
    let mut env = Env::start(1).await?;
    let ada = env.user("Ada")?;
    let (mut ws, _) = tokio_tungstenite::connect_async(env.request(0, &ada)?).await?;
    ws.send(tungstenite::Message::Text(serde_json::to_string(&ClientFrame::Ping)?.into())).await?;
    let edge = &mut env.edges[0];
    let terminate = edge.terminate(Duration::from_secs(10));
    let read = async {
        while let Some(msg) = ws.next().await {
            if let tungstenite::Message::Close(Some(c)) = msg? {
                return Ok::<_, anyhow::Error>(Some(u16::from(c.code)));
            }
        }
        Ok(None)
    };
    let (_, code) = tokio::join!(terminate, read);
    assert_eq!(code?, Some(1001), "close code going away");
    Ok(())
}

/// Resident memory per idle connection (target: < 20 KiB). Opens `RH_EDGE_IDLE_SOCKETS` (default 3000) sockets,
/// each of a distinct user (so each has its own inbox subscription), and compares the edge's RSS before and after.
/// Ignored by default (it opens thousands of sockets): `cargo test -p edge --test edge idle -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn idle_connection_memory() -> anyhow::Result<()> {
    let env = Env::start(1).await?;
    let n: usize = std::env::var("RH_EDGE_IDLE_SOCKETS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    let pid = env.edges[0].pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let rss = || -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
        Ok(line.split_whitespace().nth(1).unwrap_or("0").parse::<u64>()? * 1024)
    };
    // Warm up allocator and runtime with a few sockets first.
    let mut sockets = Vec::new();
    for _ in 0..50 {
        sockets.push(env.connect(0, &env.user("Warm")?).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss()?;
    let same = std::env::var_os("RH_EDGE_IDLE_SAME_USER").is_some();
    let one = env.user("Same")?;
    for i in 0..n {
        let own;
        let u = if same {
            &one
        } else {
            own = env.user(&format!("User{i}"))?;
            &own
        };
        sockets.push(env.connect(0, u).await?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss()?;
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    println!("idle sockets: {n}, RSS {before} -> {after} bytes, {per:.0} bytes per connection");
    assert_eq!(env.metric(0, "connections").await?, (n + 50) as f64);
    assert!(per < 20.0 * 1024.0, "{per:.0} bytes per idle connection");
    Ok(())
}
