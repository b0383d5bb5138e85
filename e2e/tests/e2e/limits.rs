//! Limits seen from a socket: an AI reply refused by the api's shared bucket reaches the sender as a
//! `rate_limited` error frame with its wait, and leaves no message behind.

use crate::helpers::*;
use rh_protocol::{ClientFrame, ServerFrame};
use rh_testkit::StackOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_over_the_reply_limit_gets_a_rate_limited_frame_and_stores_nothing() -> anyhow::Result<()> {
    let api_env = [("RH_LIMIT_USER_REPLIES_BURST", "1"), ("RH_LIMIT_USER_REPLIES_PER_MIN", "0.0007")];
    let api_env = api_env.map(|(k, v)| (k.to_owned(), v.to_owned())).into();
    let t = team(StackOptions { api_env, ..Default::default() }).await?;
    let conv = t.api.create_conversation(&t.owner, "Limited").await?;
    let mut viewer = Viewer::join(&t.stack.ws_url(), &t.owner, conv, None).await?;

    // One after the other: two sends in flight at once race for the one token.
    let send = |id: &str| ClientFrame::SendMessage {
        conversation_id: conv,
        text: "/sim tokens=2\nhello".into(),
        client_msg_id: id.into(),
        edit_of: None,
    };
    viewer.ws.send(&send("m-1")).await?;
    viewer
        .until_frame(|f| matches!(f, ServerFrame::MessageAccepted { client_msg_id, .. } if client_msg_id == "m-1"))
        .await?;
    viewer.ws.send(&send("m-2")).await?;
    let refused = viewer.until_frame(|f| matches!(f, ServerFrame::Error { .. })).await?;
    let ServerFrame::Error { code, reference, retry_after_ms, .. } = &refused else { unreachable!() };
    assert_eq!((code.as_str(), reference.as_deref()), ("rate_limited", Some("m-2")), "{refused:?}");
    assert!(retry_after_ms.is_some_and(|ms| ms > 60_000), "{refused:?}");

    // Only the first message is in the transcript once its response completed (which may have come while the
    // refusal was awaited).
    let completed = |kind: &str| kind == "response.completed";
    if !viewer.seen.iter().any(|s| completed(s.event.event.kind())) {
        viewer.until_frame(|f| matches!(f, ServerFrame::Event { event, .. } if completed(event.event.kind()))).await?;
    }
    let pg = t.stack.db.connect().await?;
    let stored = rh_testkit::eventually(WAIT, "the first message stored", || async {
        let n: i64 = pg
            .query_one("SELECT count(*) FROM messages WHERE conversation_id = $1 AND role = 'user'", &[&conv])
            .await
            .ok()?
            .get(0);
        (n >= 1).then_some(n)
    })
    .await?;
    assert_eq!(stored, 1);
    let created = viewer.seen.iter().filter(|s| s.event.event.kind() == "message.created").count();
    assert_eq!(created, 1, "the socket saw one message.created");
    Ok(())
}
