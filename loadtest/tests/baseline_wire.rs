//! The nats-ws baseline client against a real nats-server with its WebSocket listener: events published to
//! JetStream (with a `Nats-Msg-Id` header, as the api and worker publish them) reach a subscriber of
//! `rh.conv.<id>.*` as plain envelopes, in order, split into WebSocket frames however the server likes.

mod common;

use common::nats_with_websocket;
use loadtest::baseline::{NatsLogin, NatsWs};
use loadtest::check::{Checker, WireEvent};
use loadtest::net::{Net, Target};
use rh_protocol::{Envelope, Event};
use std::time::Duration;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_published_to_jetstream_reach_a_nats_ws_subscriber() -> anyhow::Result<()> {
    let (nats, url) = nats_with_websocket().await?;
    let js = nats.jetstream().await?;

    let conv = Uuid::new_v4();
    let other = Uuid::new_v4();
    let net = Net::new(4, 4096);
    let target = Target::resolve(&url).await?;
    let (user, password) = nats.admin_login();
    let login = NatsLogin { user: user.into(), password: password.into() };
    let (mut sub, _, _) = NatsWs::connect(&net, &target, Some(&login), conv, false).await?;

    let rid = Uuid::new_v4();
    let mut events = vec![Event::ResponseStarted {
        response_id: rid,
        message_id: Uuid::new_v4(),
        model: "sim-1".into(),
        attempt: 1,
    }];
    let mut text = String::new();
    for i in 0..200u32 {
        let t = format!("tok{i}\r\n \"q\" ");
        text.push_str(&t);
        events.push(Event::ResponseDelta { response_id: rid, attempt: 1, index: i, text: t, from_index: None });
    }
    events.push(Event::ResponseCompleted { response_id: rid, attempt: 1, model: "sim-1".into(), text });
    let mut acks = Vec::new();
    for e in events {
        // Noise on another conversation must not arrive.
        let noise = Envelope::new(other, None, Event::ConversationDeleted {});
        acks.push(js.publish(noise.subject(), serde_json::to_vec(&noise)?.into()).await?);
        let env = Envelope::new(conv, None, e);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", env.event_id.to_string().as_str());
        acks.push(js.publish_with_headers(env.subject(), headers, serde_json::to_vec(&env)?.into()).await?);
    }
    for a in acks {
        a.await?;
    }

    let mut checker = Checker::default();
    let mut n = 0;
    while n < 202 {
        let payload = tokio::time::timeout(Duration::from_secs(10), sub.next_payload()).await??;
        let ev: WireEvent = serde_json::from_slice(&payload)?;
        let full: Envelope = serde_json::from_slice(&payload)?;
        assert_eq!(full.conversation_id, conv);
        checker.on_event(None, &ev);
        n += 1;
    }
    assert!(checker.violations.is_empty(), "{:?}", checker.violations);
    assert!(checker.ended(&rid).is_some());
    sub.close().await;
    Ok(())
}
