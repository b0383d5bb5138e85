//! Answers no worker holds: with the worker pool down, every viewer is told the AI is unavailable after the
//! api's wait, a Stop ends the answer at once (the api ends it), and a worker that comes back later never starts
//! a stopped answer; a stop racing a worker's pickup ends each answer exactly once.

use crate::helpers::*;
use rh_protocol::{ClientFrame, Event};
use rh_testkit::{Service, StackOptions};
use uuid::Uuid;

/// A Prometheus sample of `service` (full metric name), or `None` when it is not exported (yet).
async fn metric(service: &Service, name: &str) -> Option<f64> {
    let body = reqwest::get(format!("{}/metrics", service.http_url())).await.ok()?.text().await.ok()?;
    let prefix = format!("{name} ");
    body.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

/// The api's `/readyz`: status and body.
async fn readyz(service: &Service) -> anyhow::Result<(u16, String)> {
    let r = reqwest::get(format!("{}/readyz", service.http_url())).await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// Waits until `viewer` has seen an event for which `pred` holds (reading more frames as needed).
async fn until_seen(viewer: &mut Viewer, pred: impl Fn(&Event) -> bool) -> anyhow::Result<()> {
    while !viewer.seen.iter().any(|s| pred(&s.event.event)) {
        viewer.until_event(|_| true).await?;
    }
    Ok(())
}

fn ends_of(viewer: &Viewer, rid: Uuid) -> Vec<Event> {
    viewer
        .seen
        .iter()
        .map(|s| s.event.event.clone())
        .filter(|e| e.is_response_end() && e.response_id() == Some(rid))
        .collect()
}

fn started(viewer: &Viewer, rid: Uuid) -> bool {
    viewer
        .seen
        .iter()
        .any(|s| matches!(s.event.event, Event::ResponseStarted { response_id, .. } if response_id == rid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_worker_viewers_see_the_ai_unavailable_and_stop_ends_the_answer_at_once() -> anyhow::Result<()> {
    let options = StackOptions {
        workers: 0,
        api_env: vec![("RH_AI_WAIT_SECS".into(), "1".into())],
        worker_env: vec![("RH_SIM_TOKENS".into(), "20".into())],
        ..StackOptions::default()
    };
    let t = team(options).await?;
    let conv = t.api.create_conversation(&t.owner, "No AI today").await?;
    t.api.share(&t.owner, conv, &t.ben, "respond").await?;
    let ws = t.stack.ws_url();
    let mut ada = Viewer::join(&ws, &t.owner, conv, Some(history_seq(&t.api, &t.owner, conv).await?)).await?;
    let mut ben = Viewer::join(&ws, &t.ben, conv, Some(history_seq(&t.api, &t.ben, conv).await?)).await?;

    // Ada asks, then Ben asks while Ada's answer waits: both are accepted.
    let ada_rid = response_id(&t.api.send_message(&t.owner, conv, "Summarise the plan").await?)?;
    let ben_rid = response_id(&t.api.send_message(&t.ben, conv, "And the risks?").await?)?;

    // After the wait, both viewers are told that no AI has taken either answer, and the api counts them.
    for viewer in [&mut ada, &mut ben] {
        for rid in [ada_rid, ben_rid] {
            until_seen(viewer, |e| matches!(e, Event::ResponseDelayed { response_id, .. } if *response_id == rid))
                .await?;
        }
    }
    rh_testkit::eventually(WAIT, "two answers counted as waiting for a worker", || async {
        (metric(&t.stack.api, "relayhub_api_responses_waiting_for_worker").await? == 2.0).then_some(())
    })
    .await?;
    // Still ready (it serves), and says what is missing.
    let (status, body) = readyz(&t.stack.api).await?;
    assert_eq!((status, body.as_str()), (200, "ready, degraded: ai workers: 2 answers waiting with no worker"));

    // Ben stops Ada's answer, on that answer: it ends at once for both, stopped by Ben; his own keeps waiting.
    ben.ws.send(&ClientFrame::Stop { conversation_id: conv, response_id: Some(ada_rid) }).await?;
    for viewer in [&mut ada, &mut ben] {
        let end = viewer.until_response_end(ada_rid).await?;
        match end.event.event {
            Event::ResponseStopped { attempt, stopped_by, .. } => {
                assert_eq!(attempt, 0, "ended before any worker started it");
                assert_eq!(stopped_by, Some(t.ben.user_id));
            }
            other => anyhow::bail!("expected response.stopped, got {other:?}"),
        }
    }
    assert!(ends_of(&ada, ben_rid).is_empty(), "stopping one answer left the other alone");

    // A worker comes back: it drops the stopped job without a word and answers Ben.
    let worker = t.stack.spawn_worker().await?;
    ada.until_response_end(ben_rid).await?;
    ben.until_response_end(ben_rid).await?;
    assert!(matches!(ends_of(&ada, ben_rid)[..], [Event::ResponseCompleted { .. }]));
    rh_testkit::eventually(WAIT, "the stopped job dropped by the worker", || async {
        (metric(&worker, "relayhub_worker_jobs_dropped_total").await? == 1.0).then_some(())
    })
    .await?;
    for viewer in [&ada, &ben] {
        assert!(!started(viewer, ada_rid), "a stopped answer never starts");
        assert_eq!(ends_of(viewer, ada_rid).len(), 1, "ended exactly once");
    }
    rh_testkit::eventually(WAIT, "nothing counted as waiting any more", || async {
        (metric(&t.stack.api, "relayhub_api_responses_waiting_for_worker").await? == 0.0).then_some(())
    })
    .await?;
    assert_eq!(readyz(&t.stack.api).await?, (200, "ready".to_owned()));
    // The transcript has it as stopped.
    rh_testkit::eventually(WAIT, "the stopped answer in the stored history", || async {
        let v = t.api.conversation(&t.owner, conv).await.ok()?;
        let m = v["messages"].as_array()?.iter().find(|m| m["id"] == ada_rid.to_string())?.clone();
        (m["status"] == "stopped").then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_racing_a_workers_pickup_ends_each_answer_exactly_once() -> anyhow::Result<()> {
    let mut options = sim_env(&[("RH_SIM_TOKENS", "30"), ("RH_SIM_TOKENS_PER_SEC", "200")]);
    // Each stopped answer's slot comes back when the audit writer stores the stop: no bound to race with here.
    options.api_env = vec![("RH_LIMIT_CONVERSATION_RESPONSES".into(), "0".into())];
    let t = team(options).await?;
    let conv = t.api.create_conversation(&t.owner, "Races").await?;
    let ws = t.stack.ws_url();
    let mut ada = Viewer::join(&ws, &t.owner, conv, Some(history_seq(&t.api, &t.owner, conv).await?)).await?;
    let api = t.api.as_user(&t.owner);
    let mut rids = Vec::new();
    for i in 0..12 {
        let rid = response_id(&t.api.send_message(&t.owner, conv, &format!("question {i}")).await?)?;
        // Stop at once: sometimes before the worker's pickup, sometimes just after.
        let (status, body) =
            api.post(&format!("/conversations/{conv}/stop"), serde_json::json!({ "response_id": rid })).await?;
        assert_eq!(status.as_u16(), 202, "{body}");
        rids.push(rid);
    }
    for &rid in &rids {
        ada.until_response_end(rid).await?;
    }
    for &rid in &rids {
        let ends = ends_of(&ada, rid);
        assert_eq!(ends.len(), 1, "{rid} ended once: {ends:?}");
        match &ends[0] {
            // Ended by the api: no worker ever started it.
            Event::ResponseStopped { attempt: 0, .. } => {
                assert!(!started(&ada, rid), "{rid} started after the api ended it")
            }
            // Ended by the worker that holds it.
            Event::ResponseStopped { attempt: 1, .. } | Event::ResponseCompleted { .. } => {
                assert!(started(&ada, rid), "{rid} ended by a worker that never started it")
            }
            other => anyhow::bail!("{rid}: unexpected end {other:?}"),
        }
    }
    Ok(())
}
