//! `/readyz` of every binary follows its dependencies, as a load balancer sees it: the api and the audit writer
//! need NATS and PostgreSQL, the edge and the worker need NATS. The test kills the stack's nats-server, and later
//! stops its PostgreSQL server (a private one, [`PgCluster`]), and watches each `/readyz` turn 503 within a second
//! or two, then 200 again once the dependency is back.

use crate::helpers::WAIT;
use rh_testkit::{PgCluster, Stack, StackOptions};
use std::time::{Duration, Instant};

/// How soon a binary must notice: it checks every 250 ms, a check may take up to 750 ms; the rest is headroom
/// for a busy 2-core machine.
const NOTICE: Duration = Duration::from_millis(2500);

async fn readyz(http: &reqwest::Client, url: &str) -> u16 {
    match http.get(format!("{url}/readyz")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Waits until every one of `services` answers `want`; returns how long the slowest took.
async fn all_answer(http: &reqwest::Client, services: &[(&str, String)], want: u16, deadline: Duration) -> Duration {
    let start = Instant::now();
    for (name, url) in services {
        rh_testkit::eventually(deadline, &format!("{name} /readyz {want}"), || async {
            (readyz(http, url).await == want).then_some(())
        })
        .await
        .unwrap();
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_nats_and_postgres_on_every_binary() {
    let pg = PgCluster::start().unwrap();
    let options = StackOptions { pg_admin_url: Some(pg.admin_url()), ..StackOptions::default() };
    let mut stack = Stack::start(options).await.unwrap();
    rh_testkit::init_crypto();
    let http = reqwest::Client::new();
    let url = |s: &rh_testkit::Service| s.http_url();
    let api = ("api", url(&stack.api));
    let edge = ("edge", url(&stack.edges[0]));
    let audit = ("audit", url(stack.audit.as_ref().unwrap()));
    let worker = ("worker", url(&stack.workers[0]));
    let everyone = [api.clone(), edge.clone(), audit.clone(), worker.clone()];
    all_answer(&http, &everyone, 200, WAIT).await;

    // NATS goes away: every binary stops being ready.
    stack.nats.stop().await;
    let took = all_answer(&http, &everyone, 503, NOTICE).await;
    eprintln!("NATS killed: every /readyz 503 after {took:?}");
    stack.nats.restart().await.unwrap();
    let took = all_answer(&http, &everyone, 200, WAIT).await;
    eprintln!("NATS back: every /readyz 200 after {took:?}");

    // PostgreSQL stops: the api and the audit writer stop being ready; the edge and the worker, which never touch
    // it, stay ready.
    pg.stop().unwrap();
    let took = all_answer(&http, &[api.clone(), audit.clone()], 503, NOTICE).await;
    eprintln!("PostgreSQL stopped: api and audit /readyz 503 after {took:?}");
    for (name, url) in [&edge, &worker] {
        assert_eq!(readyz(&http, url).await, 200, "{name} does not need PostgreSQL");
    }
    pg.resume().unwrap();
    let took = all_answer(&http, &everyone, 200, WAIT).await;
    eprintln!("PostgreSQL back: every /readyz 200 after {took:?}");
}
