//! Transcript rows and the history rule: each event written once at its seq, restarts and stops before a start
//! ending in the right state, and history a clean prefix of the stream.

use super::*;

#[tokio::test]
async fn message_and_response_are_written_once_with_history_covering_only_the_final_prefix() {
    let f = Fixture::start().await;
    let (message_id, response_id, created) = message_created(f.user, "What is NATS?");
    let (_, m_seq) = f.publish(Some(f.user), created).await;
    let started = Event::ResponseStarted { response_id, message_id, model: "sim-1".into(), attempt: 1 };
    let (_, s_seq) = f.publish(None, started).await;
    for index in 0..3 {
        let delta = Event::ResponseDelta { response_id, attempt: 1, index, text: "tok ".into(), from_index: None };
        f.publish(None, delta).await;
    }
    f.wait_applied(s_seq).await;

    let user_row = f.message(message_id).await.expect("user message row");
    assert_eq!(user_row.role, "user");
    assert_eq!(user_row.author_id, Some(f.user));
    assert_eq!(user_row.text, "What is NATS?");
    assert_eq!(user_row.client_msg_id.as_deref(), Some("c-1"));
    assert_eq!((user_row.status.as_str(), user_row.seq, user_row.final_seq), ("complete", m_seq, Some(m_seq)));

    // Mid-response: the assistant row is streaming at its start seq, and history stops just before it.
    let streaming = f.message(response_id).await.expect("assistant row while streaming");
    assert_eq!((streaming.status.as_str(), streaming.seq, streaming.final_seq), ("streaming", s_seq, None));
    assert_eq!(streaming.reply_to, Some(message_id));
    assert_eq!(f.applied_seq().await, s_seq, "deltas never move applied_seq");
    assert_eq!(f.history_seq().await, s_seq - 1);

    let completed = Event::ResponseCompleted {
        response_id,
        attempt: 1,
        model: "sim-1".into(),
        text: "NATS is a messaging system.".into(),
    };
    let (_, c_seq) = f.publish(None, completed).await;
    f.wait_applied(c_seq).await;
    let done = f.message(response_id).await.unwrap();
    assert_eq!(done.text, "NATS is a messaging system.");
    assert_eq!((done.status.as_str(), done.seq, done.final_seq), ("complete", s_seq, Some(c_seq)));
    assert_eq!(done.model.as_deref(), Some("sim-1"));
    assert_eq!(done.author_id, None);
    assert_eq!(f.history_seq().await, c_seq);
    assert_eq!(f.count("SELECT count(*) FROM messages WHERE conversation_id = $1").await, 2);
    assert_eq!(f.metric("relayhub_audit_events_applied_total").await, 3.0);
}

#[tokio::test]
async fn the_same_event_published_twice_leaves_one_row() {
    let f = Fixture::start().await;
    let (message_id, response_id, created) = message_created(f.user, "hello");
    let (created, m_seq) = f.publish(Some(f.user), created).await;
    let m_again = f.republish(&created).await;
    assert!(m_again > m_seq, "the copy is a new stream message");
    let (started, s_seq) =
        f.publish(None, Event::ResponseStarted { response_id, message_id, model: "sim-1".into(), attempt: 1 }).await;
    let s_again = f.republish(&started).await;
    let completed = Event::ResponseCompleted { response_id, attempt: 1, model: "sim-1".into(), text: "hi!".into() };
    let (completed, c_seq) = f.publish(None, completed).await;
    let c_again = f.republish(&completed).await;
    f.wait_applied(c_again).await;

    assert_eq!(f.count("SELECT count(*) FROM messages WHERE conversation_id = $1").await, 2);
    let user_row = f.message(message_id).await.unwrap();
    assert_eq!((user_row.seq, user_row.final_seq), (m_seq, Some(m_seq)), "the first copy wins");
    let response = f.message(response_id).await.unwrap();
    assert_eq!(response.seq, s_seq, "a repeated start keeps the first start seq");
    assert!(s_again > s_seq);
    assert_eq!(response.status, "complete");
    assert_eq!(response.text, "hi!");
    assert!(response.final_seq >= Some(c_seq));
    assert_eq!(f.count("SELECT count(*) FROM audit_log WHERE conversation_id = $1").await, 2);
    assert_eq!(f.metric("relayhub_audit_events_duplicate_total").await, 3.0);
    assert_eq!(f.applied_seq().await, c_again);
}

