//! Traces across NATS: one answer's W3C trace context goes from the HTTP request (or the socket command) through
//! the api's job, the worker and every event it publishes, to each edge that delivers them to sockets, and to the
//! audit writer. Read from the real binaries' own logs (`--trace-log` writes each span's close with its
//! `trace_id`), so no collector is involved.

use crate::helpers::*;
use rh_protocol::{ClientFrame, ServerFrame};
use rh_testkit::StackOptions;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use uuid::Uuid;

/// The trace the caller started: `traceparent` = version, trace id, parent span id, flags (sampled).
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_answer_is_one_trace_from_the_request_to_every_socket() -> anyhow::Result<()> {
    let options = StackOptions {
        service_env: vec![("RH_TRACE_LOG".into(), "true".into())],
        edges: 2,
        ..sim_env(&[("RH_SIM_TOKENS", "12")])
    };
    let t = team(options).await?;
    let conv = t.api.create_conversation(&t.owner, "Traced").await?;
    t.api.share(&t.owner, conv, &t.ben, "respond").await?;
    let h = history_seq(&t.api, &t.owner, conv).await?;
    // Two viewers on two edges: the same trace reaches both.
    let mut ada = Viewer::join(&t.stack.ws_url_of(0), &t.owner, conv, Some(h)).await?;
    let mut ben = Viewer::join(&t.stack.ws_url_of(1), &t.ben, conv, Some(h)).await?;

    // The caller's trace context on the POST.
    let (http, base, _) = t.api.raw();
    let res = http
        .post(format!("{base}/conversations/{conv}/messages"))
        .bearer_auth(&t.owner.token)
        .header("traceparent", TRACEPARENT)
        .json(&serde_json::json!({"text": "Trace this"}))
        .send()
        .await?;
    anyhow::ensure!(res.status() == 202, "send: {}", res.status());
    let rid = response_id(&res.json().await?)?;
    ada.until_response_end(rid).await?;
    ben.until_response_end(rid).await?;
    // The answer's events (the message that asked for it included), not the share's that may come before.
    let seqs = |v: &Viewer| {
        v.seen.iter().filter(|s| s.event.event.response_id() == Some(rid)).map(|s| s.seq).collect::<BTreeSet<_>>()
    };
    let (ada_seqs, ben_seqs) = (seqs(&ada), seqs(&ben));
    assert!(ada_seqs.len() >= 4, "message, start, deltas, end: {ada_seqs:?}");

    // The worker's job continued the caller's trace…
    let job = eventually_span(&t.stack.workers[0], "job", |f| f.get("response") == Some(&rid.to_string())).await?;
    assert_eq!(job.get("trace_id").map(String::as_str), Some(TRACE_ID), "worker job span: {job:?}");
    // …and each edge delivered every event its viewer saw (the api's message.created, the worker's events)
    // inside a span of that same trace.
    // (A span is logged as it closes, which may be just after its frame reached the viewer: wait for it.)
    for (edge, saw) in [(0, &ada_seqs), (1, &ben_seqs)] {
        let delivered = || -> BTreeSet<u64> {
            let spans = spans_in(&t.stack.edges[edge], "deliver").unwrap_or_default();
            let traced = spans.iter().filter(|f| f.get("trace_id").map(String::as_str) == Some(TRACE_ID));
            traced.filter_map(|f| f.get("seq")?.parse().ok()).collect()
        };
        let all = rh_testkit::eventually(Duration::from_secs(10), "every event delivered in the trace", || async {
            delivered().is_superset(saw).then_some(())
        })
        .await;
        assert!(all.is_ok(), "edge {edge} delivered in the trace {:?}, its viewer saw {saw:?}", delivered());
    }
    // The audit writer stored the message and the final answer in it too.
    let audit = t.stack.audit.as_ref().ok_or_else(|| anyhow::anyhow!("no audit writer"))?;
    eventually_span(audit, "audit_stored", |f| f.get("trace_id").map(String::as_str) == Some(TRACE_ID)).await?;

    // A message sent on the socket starts its own trace at the edge; the worker continues that one.
    ada.ws
        .send(&ClientFrame::SendMessage {
            conversation_id: conv,
            text: "And this".into(),
            client_msg_id: "m2".into(),
            edit_of: None,
        })
        .await?;
    let accepted = ada.until_frame(|f| matches!(f, ServerFrame::MessageAccepted { .. })).await?;
    let ServerFrame::MessageAccepted { response_id: rid2, .. } = accepted else { unreachable!() };
    ada.until_response_end(rid2).await?;
    let command = eventually_span(&t.stack.edges[0], "socket_command", |f| f.contains_key("trace_id")).await?;
    let socket_trace = command.get("trace_id").cloned().unwrap_or_default();
    assert_ne!(socket_trace, TRACE_ID);
    let job2 = eventually_span(&t.stack.workers[0], "job", |f| f.get("response") == Some(&rid2.to_string())).await?;
    assert_eq!(job2.get("trace_id"), Some(&socket_trace), "the socket command's trace reached the worker");
    Ok(())
}

type Fields = HashMap<String, String>;

/// The fields of every closed span called `name` in `service`'s log (`name{k=v …}: target: close …`).
fn spans_in(service: &rh_testkit::Service, name: &str) -> anyhow::Result<Vec<Fields>> {
    let log = std::fs::read_to_string(service.log_path())?;
    let open = format!(" {name}{{");
    Ok(log
        .lines()
        .filter(|line| line.contains(": close "))
        .filter_map(|line| {
            let fields = &line[line.find(&open)? + open.len()..];
            let fields = &fields[..fields.find("}:")?];
            Some(fields.split(' ').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect())
        })
        .collect())
}

/// Waits (spans are logged when they close) for a closed span `name` in `service`'s log whose fields match.
async fn eventually_span(
    service: &rh_testkit::Service,
    name: &str,
    matches: impl Fn(&Fields) -> bool,
) -> anyhow::Result<Fields> {
    rh_testkit::eventually(Duration::from_secs(10), &format!("a closed {name} span"), || async {
        spans_in(service, name).ok()?.into_iter().find(|f| matches(f))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tracing_no_trace_context_is_carried() -> anyhow::Result<()> {
    let t = team(sim_env(&[("RH_SIM_TOKENS", "3")])).await?;
    let conv = t.api.create_conversation(&t.owner, "Untraced").await?;
    let h = history_seq(&t.api, &t.owner, conv).await?;
    let mut ada = Viewer::join(&t.stack.ws_url(), &t.owner, conv, Some(h)).await?;
    let (http, base, _) = t.api.raw();
    let res = http
        .post(format!("{base}/conversations/{conv}/messages"))
        .bearer_auth(&t.owner.token)
        .header("traceparent", TRACEPARENT)
        .json(&serde_json::json!({"text": "Not traced"}))
        .send()
        .await?;
    let rid: Uuid = response_id(&res.json().await?)?;
    ada.until_response_end(rid).await?;
    // Every stored event of the answer has only the headers it always had.
    let js = async_nats::jetstream::new(t.stack.nats.client().await?);
    let stream = js.get_stream(rh_protocol::subjects::STREAM_CONV).await?;
    for seen in &ada.seen {
        let msg = stream.get_raw_message(seen.seq).await?;
        assert!(msg.headers.get("traceparent").is_none(), "seq {} carries a trace context", seen.seq);
    }
    Ok(())
}
