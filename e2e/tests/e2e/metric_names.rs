//! The metrics the four binaries export, as an operator's Prometheus scrapes them: a stack answers a question for a
//! viewer (so histograms, labelled counters and the catch-up path have samples), then every service's `/metrics` is
//! read and the sample names are written to `target/metrics/exported.txt`. `helm/test.sh` checks that every
//! `relayhub_*` metric the chart's Grafana dashboard and alert rules name is in that file (issue 12 item 5).

use crate::helpers::*;
use rh_testkit::StackOptions;
use std::collections::BTreeSet;

/// Sample names (`relayhub_edge_connections`, `..._bucket`, `..._sum`, `..._count`) of one `/metrics` text.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_exports_its_metrics_and_their_names_are_written_for_the_chart_check() -> anyhow::Result<()> {
    let t = team(StackOptions::default()).await?;
    let conv = t.api.create_conversation(&t.owner, "Metrics").await?;
    let h = history_seq(&t.api, &t.owner, conv).await?;
    let mut v = Viewer::join(&t.stack.ws_url(), &t.owner, conv, Some(h)).await?;
    let rid = response_id(&t.api.send_message(&t.owner, conv, "/sim tokens=10 rate=200\nhello").await?)?;
    v.until_response_end(rid).await?;
    stored_response(&t.api, &t.owner, conv, rid).await?;
    // A late joiner catches up on the finished answer (catch-up metrics).
    Viewer::join(&t.stack.ws_url(), &t.owner, conv, Some(h)).await?;

    let http = reqwest::Client::new();
    let mut services = vec![("api", t.stack.api.http_url()), ("edge", t.stack.edges[0].http_url())];
    services.push(("worker", t.stack.workers[0].http_url()));
    if let Some(audit) = &t.stack.audit {
        services.push(("audit", audit.http_url()));
    }
    let mut all = BTreeSet::new();
    for (service, url) in services {
        let text = http.get(format!("{url}/metrics")).send().await?.error_for_status()?.text().await?;
        let names = sample_names(&text);
        let prefix = format!("relayhub_{service}_");
        anyhow::ensure!(names.iter().any(|n| n.starts_with(&prefix)), "{service} exports no {prefix}* metric: {text}");
        all.extend(names);
    }
    for expected in [
        "relayhub_edge_connections",
        "relayhub_edge_frames_out_total",
        "relayhub_edge_live_lag_seconds_bucket",
        "relayhub_worker_time_to_first_token_seconds_bucket",
        "relayhub_audit_oldest_unwritten_seconds",
        "relayhub_api_http_request_duration_seconds_bucket",
    ] {
        anyhow::ensure!(all.contains(expected), "{expected} missing from the exported metrics");
    }

    let dir = rh_testkit::target_dir().join("metrics");
    std::fs::create_dir_all(&dir)?;
    let list: String = all.iter().map(|n| format!("{n}\n")).collect();
    std::fs::write(dir.join("exported.txt"), list)?;
    Ok(())
}
