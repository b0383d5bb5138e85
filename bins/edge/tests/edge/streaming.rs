//! Catch-up then live (from memory and from JetStream), fan-out from one feed, bad frames.

use crate::helpers::*;
use rh_protocol::{ClientFrame, Event, Permission, ServerFrame};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_after_seq_then_live_without_gap_or_duplicate() -> anyhow::Result<()> {
    let env = Env::start(1).await?;
    let ada = env.user("Ada")?;
    let ben = env.user("Ben")?;
    let conv = env.conversation(&ada).await?;
    env.grant(conv, &ben, Permission::View);

    // History the client loads over HTTP covers the first ten events; twenty more are only in the stream.
    let rid = uuid::Uuid::new_v4();
    let mut early = Vec::new();
    for index in 0..30 {
        early.push(env.publish(conv, None, delta(rid, index, "a")).await?);
    }
    env.set_history(conv, early[9]);

    // Events keep being published while both sockets subscribe, replay and go live.
    let streaming = env.stream_deltas(conv, 150, Duration::from_millis(3));
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Ada subscribes without after_seq: replay starts after the history's seq.
    let mut a = env.connect(0, &ada).await?;
    let (perm, seq) = subscribe(&mut a, conv, None).await?;
    assert_eq!((perm, seq), (Permission::Owner, early[9]));

    // Ben joins later, from an older position, while the feed is already live: his replay must hand over to the
    // shared feed without losing or repeating anything.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut b = env.connect(0, &ben).await?;
    let (perm, seq) = subscribe(&mut b, conv, Some(early[2])).await?;
    assert_eq!((perm, seq), (Permission::View, early[2]));

    streaming.await??;
    let last = env.publish(conv, None, Event::ConversationDeleted {}).await?;

    let mut got_a = Received::default();
    read_until_seq(&mut a, conv, last, &mut got_a).await?;
    assert_gapless(&got_a.seqs(), &env.published_after(conv, early[9]));
    let mut got_b = Received::default();
    read_until_seq(&mut b, conv, last, &mut got_b).await?;
    assert_gapless(&got_b.seqs(), &env.published_after(conv, early[2]));

    // The event is the stored envelope, untouched.
    for (seq, event) in got_a.events.iter().chain(got_b.events.iter()) {
        assert_eq!(Some(event), env.envelope(*seq).as_ref(), "event at seq {seq}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_on_one_edge_share_one_conversation_feed() -> anyhow::Result<()> {
    let env = Env::start(1).await?;
    let ada = env.user("Ada")?;
    let ben = env.user("Ben")?;
    let conv = env.conversation(&ada).await?;
    env.grant(conv, &ben, Permission::Respond);
    let seq0 = env.publish(conv, None, delta(uuid::Uuid::new_v4(), 0, "h")).await?;

    let mut a1 = env.connect(0, &ada).await?;
    let mut a2 = env.connect(0, &ada).await?;
    let mut b = env.connect(0, &ben).await?;
    subscribe(&mut a1, conv, Some(seq0)).await?;
    subscribe(&mut a2, conv, Some(seq0)).await?;
    // Ben replays everything from the start, then joins the same feed.
    subscribe(&mut b, conv, Some(0)).await?;

    let rid = uuid::Uuid::new_v4();
    let mut seqs = Vec::new();
    for index in 0..5 {
        seqs.push(env.publish(conv, None, delta(rid, index, "x")).await?);
    }
    let last = *seqs.last().unwrap_or(&0);
    let (mut r1, mut r2, mut rb) = (Received::default(), Received::default(), Received::default());
    read_until_seq(&mut a1, conv, last, &mut r1).await?;
    read_until_seq(&mut a2, conv, last, &mut r2).await?;
    read_until_seq(&mut b, conv, last, &mut rb).await?;
    assert_gapless(&r1.seqs(), &seqs);
    assert_gapless(&r2.seqs(), &seqs);
    assert_gapless(&rb.seqs(), &env.published_after(conv, 0));

    // No JetStream consumer in this process, however many sockets and conversations: live events come from one
    // core subscription per followed conversation, and Ben's catch-up read JetStream without one.
    assert_eq!(env.conv_consumers().await?, 0);
    assert_eq!(env.metric(0, "feeds").await?, 1.0);
    assert_eq!(env.metric(0, "subscriptions").await?, 3.0);

    // The feed goes away with its last local subscriber.
    a1.send(&ClientFrame::Unsubscribe { conversation_id: conv }).await?;
    a2.close().await;
    b.close().await;
    rh_testkit::eventually(WAIT, "the feed dropped", || async {
        (env.metric(0, "feeds").await.ok()? == 0.0).then_some(())
    })
    .await?;
    assert_eq!(env.conv_consumers().await?, 0);
    // Ada's first socket is still open and answers.
    a1.send(&ClientFrame::Ping).await?;
    a1.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_an_error_and_the_subscription_keeps_streaming() -> anyhow::Result<()> {
    let env = Env::start(1).await?;
    let ada = env.user("Ada")?;
    let ben = env.user("Ben")?;
    let conv = env.conversation(&ada).await?;
    env.grant(conv, &ben, Permission::View);
    let mut ws = env.connect(0, &ben).await?;
    let (_, after) = subscribe(&mut ws, conv, None).await?;
    let streaming = env.stream_deltas(conv, 120, Duration::from_millis(10));
    let mut got = Received::default();

    ws.send_text("this is not json").await?;
    assert_eq!(expect_error(&mut ws, &mut got, conv).await?.0, "bad_request");
    ws.send_text(r#"{"type":"teleport","to":"mars"}"#).await?;
    assert_eq!(expect_error(&mut ws, &mut got, conv).await?.0, "unknown_type");
    ws.send_text(r#"{"type":"subscribe","conversation_id":"not-a-uuid"}"#).await?;
    assert_eq!(expect_error(&mut ws, &mut got, conv).await?, ("bad_request".into(), Some("not-a-uuid".into())));
    let unknown = uuid::Uuid::new_v4();
    ws.subscribe(unknown, None).await?;
    assert_eq!(expect_error(&mut ws, &mut got, conv).await?, ("not_found".into(), Some(unknown.to_string())));
    let huge = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(1024 * 1024));
    ws.send_text(&huge).await?;
    assert_eq!(expect_error(&mut ws, &mut got, conv).await?.0, "frame_too_large");
    // View only: refused at the edge, with the client's id as ref.
    ws.send(&ClientFrame::SendMessage {
        conversation_id: conv,
        text: "hi".into(),
        client_msg_id: "m1".into(),
        edit_of: None,
    })
    .await?;
    assert_eq!(expect_error(&mut ws, &mut got, conv).await?, ("forbidden".into(), Some("m1".into())));
    ws.send(&ClientFrame::Stop { conversation_id: conv, response_id: None }).await?;
    assert_eq!(expect_error(&mut ws, &mut got, conv).await?.0, "forbidden");

    // The subscription never stopped: every event arrives once, in order.
    let seqs = streaming.await??;
    let last = *seqs.last().unwrap_or(&0);
    read_until_seq(&mut ws, conv, last, &mut got).await?;
    assert_gapless(&got.seqs(), &env.published_after(conv, after));
    ws.send(&ClientFrame::Ping).await?;
    ws.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    assert_eq!(env.metric(0, "frames_refused_total{code=\"bad_request\"}").await?, 2.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_stops_reading_is_dropped_without_stalling_the_others() -> anyhow::Result<()> {
    use futures::SinkExt;
    rh_testkit::init_crypto();
    let env = Env::start_with(1, &[("RH_EDGE_SOCKET_QUEUE", "16")]).await?;
    let ada = env.user("Ada")?;
    let ben = env.user("Ben")?;
    let conv = env.conversation(&ada).await?;
    env.grant(conv, &ben, Permission::View);
    let mut reader = env.connect(0, &ada).await?;
    let (_, after) = subscribe(&mut reader, conv, None).await?;

    // Ben subscribes, then never reads again.
    let (mut stuck, _) = tokio_tungstenite::connect_async(env.request(0, &ben)?).await?;
    let sub = serde_json::to_string(&ClientFrame::Subscribe {
        conversation_id: conv,
        after_seq: None,
        compact: false,
        grant: None,
    })?;
    stuck.send(tokio_tungstenite::tungstenite::Message::Text(sub.into())).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.metric(0, "subscriptions").await?, 2.0);

    // Big events fill the kernel's socket buffers, then Ben's queue.
    let rid = uuid::Uuid::new_v4();
    let text = "z".repeat(32 * 1024);
    let read_all = async {
        let mut got = Received::default();
        let mut last = 0;
        for index in 0..400 {
            let ev = delta(rid, index, text.clone());
            last = env.publish(conv, None, ev).await?;
            // Ada keeps up.
            while got.seqs().last().copied().unwrap_or(0) + 8 < last {
                let mut batch = Received::default();
                let until = got.seqs().last().copied().unwrap_or(after);
                let want = env.published_after(conv, until);
                read_until_seq(&mut reader, conv, want[0], &mut batch).await?;
                got.events.extend(batch.events);
            }
        }
        read_until_seq(&mut reader, conv, last, &mut got).await?;
        anyhow::Ok(got)
    };
    let got = read_all.await?;
    assert_gapless(&got.seqs(), &env.published_after(conv, after));
    rh_testkit::eventually(WAIT, "the stuck socket dropped", || async {
        (env.metric(0, "slow_consumers_dropped_total").await.ok()? == 1.0
            && env.metric(0, "subscriptions").await.ok()? == 1.0)
            .then_some(())
    })
    .await?;
    drop(stuck);
    Ok(())
}
