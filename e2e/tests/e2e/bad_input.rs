//! Bad input on the socket gets an `error` frame, and the connection's other subscriptions keep streaming.

use crate::helpers::*;
use rh_protocol::ServerFrame;
use rh_testkit::StackOptions;

impl Viewer {
    /// Reads until an `error` frame (recording events meanwhile) and returns its code and ref.
    async fn expect_error(&mut self) -> anyhow::Result<(String, Option<String>)> {
        loop {
            let f = self.ws.next_frame(WAIT).await?;
            match f {
                ServerFrame::Error { code, reference, .. } => return Ok((code, reference)),
                ServerFrame::Event { conversation_id, seq, event } if conversation_id == self.conversation => {
                    self.seen.push(Seen { seq, event })
                }
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_frames_get_errors_and_other_subscriptions_keep_streaming() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let other_org = t
        .api
        .sign_up("Globex", "Gil", &format!("gil-{}@globex.test", uuid::Uuid::new_v4().simple()), "pw-gil-123456")
        .await?;
    let foreign = t.api.create_conversation(&other_org, "Not yours").await?;

    let conv = t.api.create_conversation(&t.owner, "Robust").await?;
    let h = history_seq(&t.api, &t.owner, conv).await?;
    let mut v = Viewer::join(&t.stack.ws_url(), &t.owner, conv, Some(h)).await?;
    let rid = response_id(&t.api.send_message(&t.owner, conv, "/sim tokens=150 rate=40\nkeep streaming").await?)?;
    v.until_deltas(rid, 3).await?;

    v.ws.send_text("this is not json").await?;
    assert_eq!(v.expect_error().await?.0, "bad_request");

    v.ws.send_text(r#"{"type":"teleport","to":"mars"}"#).await?;
    assert_eq!(v.expect_error().await?.0, "unknown_type");

    v.ws.send_text(r#"{"type":"subscribe","conversation_id":"not-a-uuid"}"#).await?;
    assert_eq!(v.expect_error().await?.0, "bad_request");

    let unknown = uuid::Uuid::new_v4();
    v.ws.subscribe(unknown, None).await?;
    let (code, reference) = v.expect_error().await?;
    assert_eq!(code, "not_found");
    assert_eq!(reference.as_deref(), Some(unknown.to_string().as_str()));

    v.ws.subscribe(foreign, None).await?;
    let (code, _) = v.expect_error().await?;
    assert_eq!(code, "not_found", "another org's conversation is invisible");

    let huge = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(1024 * 1024));
    v.ws.send_text(&huge).await?;
    assert_eq!(v.expect_error().await?.0, "frame_too_large");

    // The original subscription never stopped: the response arrives whole, without gaps or duplicates.
    let before = v.seen.len();
    v.until_response_end(rid).await?;
    assert!(v.seen.len() > before, "events kept arriving after the bad frames");
    let text = check_response(&v.seen, rid)?;
    assert_eq!(stored_response(&t.api, &t.owner, conv, rid).await?, text);

    // And the connection still answers.
    v.ws.send(&rh_protocol::ClientFrame::Ping).await?;
    v.ws.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    Ok(())
}
