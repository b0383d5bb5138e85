//! Counts behind `docs/capacity.md` (not a pass/fail test; run it by hand:
//! `scripts/test --test e2e -- --ignored capacity_counts --nocapture`). Counts of messages, rows and transactions
//! do not depend on how fast or busy the machine is, or on a debug build, so they are measured here on the real
//! binaries: 20 conversations, each with 4 viewers spread over 2 edges, each answering one question of 100
//! tokens. Between two snapshots taken while nothing else runs: nats-server's messages in and out (`/varz`),
//! PostgreSQL's transactions and rows written in the stack's database (`pg_stat_database`), the worker's deltas and
//! the edges' frames. Prints the totals and the figures per answer and per delta, and writes them to
//! `target/metrics/capacity-counts.txt`.

use crate::helpers::*;
use rh_testkit::StackOptions;
use std::time::Duration;

const CONVERSATIONS: usize = 20;
const VIEWERS: usize = 4;
const TOKENS: usize = 100;

#[derive(Debug, Default, Clone, Copy)]
struct Snapshot {
    nats_in: f64,
    nats_out: f64,
    commits: f64,
    rows_written: f64,
    deltas: f64,
    frames: f64,
    edge_nats_in: f64,
}

async fn metric(url: &str, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

async fn snapshot(t: &Team) -> anyhow::Result<Snapshot> {
    // pg_stat_database is flushed by each backend at most once a second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let varz: serde_json::Value = reqwest::get(format!("{}/varz", t.stack.nats.monitor_url())).await?.json().await?;
    let db = t.stack.db.connect().await?;
    let row = db
        .query_one(
            "SELECT xact_commit::float8, (tup_inserted + tup_updated + tup_deleted)::float8 FROM pg_stat_database \
             WHERE datname = current_database()",
            &[],
        )
        .await?;
    let mut s = Snapshot {
        nats_in: varz["in_msgs"].as_f64().unwrap_or_default(),
        nats_out: varz["out_msgs"].as_f64().unwrap_or_default(),
        commits: row.get(0),
        rows_written: row.get(1),
        deltas: metric(&t.stack.workers[0].http_url(), "relayhub_worker_deltas_published_total").await?,
        ..Snapshot::default()
    };
    for edge in &t.stack.edges {
        s.frames += metric(&edge.http_url(), "relayhub_edge_frames_out_total").await?;
        s.edge_nats_in += metric(&edge.http_url(), "relayhub_edge_nats_messages_in_total").await?;
    }
    Ok(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for docs/capacity.md, run by hand"]
async fn capacity_counts() -> anyhow::Result<()> {
    let t = team(StackOptions { edges: 2, ..StackOptions::default() }).await?;
    let mut viewers = Vec::new();
    let mut convs = Vec::new();
    for c in 0..CONVERSATIONS {
        let conv = t.api.create_conversation(&t.owner, &format!("capacity {c}")).await?;
        let h = history_seq(&t.api, &t.owner, conv).await?;
        for v in 0..VIEWERS {
            viewers.push(Viewer::join(&t.stack.ws_url_of(v % 2), &t.owner, conv, Some(h)).await?);
        }
        convs.push(conv);
    }
    let before = snapshot(&t).await?;
    let mut rids = Vec::new();
    for conv in &convs {
        let reply = t.api.send_message(&t.owner, *conv, &format!("/sim tokens={TOKENS} rate=100\nq")).await?;
        rids.push((*conv, response_id(&reply)?));
    }
    for (i, v) in viewers.iter_mut().enumerate() {
        v.until_response_end(rids[i / VIEWERS].1).await?;
    }
    for (conv, rid) in &rids {
        stored_response(&t.api, &t.owner, *conv, *rid).await?;
    }
    let after = snapshot(&t).await?;

    let answers = CONVERSATIONS as f64;
    let d = |f: fn(&Snapshot) -> f64| f(&after) - f(&before);
    let deltas = d(|s| s.deltas);
    let report = format!(
        "capacity_counts: {CONVERSATIONS} answers of {TOKENS} tokens, {VIEWERS} viewers each over 2 edges\n\
         worker deltas published: {deltas}\n\
         edge frames to sockets: {}\n\
         edges' NATS messages in: {} ({:.2} per delta)\n\
         nats-server messages in: {} ({:.2} per delta), out: {} ({:.2} per delta)\n\
         PostgreSQL commits: {} ({:.1} per answer), rows written: {} ({:.1} per answer)\n",
        d(|s| s.frames),
        d(|s| s.edge_nats_in),
        d(|s| s.edge_nats_in) / deltas,
        d(|s| s.nats_in),
        d(|s| s.nats_in) / deltas,
        d(|s| s.nats_out),
        d(|s| s.nats_out) / deltas,
        d(|s| s.commits),
        d(|s| s.commits) / answers,
        d(|s| s.rows_written),
        d(|s| s.rows_written) / answers,
    );
    println!("{report}");
    let dir = rh_testkit::target_dir().join("metrics");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("capacity-counts.txt"), report)?;
    Ok(())
}