#[tokio::test]
async fn responses_that_restart_or_stop_before_starting_end_in_the_right_state() {
    let f = Fixture::start().await;
    // Stopped before any worker started it: the row is created finished, seq = final_seq.
    let (m1, r1, created) = message_created(f.user, "first");
    f.publish(Some(f.user), created).await;
    let stopped = Event::ResponseStopped { response_id: r1, attempt: 1, text: String::new(), stopped_by: Some(f.user) };
    let (_, stop_seq) = f.publish(Some(f.user), stopped).await;

    // Restarted after a worker crash: keeps the first start seq; the late end of attempt 1 does not finish it.
    let (m2, r2, created) = message_created(f.user, "second");
    f.publish(Some(f.user), created).await;
    let start = |attempt| Event::ResponseStarted { response_id: r2, message_id: m2, model: "sim-1".into(), attempt };
    let (_, first_start) = f.publish(None, start(1)).await;
    let (_, second_start) = f.publish(None, start(2)).await;
    let late =
        Event::ResponseFailed { response_id: r2, attempt: 1, error: "worker lost".into(), text: "partial".into() };
    let (_, late_seq) = f.publish(None, late).await;
    f.wait_applied(late_seq).await;
    let restarted = f.message(r2).await.unwrap();
    assert_eq!((restarted.status.as_str(), restarted.seq, restarted.attempt), ("streaming", first_start, 2));
    assert!(second_start > first_start);
    assert_eq!(f.history_seq().await, first_start - 1);

    let done = Event::ResponseCompleted { response_id: r2, attempt: 2, model: "sim-1".into(), text: "full".into() };
    let (_, done_seq) = f.publish(None, done).await;
    f.wait_applied(done_seq).await;

    let stopped_row = f.message(r1).await.expect("stopped response row");
    assert_eq!(stopped_row.role, "assistant");
    assert_eq!(
        (stopped_row.status.as_str(), stopped_row.seq, stopped_row.final_seq),
        ("stopped", stop_seq, Some(stop_seq))
    );
    assert_eq!(stopped_row.reply_to, Some(m1));
    let finished = f.message(r2).await.unwrap();
    assert_eq!((finished.status.as_str(), finished.text.as_str()), ("complete", "full"));
    assert_eq!((finished.seq, finished.final_seq, finished.attempt), (first_start, Some(done_seq), 2));
    assert_eq!(f.history_seq().await, done_seq);
}

/// Two responses interleave (two people asked at nearly the same time): A starts, B starts, A ends, B streams on.
/// History must stop before A's start — not before B's — or a client would get A's end from the stream without
/// its start (the load test found this with two responders per conversation).
#[tokio::test]
async fn interleaved_responses_keep_history_a_clean_prefix_of_the_stream() {
    let f = Fixture::start().await;
    let (ma, ra, created_a) = message_created(f.user, "first question");
    let (_, ma_seq) = f.publish(Some(f.user), created_a).await;
    let (_, sa_seq) = f
        .publish(None, Event::ResponseStarted { response_id: ra, message_id: ma, model: "sim-1".into(), attempt: 1 })
        .await;
    let (mb, rb, mut created_b) = message_created(f.user, "second question");
    if let Event::MessageCreated { client_msg_id, .. } = &mut created_b {
        *client_msg_id = Some("c-2".into());
    }
    let (_, mb_seq) = f.publish(Some(f.user), created_b).await;
    let (_, sb_seq) = f
        .publish(None, Event::ResponseStarted { response_id: rb, message_id: mb, model: "sim-1".into(), attempt: 1 })
        .await;
    let (_, ca_seq) = f
        .publish(
            None,
            Event::ResponseCompleted { response_id: ra, attempt: 1, model: "sim-1".into(), text: "A".into() },
        )
        .await;
    f.wait_applied(ca_seq).await;
    assert!(ma_seq < sa_seq && sa_seq < mb_seq && mb_seq < sb_seq && sb_seq < ca_seq);

    // A spans [sa, ca] and B is still streaming from sb: the only clean cut at or below applied_seq is before A.
    let h = f.history().await;
    assert_eq!(h.seq as u64, sa_seq - 1, "history must not cut through response A");
    let ids: Vec<Uuid> = h.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![ma], "history holds exactly the rows final at its position");

    // Once B ends, everything is history.
    let (_, cb_seq) = f
        .publish(
            None,
            Event::ResponseCompleted { response_id: rb, attempt: 1, model: "sim-1".into(), text: "B".into() },
        )
        .await;
    f.wait_applied(cb_seq).await;
    let h = f.history().await;
    assert_eq!(h.seq as u64, cb_seq);
    let ids: Vec<Uuid> = h.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![ma, ra, mb, rb], "rows in stream order of their start");
}
