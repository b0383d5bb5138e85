//! The live path: a message becomes a streamed AI response that every viewer sees the same way, late joiners and
//! reconnecting viewers included, and that PostgreSQL stores once.

use crate::helpers::*;
use rh_protocol::Event;
use rh_testkit::StackOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_viewers_including_a_late_joiner_see_the_same_response() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let conv = t.api.create_conversation(&t.owner, "Launch plan").await?;
    t.api.share(&t.owner, conv, &t.ben, "view").await?;
    t.api.share(&t.owner, conv, &t.cy, "view").await?;

    let ws = t.stack.ws_url();
    let h0 = history_seq(&t.api, &t.owner, conv).await?;
    let mut ada = Viewer::join(&ws, &t.owner, conv, Some(h0)).await?;
    let h0b = history_seq(&t.api, &t.ben, conv).await?;
    let mut ben = Viewer::join(&ws, &t.ben, conv, Some(h0b)).await?;

    let reply = t.api.send_message(&t.owner, conv, "/sim tokens=120 rate=60\nWrite the launch plan").await?;
    let rid = response_id(&reply)?;

    // Cy opens the conversation halfway through the response: history over HTTP, then the socket from its seq.
    ada.until_deltas(rid, 10).await?;
    let h_cy = history_seq(&t.api, &t.cy, conv).await?;
    let mut cy = Viewer::join(&ws, &t.cy, conv, Some(h_cy)).await?;
    // Ada opens it in a second tab at the same point, like the web client: a compact catch-up.
    let mut ada_tab = Viewer::join_with(&ws, &t.owner, conv, Some(h_cy), true).await?;

    ada.until_response_end(rid).await?;
    ben.until_response_end(rid).await?;
    cy.until_response_end(rid).await?;
    ada_tab.until_response_end(rid).await?;

    let text_ada = check_response(&ada.seen, rid)?;
    let text_ben = check_response(&ben.seen, rid)?;
    let text_cy = check_response(&cy.seen, rid)?;
    assert_eq!(text_ada, text_ben);
    assert_eq!(text_ada, text_cy);

    // Same ordered events, no gaps, no duplicates: the two early viewers saw identical streams (from the later of
    // their two starting points: the audit writer may have applied the shares between the two history reads), and
    // the late joiner saw exactly the same events from its join point on (which include the response from its
    // start).
    let from = |v: &Viewer, seq: u64| v.seen.iter().filter(|s| s.seq > seq).cloned().collect::<Vec<_>>();
    assert_eq!(ada.seen, from(&ada, h0));
    assert_eq!(ben.seen, from(&ben, h0b));
    assert_eq!(from(&ada, h0.max(h0b)), from(&ben, h0.max(h0b)));
    let ada_after: Vec<_> = ada.seen.iter().filter(|s| s.seq > h_cy).cloned().collect();
    assert_eq!(ada_after, cy.seen);
    assert!(
        cy.seen.iter().any(|s| matches!(s.event.event, rh_protocol::Event::ResponseStarted { .. })),
        "the late joiner caught up from the start of the in-progress response"
    );

    // The compact tab got the same text (check_response verifies the merged deltas' ranges: no gap, no overlap) in
    // fewer frames: what it missed came merged, starting with delta 0.
    assert_eq!(check_response(&ada_tab.seen, rid)?, text_ada);
    let deltas = |v: &Viewer| v.seen.iter().filter(|s| matches!(s.event.event, Event::ResponseDelta { .. })).count();
    assert!(deltas(&ada_tab) < deltas(&cy), "compact {} frames vs exact {}", deltas(&ada_tab), deltas(&cy));
    assert!(
        ada_tab.seen.iter().any(|s| matches!(s.event.event, Event::ResponseDelta { from_index: Some(0), .. })),
        "the missed deltas came as one merged delta"
    );

    // PostgreSQL holds the response once, with the same text.
    let stored = stored_response(&t.api, &t.owner, conv, rid).await?;
    assert_eq!(stored, text_ada);
    let pg = t.stack.db.connect().await?;
    let n: i64 = pg.query_one("SELECT count(*) FROM messages WHERE id = $1", &[&rid]).await?.get(0);
    assert_eq!(n, 1);
    let n: i64 = pg
        .query_one("SELECT count(*) FROM messages WHERE conversation_id = $1 AND role = 'assistant'", &[&conv])
        .await?
        .get(0);
    assert_eq!(n, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_reconnects_with_its_last_seq_misses_nothing() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let conv = t.api.create_conversation(&t.owner, "Reconnects").await?;
    let ws = t.stack.ws_url();
    let h = history_seq(&t.api, &t.owner, conv).await?;
    let mut first = Viewer::join(&ws, &t.owner, conv, Some(h)).await?;
    let rid = response_id(&t.api.send_message(&t.owner, conv, "/sim tokens=100 rate=50\nhello").await?)?;

    first.until_deltas(rid, 8).await?;
    let mut seen = std::mem::take(&mut first.seen);
    first.ws.close().await;
    let last = seen.last().map(|s| s.seq).unwrap_or(h);

    // Offline for a while: the response keeps streaming without this viewer.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;

    let mut again = Viewer::join(&ws, &t.owner, conv, Some(last)).await?;
    assert_eq!(again.subscribed_at, last);
    again.until_response_end(rid).await?;
    seen.extend(again.seen.clone());
    let text = check_response(&seen, rid)?;
    assert_eq!(stored_response(&t.api, &t.owner, conv, rid).await?, text);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_without_after_seq_starts_after_the_stored_history() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let conv = t.api.create_conversation(&t.owner, "Defaults").await?;
    let rid1 = response_id(&t.api.send_message(&t.owner, conv, "/sim tokens=5 rate=200\nfirst").await?)?;
    let first_text = stored_response(&t.api, &t.owner, conv, rid1).await?;
    let h = history_seq(&t.api, &t.owner, conv).await?;

    let mut v = Viewer::join(&t.stack.ws_url(), &t.owner, conv, None).await?;
    assert_eq!(v.subscribed_at, h, "without after_seq the socket continues where HTTP history ends");
    let rid2 = response_id(&t.api.send_message(&t.owner, conv, "/sim tokens=5 rate=200\nsecond").await?)?;
    v.until_response_end(rid2).await?;
    check_response(&v.seen, rid2)?;
    assert!(
        v.seen.iter().all(|s| s.event.event.response_id() != Some(rid1)),
        "nothing of the stored history is replayed"
    );
    assert!(!first_text.is_empty());
    Ok(())
}
