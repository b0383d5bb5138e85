//! Interest-based fan-in: an edge takes in from NATS only what its sockets follow, and stays gapless when its
//! live subscriptions lose messages.

use crate::helpers::*;
use std::collections::HashMap;
use uuid::Uuid;

const EDGES: usize = 4;
const CONVERSATIONS: usize = 40;
const DELTAS: u32 = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_edge_takes_in_only_the_conversations_its_sockets_follow() -> anyhow::Result<()> {
    let env = Env::start(EDGES).await?;
    let ada = env.user("Ada")?;
    let mut convs = Vec::new();
    for _ in 0..CONVERSATIONS {
        convs.push(env.conversation(&ada).await?);
    }
    // Edge i has one socket following its quarter of the conversations.
    let quarter = CONVERSATIONS / EDGES;
    let mut sockets = Vec::new();
    for (edge, mine) in convs.chunks(quarter).enumerate() {
        let mut ws = env.connect(edge, &ada).await?;
        for conv in mine {
            subscribe(&mut ws, *conv, None).await?;
        }
        sockets.push(ws);
    }
    let mut before = Vec::new();
    for edge in 0..EDGES {
        before.push(env.metric(edge, "nats_messages_in_total").await?);
    }

    // All forty conversations stream a response at once, their deltas interleaved in the stream.
    let mut last = HashMap::new();
    for index in 0..DELTAS {
        for (n, conv) in convs.iter().enumerate() {
            let rid = Uuid::from_u128(n as u128 + 1);
            last.insert(*conv, env.publish(*conv, None, delta(rid, index, format!("{index} "))).await?);
        }
    }
    let total = f64::from(DELTAS) * CONVERSATIONS as f64;

    for (edge, (ws, mine)) in sockets.iter_mut().zip(convs.chunks(quarter)).enumerate() {
        // Every socket gets all of its conversations' events, in order, once.
        let mut seen: HashMap<Uuid, Vec<u64>> = HashMap::new();
        while mine.iter().any(|c| seen.get(c).and_then(|s| s.last()) != last.get(c)) {
            if let rh_protocol::ServerFrame::Event { conversation_id, seq, .. } = ws.next_frame(WAIT).await? {
                seen.entry(conversation_id).or_default().push(seq);
            }
        }
        for conv in mine {
            let created = env.published_after(*conv, 0)[0];
            assert_gapless(&seen[conv], &env.published_after(*conv, created));
        }
        // What this edge took in from NATS: its quarter of the events, plus a little presence and control traffic;
        // a tap over every conversation would have taken in all `total` of them.
        let got = env.metric(edge, "nats_messages_in_total").await? - before[edge];
        let own = total / EDGES as f64;
        println!("edge {edge}: {got} NATS messages in, of {total} events ({own} its own)");
        assert!(got >= own, "edge {edge} took in {got}, fewer than its {own} events");
        assert!(got < 0.35 * total, "edge {edge} took in {got} of {total}: not interest-based");
        assert_eq!(env.metric(edge, "events_in_total").await?, own, "edge {edge} got events it does not follow");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_stream_loses_nothing() -> anyhow::Result<()> {
    let mut env = Env::start(1).await?;
    let ada = env.user("Ada")?;
    let conv = env.conversation(&ada).await?;
    let mut ws = env.connect(0, &ada).await?;
    let (_, from) = subscribe(&mut ws, conv, None).await?;
    let rid = Uuid::new_v4();
    let mut last = 0;
    for index in 0..10 {
        last = env.publish(conv, None, delta(rid, index, "a")).await?;
    }
    let mut got = Received::default();
    read_until_seq(&mut ws, conv, last, &mut got).await?;
    // The server restarts; the edge reconnects and re-subscribes on its own, while the response goes on: what was
    // published before the edge's subscription was back is not republished to it, and it must repair that from the
    // stream.
    env.nats.restart().await?;
    for index in 10..30 {
        // Retried with the same event (same `Nats-Msg-Id`) while the test's own client reconnects: stored once.
        let event = rh_protocol::Envelope::new(conv, None, delta(rid, index, "b"));
        last = rh_testkit::eventually(WAIT, "publishing after the restart", || async {
            rh_bus::publish_event_acked(&env.js, &event).await.ok()
        })
        .await?;
        env.published.lock().unwrap().insert(last, event);
    }
    read_until_seq(&mut ws, conv, last, &mut got).await?;
    assert_gapless(&got.seqs(), &env.published_after(conv, from));
    assert!(env.metric(0, "live_repairs_total").await? >= 1.0);
    Ok(())
}

/// The measurement behind the choice of republish + core subscriptions over a filtered JetStream consumer per edge
/// (`docs/edge-fanout.md`): what an interest change costs each way as an edge follows more conversations, and how
/// fast each delivers a quarter of the traffic. Ignored by default (a benchmark, not a check):
/// `cargo test -p edge --test edge bench_fan_in -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_fan_in() -> anyhow::Result<()> {
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, push};
    use futures::StreamExt;
    use rh_protocol::subjects;
    use std::time::Instant;
    let n: usize = std::env::var("RH_BENCH_CONVERSATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let env = Env::start(0).await?;
    let client = env.nats.client().await?;
    let convs: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();

    // Interest changes, core: one SUB each, confirmed by a flush (what a new feed does).
    let t = Instant::now();
    let mut subs = Vec::new();
    for conv in &convs {
        subs.push(client.subscribe(subjects::live_conv_all(*conv)).await?);
        client.flush().await?;
    }
    let core_us = t.elapsed().as_micros() as f64 / n as f64;
    drop(subs);

    // Interest changes, filtered consumer: one consumer update per added conversation.
    let inbox = client.new_inbox();
    let config = |filters: Vec<String>| push::Config {
        deliver_subject: inbox.clone(),
        durable_name: Some("bench".into()),
        filter_subjects: filters,
        ack_policy: AckPolicy::None,
        deliver_policy: DeliverPolicy::New,
        ..Default::default()
    };
    env.js.create_consumer_on_stream(config(vec![subjects::conv_all(convs[0])]), subjects::STREAM_CONV).await?;
    let t = Instant::now();
    let mut last_100 = Instant::now();
    for i in 1..n {
        if i == n.saturating_sub(100) {
            last_100 = Instant::now();
        }
        let filters = convs[..=i].iter().map(|c| subjects::conv_all(*c)).collect();
        env.js.update_consumer_on_stream(config(filters), subjects::STREAM_CONV).await?;
    }
    let update_us = t.elapsed().as_micros() as f64 / (n - 1) as f64;
    let update_last_us = last_100.elapsed().as_micros() as f64 / 100.0;
    env.js.delete_consumer_from_stream("bench", subjects::STREAM_CONV).await?;

    // Delivery of a quarter of the traffic: core subscriptions vs one consumer filtered to that quarter.
    let quarter = &convs[..n / 4];
    let core = futures::stream::select_all(
        futures::future::try_join_all(quarter.iter().map(|c| client.subscribe(subjects::live_conv_all(*c)))).await?,
    );
    let filters = quarter.iter().map(|c| subjects::conv_all(*c)).collect();
    let consumer: async_nats::jetstream::consumer::Consumer<push::Config> =
        env.js.create_consumer_on_stream(config(filters), subjects::STREAM_CONV).await?;
    let pushed = consumer.messages().await?;
    client.flush().await?;
    let per = 20usize;
    let want = quarter.len() * per;
    let t = Instant::now();
    let core_done = tokio::spawn(async move {
        core.take(want).count().await;
        t.elapsed()
    });
    let consumer_done = tokio::spawn(async move {
        pushed.take(want).count().await;
        t.elapsed()
    });
    for round in 0..per {
        let mut acks = Vec::new();
        for conv in &convs {
            let e = rh_protocol::Envelope::new(*conv, None, delta(Uuid::nil(), round as u32, "x"));
            acks.push(rh_bus::publish_event(&env.js, &e).await?);
        }
        for a in acks {
            a.await?;
        }
    }
    let published = t.elapsed();
    let core_time = core_done.await?;
    let consumer_time = consumer_done.await?;
    println!(
        "{n} conversations: interest change core SUB+flush {core_us:.0} µs; consumer update {update_us:.0} µs on \
         average, {update_last_us:.0} µs with ~{n} filters. Delivery of {want} of {} events (published in \
         {published:?}): core {core_time:?}, filtered consumer {consumer_time:?}",
        n * per
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_refuses_a_conversation_stream_that_does_not_republish() -> anyhow::Result<()> {
    // RH_CONV as an older version created it: no republish, so a feed would never hear a live event.
    let nats = rh_testkit::NatsServer::start().await?;
    let js = async_nats::jetstream::new(nats.client().await?);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: rh_protocol::subjects::STREAM_CONV.into(),
        subjects: vec![rh_protocol::subjects::STREAM_CONV_SUBJECTS.into()],
        ..Default::default()
    })
    .await?;
    let vars = [
        ("RH_NATS_URL", nats.url()),
        ("RH_JWT_SECRET", "an-edge-test-secret-of-32-bytes-or-more"),
        ("RH_EDGE_LISTEN", "127.0.0.1:0"),
        ("RUST_BACKTRACE", "0"),
        ("RUST_LIB_BACKTRACE", "0"),
    ];
    let Err(refused) = rh_testkit::Service::spawn("edge", &vars).await else {
        anyhow::bail!("the edge started on a stream without the live republish");
    };
    let why = format!("{refused:#}");
    assert!(why.contains("nats stream edit RH_CONV"), "the operator is told what to do: {why}");
    Ok(())
}
