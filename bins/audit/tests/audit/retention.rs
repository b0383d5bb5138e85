//! Events that `RH_CONV` drops before the writer could write them: with a small `RH_CONV` and token deltas
//! flooding it, the transcript still gets every event (they wait in `RH_AUDIT`), and when `RH_AUDIT` itself is full
//! the writer raises the alarm and, once an event is lost, counts the gap and stays not ready.

use super::*;
use crate::faults::DbOutage;

const SMALL_CONV: i64 = 64 * 1024;

/// Publishes `n` deltas of about 1 KB on the fixture's conversation (token traffic that fills `RH_CONV`).
async fn flood_deltas(f: &Fixture, n: u32) {
    let response_id = Uuid::new_v4();
    let mut acks = Vec::new();
    for index in 0..n {
        let delta = Event::ResponseDelta { response_id, attempt: 1, index, text: "x".repeat(1000), from_index: None };
        acks.push(rh_bus::publish_event(&f.js, &Envelope::new(f.conv, None, delta)).await.unwrap());
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

/// Waits until `RH_AUDIT` holds `n` events. JetStream copies an event within milliseconds; only a flood of more
/// than all of `RH_CONV` in those milliseconds could drop it first (a gap: see the other test).
async fn wait_copied(f: &Fixture, n: u64) {
    eventually(WAIT, &format!("{n} events in RH_AUDIT"), || async {
        let mut stream = f.js.get_stream(rh_protocol::subjects::STREAM_AUDIT).await.ok()?;
        (stream.info().await.ok()?.state.messages >= n).then_some(())
    })
    .await
    .unwrap();
}

/// Whether `RH_CONV` still holds the message at `seq`.
async fn conv_holds(f: &Fixture, seq: u64) -> bool {
    let stream = f.js.get_stream(rh_protocol::subjects::STREAM_CONV).await.unwrap();
    stream.direct_get(seq).await.is_ok()
}

#[tokio::test]
async fn events_dropped_from_rh_conv_while_the_database_is_away_are_still_written_once() {
    let topology = rh_bus::Topology { conv_max_bytes: SMALL_CONV, ..rh_bus::Topology::default() };
    let mut f = Fixture::start_on(topology, &[]).await;
    let outage = DbOutage::begin(&f).await;

    let mut ids = Vec::new();
    let mut seqs = Vec::new();
    for i in 0..20 {
        let (id, _, created) = message_created(f.user, &format!("during {i}"));
        seqs.push(f.publish(Some(f.user), created).await.1);
        ids.push(id);
        wait_copied(&f, i + 1).await;
        flood_deltas(&f, 100).await;
    }
    // Every event is gone from RH_CONV: only RH_AUDIT still has them.
    for seq in &seqs {
        assert!(!conv_holds(&f, *seq).await, "RH_CONV still holds the event at {seq}");
    }
    // A writer that held them in memory would lose them now.
    f.audit.kill().await;
    outage.end().await;
    f.audit = f.audit.respawn().await.unwrap();

    f.wait_applied(*seqs.last().unwrap()).await;
    for id in &ids {
        let n: i64 = f.pg.query_one("SELECT count(*) FROM messages WHERE id = $1", &[id]).await.unwrap().get(0);
        assert_eq!(n, 1, "message {id} written once");
    }
    assert_eq!(f.count("SELECT count(*) FROM messages WHERE conversation_id = $1").await, 20);
    // Written at their RH_CONV positions: history is the stream prefix up to the last event.
    assert_eq!(f.history_seq().await, *seqs.last().unwrap());
    let written: Vec<u64> = f.history().await.messages.iter().map(|m| m.seq).collect();
    assert_eq!(written, seqs);
    assert_eq!(f.metric("relayhub_audit_gaps_total").await, 0.0);
    eventually(WAIT, "ready", || async { (http_get(&f.audit, "/readyz").await.0 == 200).then_some(()) }).await.unwrap();
}

#[tokio::test]
async fn a_full_rh_audit_raises_the_alarm_and_a_lost_event_is_a_gap() {
    let topology =
        rh_bus::Topology { conv_max_bytes: SMALL_CONV, audit_max_bytes: 4 * 1024, ..rh_bus::Topology::default() };
    let f = Fixture::start_on(topology, &[]).await;
    let outage = DbOutage::begin(&f).await;

    // More events than RH_AUDIT can hold: the last ones wait in RH_CONV.
    let mut seqs = Vec::new();
    for i in 0..30 {
        let (_, _, created) = message_created(f.user, &format!("event {i} {}", "y".repeat(200)));
        seqs.push(f.publish(Some(f.user), created).await.1);
    }
    eventually(WAIT, "the writer sees RH_AUDIT full and events waiting in RH_CONV", || async {
        let fill = f.metric("relayhub_audit_backlog_fill_ratio").await;
        let uncopied = f.metric("relayhub_audit_uncopied_events").await;
        (fill >= 0.8 && uncopied > 0.0).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(f.metric("relayhub_audit_gaps_total").await, 0.0);

    // Deltas push the waiting events out of RH_CONV before they could be copied.
    flood_deltas(&f, 200).await;
    assert!(!conv_holds(&f, *seqs.last().unwrap()).await);
    eventually(WAIT, "a gap counted", || async { (f.metric("relayhub_audit_gaps_total").await >= 1.0).then_some(()) })
        .await
        .unwrap();

    // With the database back, what RH_AUDIT held is written, and the next events too, but the writer stays not
    // ready: events were lost, and an operator must look.
    outage.end().await;
    let (after, _, created) = message_created(f.user, "after the gap");
    let (_, after_seq) = f.publish(Some(f.user), created).await;
    f.wait_applied(after_seq).await;
    assert!(f.message(after).await.is_some());
    let written = f.count("SELECT count(*) FROM messages WHERE conversation_id = $1").await;
    assert!(written > 1 && written < 31, "some events were lost, the rest written: {written}");
    assert_eq!(http_get(&f.audit, "/readyz").await.0, 503);
}
