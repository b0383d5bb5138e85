//! Catching up: late joiners from a feed's in-memory tail, positions older than the tail from JetStream, and never a
//! JetStream consumer per socket or per conversation.

use crate::helpers::*;
use rh_protocol::Permission;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiners_of_a_streaming_response_catch_up_from_memory() -> anyhow::Result<()> {
    let env = Env::start(1).await?;
    let ada = env.user("Ada")?;
    let ben = env.user("Ben")?;
    let conv = env.conversation(&ada).await?;
    env.grant(conv, &ben, Permission::View);
    // The history the web client loads covers `conversation.created`.
    let before = env.published_after(conv, 0)[0];

    // Ada watches from the start; the response streams while twenty of Ben's tabs join it halfway.
    let mut ada_ws = env.connect(0, &ada).await?;
    subscribe(&mut ada_ws, conv, None).await?;
    let streaming = env.stream_deltas(conv, 200, Duration::from_millis(2));
    env.until_published(conv, before, 100).await?;
    let stream_reads = env.metric(0, r#"catch_up_events_total{source="stream"}"#).await?;
    let mut late = Vec::new();
    for _ in 0..20 {
        let mut ws = env.connect(0, &ben).await?;
        // Like the web client: the position its HTTP history covers.
        let (_, seq) = subscribe(&mut ws, conv, None).await?;
        assert_eq!(seq, before);
        late.push(ws);
    }
    let seqs = streaming.await??;
    let last = *seqs.last().unwrap_or(&0);
    let want = env.published_after(conv, before);
    for ws in &mut late {
        let mut got = Received::default();
        read_until_seq(ws, conv, last, &mut got).await?;
        assert_gapless(&got.seqs(), &want);
    }
    let mut got = Received::default();
    read_until_seq(&mut ada_ws, conv, last, &mut got).await?;
    assert_gapless(&got.seqs(), &want);

    // Everything the late joiners missed came from the feed's memory, none from JetStream, and the edge has no
    // JetStream consumer at all (live events come from its core subscription).
    assert!(env.metric(0, r#"catch_up_events_total{source="memory"}"#).await? >= 20.0 * 100.0);
    assert_eq!(env.metric(0, r#"catch_up_events_total{source="stream"}"#).await?, stream_reads);
    assert_eq!(env.conv_consumers().await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_older_than_the_tail_is_read_from_jetstream_then_live() -> anyhow::Result<()> {
    // A tail of a few events only.
    let env = Env::start_with(1, &[("RH_EDGE_FEED_TAIL_BYTES", "2000")]).await?;
    let ada = env.user("Ada")?;
    let conv = env.conversation(&ada).await?;
    let first = env.published_after(conv, 0)[0];
    let mut watcher = env.connect(0, &ada).await?;
    subscribe(&mut watcher, conv, None).await?;
    let streaming = env.stream_deltas(conv, 120, Duration::from_millis(2));
    env.until_published(conv, first, 60).await?;

    // A socket that reconnects from the very first event: most of what it missed left the tail long ago.
    let mut back = env.connect(0, &ada).await?;
    subscribe(&mut back, conv, Some(first)).await?;
    let seqs = streaming.await??;
    let last = *seqs.last().unwrap_or(&0);
    let mut got = Received::default();
    read_until_seq(&mut back, conv, last, &mut got).await?;
    assert_gapless(&got.seqs(), &env.published_after(conv, first));
    for (seq, event) in &got.events {
        assert_eq!(Some(event), env.envelope(*seq).as_ref(), "event at seq {seq}");
    }
    assert!(env.metric(0, r#"catch_up_events_total{source="stream"}"#).await? >= 50.0);
    assert_eq!(env.conv_consumers().await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_conversations_on_one_edge_need_no_consumer() -> anyhow::Result<()> {
    // Fifty subscribes in a row are past the socket's command burst (40, then 20/s) on a fast machine: this test is
    // about fan-out, so the limit is off (tests/edge/limits cover it).
    let env = Env::start_with(1, &[("RH_EDGE_COMMANDS_BURST", "0")]).await?;
    let ada = env.user("Ada")?;
    let mut convs = Vec::new();
    for _ in 0..50 {
        convs.push(env.conversation(&ada).await?);
    }
    let mut ws = env.connect(0, &ada).await?;
    for conv in &convs {
        subscribe(&mut ws, *conv, None).await?;
    }
    let rid = uuid::Uuid::new_v4();
    let mut last = std::collections::HashMap::new();
    for index in 0..4 {
        for conv in &convs {
            let ev = delta(rid, index, format!("{index}"));
            last.insert(*conv, env.publish(*conv, None, ev).await?);
        }
    }
    // One socket, fifty conversations, events interleaved: each conversation's events arrive, in order, once.
    let mut seen: std::collections::HashMap<uuid::Uuid, Vec<u64>> = std::collections::HashMap::new();
    while seen.iter().filter(|(c, s)| s.last() == last.get(c)).count() < convs.len() {
        if let rh_protocol::ServerFrame::Event { conversation_id, seq, .. } = ws.next_frame(WAIT).await? {
            seen.entry(conversation_id).or_default().push(seq);
        }
    }
    for conv in &convs {
        let history = env.published_after(*conv, 0);
        let first_event = history[0]; // conversation.created, before the subscription
        let want: Vec<u64> = history.into_iter().filter(|s| *s > first_event).collect();
        assert_gapless(&seen[conv], &want);
    }
    assert_eq!(env.metric(0, "feeds").await?, 50.0);
    assert_eq!(env.conv_consumers().await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_a_quiet_conversation_go_live_while_others_are_busy() -> anyhow::Result<()> {
    let env = Env::start(1).await?;
    let ada = env.user("Ada")?;
    let quiet = env.conversation(&ada).await?;
    let busy = env.conversation(&ada).await?;
    let mut sockets = Vec::new();
    // Each socket subscribes after more traffic elsewhere: the quiet conversation's feed is behind the stream's
    // position with nothing of its own to send, and each subscriber must still go live.
    for round in 0..3 {
        for index in 0..5 {
            let ev = delta(uuid::Uuid::new_v4(), index, "b");
            env.publish(busy, None, ev).await?;
        }
        let mut ws = env.connect(0, &ada).await?;
        subscribe(&mut ws, quiet, None).await.map_err(|e| anyhow::anyhow!("socket {round}: {e:#}"))?;
        sockets.push(ws);
    }
    let ev = delta(uuid::Uuid::new_v4(), 0, "q");
    let seq = env.publish(quiet, None, ev).await?;
    for ws in &mut sockets {
        let mut got = Received::default();
        read_until_seq(ws, quiet, seq, &mut got).await?;
        assert_eq!(got.seqs(), [seq]);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_the_stream_no_longer_keeps_is_cannot_recover_and_a_reload_continues() -> anyhow::Result<()> {
    let env = Env::start(1).await?;
    let ada = env.user("Ada")?;
    let unchanged = env.conversation(&ada).await?;
    let conv = env.conversation(&ada).await?;
    // Ada's client saw the conversation's creation; then a response of ten deltas went by, and the history stored
    // in PostgreSQL covers it.
    let seen_up_to = env.published_after(conv, 0)[0];
    let rid = uuid::Uuid::new_v4();
    let mut last = 0;
    for index in 0..10 {
        last = env.publish(conv, None, delta(rid, index, "x")).await?;
    }
    env.set_history(conv, last);
    // Retention drops everything but the last five events.
    let stream = env.js.get_stream(rh_protocol::subjects::STREAM_CONV).await?;
    stream.purge().sequence(last - 4).await?;

    // Her client comes back from its old position: told to reload, sent nothing partial.
    let mut ws = env.connect(0, &ada).await?;
    ws.subscribe(conv, Some(seen_up_to)).await?;
    let mut got = Received::default();
    let (code, reference) = expect_error(&mut ws, &mut got, conv).await?;
    assert_eq!(code, "cannot_recover");
    assert_eq!(reference, Some(conv.to_string()));
    assert!(got.events.is_empty(), "events sent before cannot_recover: {:?}", got.seqs());

    // It reloads the history (covering `last`) and subscribes from there on the same socket: live again.
    subscribe(&mut ws, conv, Some(last)).await?;
    let next = env.publish(conv, None, delta(rid, 10, "y")).await?;
    let mut got = Received::default();
    read_until_seq(&mut ws, conv, next, &mut got).await?;
    assert_eq!(got.seqs(), [next]);

    // A conversation that did not change since the client's position continues without a reload, although the
    // stream dropped other conversations' events after that position.
    let unchanged_at = env.published_after(unchanged, 0)[0];
    assert!(unchanged_at + 1 < last - 4);
    subscribe(&mut ws, unchanged, Some(unchanged_at)).await?;
    let next = env.publish(unchanged, None, delta(uuid::Uuid::new_v4(), 0, "z")).await?;
    let mut got = Received::default();
    read_until_seq(&mut ws, unchanged, next, &mut got).await?;
    assert_eq!(got.seqs(), [next]);
    Ok(())
}
