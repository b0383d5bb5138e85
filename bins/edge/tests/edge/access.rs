//! Access changes on open sockets: revocation, permission changes, deletion, sidebars; sending over the socket.

use crate::helpers::*;
use rh_protocol::frame::{RevokeReason, SidebarAction};
use rh_protocol::rpc::{ConversationSummary, InboxMessage};
use rh_protocol::{ClientFrame, Event, Permission, ServerFrame, subjects};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participant_removed_ends_that_users_subscription_within_a_second() -> anyhow::Result<()> {
    let env = Env::start(1).await?;
    let ada = env.user("Ada")?;
    let ben = env.user("Ben")?;
    let cy = env.user("Cy")?;
    let conv = env.conversation(&ada).await?;
    env.grant(conv, &ben, Permission::View);
    env.grant(conv, &cy, Permission::Respond);
    let mut b = env.connect(0, &ben).await?;
    let mut c = env.connect(0, &cy).await?;
    subscribe(&mut b, conv, None).await?;
    let (_, c_after) = subscribe(&mut c, conv, None).await?;
    let streaming = env.stream_deltas(conv, 100, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(200)).await;

    env.revoke(conv, &ben);
    let t0 = Instant::now();
    let removed = env.publish(conv, Some(ada.id), Event::ParticipantRemoved { user_id: ben.id }).await?;
    let (_, before) = b
        .until(
            Duration::from_secs(2),
            |f| matches!(f, ServerFrame::AccessRevoked { conversation_id, .. } if *conversation_id == conv),
        )
        .await?;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    assert!(before.iter().all(|f| !matches!(f, ServerFrame::Event { seq, .. } if *seq > removed)));

    // Nothing more of that conversation reaches Ben, while Cy's stream goes on to the end.
    let quiet = tokio::time::timeout(Duration::from_millis(700), async {
        loop {
            match b.next_frame(Duration::from_secs(5)).await {
                Ok(ServerFrame::Event { conversation_id, .. }) if conversation_id == conv => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    })
    .await;
    assert!(!matches!(quiet, Ok(true)), "an event reached the revoked viewer");
    let seqs = streaming.await??;
    let mut got = Received::default();
    read_until_seq(&mut c, conv, *seqs.last().unwrap_or(&0), &mut got).await?;
    assert_gapless(&got.seqs(), &env.published_after(conv, c_after));
    assert!(!got.other.iter().any(|f| matches!(f, ServerFrame::AccessRevoked { .. })), "Cy keeps access");

    // Ben cannot subscribe again.
    let refused = subscribe(&mut b, conv, None).await.expect_err("refused");
    assert!(refused.to_string().contains("not_found"), "{refused}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_deleted_revokes_every_subscriber() -> anyhow::Result<()> {
    let env = Env::start(1).await?;
    let ada = env.user("Ada")?;
    let ben = env.user("Ben")?;
    let conv = env.conversation(&ada).await?;
    env.grant(conv, &ben, Permission::View);
    let mut a = env.connect(0, &ada).await?;
    let mut b = env.connect(0, &ben).await?;
    subscribe(&mut a, conv, None).await?;
    subscribe(&mut b, conv, None).await?;
    env.publish(conv, Some(ada.id), Event::ConversationDeleted {}).await?;
    for ws in [&mut a, &mut b] {
        ws.until(WAIT, |f| matches!(f, ServerFrame::AccessRevoked { conversation_id, reason: Some(RevokeReason::Deleted) } if *conversation_id == conv))
            .await?;
    }
    rh_testkit::eventually(WAIT, "no subscriptions left", || async {
        (env.metric(0, "subscriptions").await.ok()? == 0.0).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_changed_reaches_the_socket_and_unlocks_sending() -> anyhow::Result<()> {
    let env = Env::start(1).await?;
    let ada = env.user("Ada")?;
    let ben = env.user("Ben")?;
    let cy = env.user("Cy")?;
    let conv = env.conversation(&ada).await?;
    env.grant(conv, &ben, Permission::View);
    let mut b = env.connect(0, &ben).await?;
    let (perm, _) = subscribe(&mut b, conv, None).await?;
    assert_eq!(perm, Permission::View);

    let send = |id: &str| ClientFrame::SendMessage {
        conversation_id: conv,
        text: "hello".into(),
        client_msg_id: id.into(),
        edit_of: None,
    };
    b.send(&send("m1")).await?;
    let (f, _) =
        b.until(WAIT, |f| matches!(f, ServerFrame::Error { .. } | ServerFrame::MessageAccepted { .. })).await?;
    assert!(
        matches!(&f, ServerFrame::Error { code, reference, .. } if code == "forbidden" && reference.as_deref() == Some("m1")),
        "{f:?}"
    );

    env.grant(conv, &ben, Permission::Respond);
    env.publish(conv, Some(ada.id), Event::ParticipantChanged { user_id: ben.id, permission: Permission::Respond })
        .await?;
    let (f, _) = b.until(WAIT, |f| matches!(f, ServerFrame::PermissionChanged { .. })).await?;
    assert_eq!(f, ServerFrame::PermissionChanged { conversation_id: conv, permission: Permission::Respond });

    b.send(&send("m2")).await?;
    let (f, mut frames) =
        b.until(WAIT, |f| matches!(f, ServerFrame::Error { .. } | ServerFrame::MessageAccepted { .. })).await?;
    let ServerFrame::MessageAccepted { client_msg_id, message_id, .. } = f else { anyhow::bail!("refused: {f:?}") };
    assert_eq!(client_msg_id, "m2");
    // Its message.created is delivered on the subscription (before or after the acceptance), with the client's id.
    let is_it = |f: &ServerFrame| matches!(f, ServerFrame::Event { event, .. } if matches!(&event.event, Event::MessageCreated { message_id: m, .. } if *m == message_id));
    if !frames.iter().any(is_it) {
        let (f, _) = b.until(WAIT, is_it).await?;
        frames.push(f);
    }
    let Some(ServerFrame::Event { event, .. }) = frames.into_iter().find(is_it) else { unreachable!() };
    assert!(matches!(event.event, Event::MessageCreated { client_msg_id: Some(ref id), .. } if id == "m2"));

    // A socket that is not subscribed is checked with the api first: Cy (not a participant) is refused.
    let mut c = env.connect(0, &cy).await?;
    c.send(&send("c1")).await?;
    let (f, _) =
        c.until(WAIT, |f| matches!(f, ServerFrame::Error { .. } | ServerFrame::MessageAccepted { .. })).await?;
    assert!(
        matches!(&f, ServerFrame::Error { code, reference, .. } if code == "not_found" && reference.as_deref() == Some("c1")),
        "{f:?}"
    );
    // And stop goes through for a respond-level subscriber (no error comes back).
    b.send(&ClientFrame::Stop { conversation_id: conv, response_id: None }).await?;
    b.send(&ClientFrame::Ping).await?;
    let (_, before) = b.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.send(&ClientFrame::Ping).await?;
    let (_, after) = b.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    assert!(before.iter().chain(after.iter()).all(|f| !matches!(f, ServerFrame::Error { .. })), "{before:?} {after:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_messages_become_sidebar_frames_and_removed_ends_the_subscription() -> anyhow::Result<()> {
    let env = Env::start(1).await?;
    let ada = env.user("Ada")?;
    let ben = env.user("Ben")?;
    let conv = env.conversation(&ada).await?;
    // Two sockets of Ben: both get his sidebar.
    let mut b1 = env.connect(0, &ben).await?;
    let mut b2 = env.connect(0, &ben).await?;
    // A socket's sidebar is attached before its first frame is read: a pong proves it.
    for ws in [&mut b1, &mut b2] {
        ws.send(&ClientFrame::Ping).await?;
        ws.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    }
    let summary = ConversationSummary {
        id: conv,
        title: "Roadmap".into(),
        owner_id: ada.id,
        owner_name: ada.name.clone(),
        permission: Permission::View,
        shared: true,
        model: "sim-1".into(),
        created_at: "2025-01-01T00:00:00Z".into(),
        updated_at: "2025-01-01T00:00:00Z".into(),
        responding: None,
        shared_with: None,
    };
    env.grant(conv, &ben, Permission::View);
    let added = InboxMessage {
        user_id: ben.id,
        action: SidebarAction::Added,
        conversation_id: conv,
        conversation: Some(summary.clone()),
        responding: None,
    };
    env.client.publish(subjects::user_inbox(ben.id), serde_json::to_vec(&added)?.into()).await?;
    for ws in [&mut b1, &mut b2] {
        let (f, _) = ws.until(WAIT, |f| matches!(f, ServerFrame::Sidebar { .. })).await?;
        assert_eq!(
            f,
            ServerFrame::Sidebar {
                action: SidebarAction::Added,
                conversation_id: conv,
                conversation: Some(summary.clone()),
                responding: None,
            }
        );
    }

    subscribe(&mut b1, conv, None).await?;
    env.revoke(conv, &ben);
    let removed = InboxMessage {
        user_id: ben.id,
        action: SidebarAction::Removed,
        conversation_id: conv,
        conversation: None,
        responding: None,
    };
    env.client.publish(subjects::user_inbox(ben.id), serde_json::to_vec(&removed)?.into()).await?;
    let (_, before) = b1
        .until(WAIT, |f| matches!(f, ServerFrame::AccessRevoked { conversation_id, .. } if *conversation_id == conv))
        .await?;
    assert!(
        before.iter().any(|f| matches!(f, ServerFrame::Sidebar { action: SidebarAction::Removed, .. })),
        "{before:?}"
    );
    b2.until(WAIT, |f| matches!(f, ServerFrame::Sidebar { action: SidebarAction::Removed, .. })).await?;

    // Another user's inbox is not Ben's business.
    let other = InboxMessage {
        user_id: ada.id,
        action: SidebarAction::Added,
        conversation_id: conv,
        conversation: Some(summary),
        responding: None,
    };
    env.client.publish(subjects::user_inbox(ada.id), serde_json::to_vec(&other)?.into()).await?;
    b2.send(&ClientFrame::Ping).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b2.send(&ClientFrame::Ping).await?;
    let (_, seen) = b2.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    let (_, seen2) = b2.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    assert!(seen.iter().chain(seen2.iter()).all(|f| !matches!(f, ServerFrame::Sidebar { .. })));
    Ok(())
}
