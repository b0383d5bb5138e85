//! Commands per socket per second: a small burst that does not refill during the test, so which frame is
//! refused never depends on the clock.

use crate::helpers::*;
use rh_protocol::{ClientFrame, ServerFrame};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_past_its_command_burst_gets_rate_limited_frames_and_others_do_not() -> anyhow::Result<()> {
    rh_testkit::init_crypto();
    let env = Env::start_with(2, &[("RH_EDGE_COMMANDS_BURST", "3"), ("RH_EDGE_COMMANDS_PER_SEC", "0.0001")]).await?;
    let ada = env.user("Ada")?;
    let mut ws = env.connect(0, &ada).await?;
    for _ in 0..5 {
        ws.send(&ClientFrame::Ping).await?;
    }
    let mut frames = Vec::new();
    for _ in 0..5 {
        frames.push(ws.next_frame(WAIT).await?);
    }
    assert!(frames[..3].iter().all(|f| matches!(f, ServerFrame::Pong)), "{frames:?}");
    for f in &frames[3..] {
        let ServerFrame::Error { code, retry_after_ms, .. } = f else { panic!("{f:?}") };
        assert_eq!(code, "rate_limited");
        assert!(retry_after_ms.is_some_and(|ms| ms > 1000), "{f:?}");
    }
    assert_eq!(env.metric(0, "frames_refused_total{code=\"rate_limited\"}").await?, 2.0);

    // The limit is the socket's: Ada's other socket, on this edge or the other, still gets answers.
    for edge in [0, 1] {
        let mut other = env.connect(edge, &ada).await?;
        other.send(&ClientFrame::Ping).await?;
        other.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    }
    Ok(())
}
