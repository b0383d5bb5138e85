//! Three edges behind a real HAProxy (round robin, no sticky sessions): viewers connect through it, one edge goes
//! away in the middle of a streaming response — killed, or drained with SIGTERM — and its viewers reconnect through
//! the load balancer with their last `seq`. Every viewer ends with the complete text, no gap, no duplicate.

use crate::helpers::*;
use rh_protocol::ServerFrame;
use rh_testkit::{HaProxy, Service, Session, StackOptions, WsClient};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// A viewer that follows one conversation through the load balancer, reconnecting (with its last `seq`) whenever
/// its socket goes away.
struct Roamer {
    lb: String,
    who: Session,
    conversation: Uuid,
    ws: WsClient,
    seen: Vec<Seen>,
    /// How each of its sockets ended (`None`: no close frame, e.g. the edge was killed).
    closes: Vec<Option<u16>>,
    subscribed_at: u64,
}

impl Roamer {
    async fn join(lb: &str, who: &Session, conversation: Uuid) -> anyhow::Result<Roamer> {
        let ws = WsClient::connect(lb, &who.token).await?;
        let mut r = Roamer {
            lb: lb.to_owned(),
            who: who.clone(),
            conversation,
            ws,
            seen: Vec::new(),
            closes: Vec::new(),
            subscribed_at: 0,
        };
        r.subscribed_at = r.subscribe(None).await?;
        Ok(r)
    }

    fn last_seq(&self) -> u64 {
        self.seen.last().map(|s| s.seq).unwrap_or(self.subscribed_at)
    }

    async fn subscribe(&mut self, after_seq: Option<u64>) -> anyhow::Result<u64> {
        self.ws.subscribe(self.conversation, after_seq).await?;
        let (f, _) =
            self.ws.until(WAIT, |f| matches!(f, ServerFrame::Subscribed { .. } | ServerFrame::Error { .. })).await?;
        match f {
            ServerFrame::Subscribed { seq, .. } => Ok(seq),
            other => anyhow::bail!("subscribe refused: {other:?}"),
        }
    }

    /// Connects again through the load balancer and resumes from the last seq, retrying until it can.
    async fn reconnect(&mut self) -> anyhow::Result<()> {
        let last = self.last_seq();
        self.ws = rh_testkit::eventually(WAIT, "reconnecting through the load balancer", || async {
            WsClient::connect(&self.lb, &self.who.token).await.ok()
        })
        .await?;
        let seq = self.subscribe(Some(last)).await?;
        anyhow::ensure!(seq == last, "resubscribed at {seq}, asked for {last}");
        Ok(())
    }

    /// Reads until `response_id` ends, reconnecting as needed; counts its deltas in `progress`.
    async fn follow(mut self, response_id: Uuid, progress: Arc<AtomicUsize>) -> anyhow::Result<Roamer> {
        let deadline = tokio::time::Instant::now() + 3 * WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.ws.next_or_close(left).await? {
                Ok(ServerFrame::Event { conversation_id, seq, event }) if conversation_id == self.conversation => {
                    let end = event.event.is_response_end() && event.event.response_id() == Some(response_id);
                    if event.event.is_delta() {
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                    self.seen.push(Seen { seq, event });
                    if end {
                        return Ok(self);
                    }
                }
                Ok(_) => {}
                Err(code) => {
                    self.closes.push(code);
                    self.reconnect().await?;
                }
            }
        }
    }
}

/// Open sockets on an edge, from its `/metrics`.
async fn connections(edge: &Service) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{}/metrics", edge.http_url())).await?.text().await?;
    text.lines()
        .find_map(|l| l.strip_prefix("relayhub_edge_connections ").and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| anyhow::anyhow!("no relayhub_edge_connections"))
}

#[derive(Clone, Copy)]
enum Away {
    Killed,
    Drained,
}

/// Six viewers through HAProxy over three edges; the busiest edge goes `away` mid-response.
async fn one_edge_goes_away(away: Away) -> anyhow::Result<()> {
    let t = team(StackOptions { edges: 3, ..StackOptions::default() }).await?;
    let lb = HaProxy::start(&t.stack.edges.iter().map(|e| e.addr()).collect::<Vec<_>>()).await?;
    let conv = t.api.create_conversation(&t.owner, "Behind the balancer").await?;
    t.api.share(&t.owner, conv, &t.ben, "view").await?;
    t.api.share(&t.owner, conv, &t.cy, "view").await?;
    let people = [&t.owner, &t.ben, &t.cy, &t.owner, &t.ben, &t.cy];
    let mut roamers = Vec::new();
    for who in people {
        roamers.push(Roamer::join(&lb.ws_url(), who, conv).await?);
    }
    let mut per_edge = Vec::new();
    for edge in &t.stack.edges {
        per_edge.push(connections(edge).await?);
    }
    assert_eq!(per_edge.iter().sum::<f64>(), 6.0, "every viewer is on an edge: {per_edge:?}");
    assert!(per_edge.iter().all(|n| *n >= 1.0), "round robin, no stickiness: {per_edge:?}");

    let rid = response_id(&t.api.send_message(&t.owner, conv, "/sim tokens=150 rate=50\nWrite it all").await?)?;
    let progress = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = roamers.into_iter().map(|r| tokio::spawn(r.follow(rid, progress.clone()))).collect();

    // A fifth of the way in, the busiest edge goes away.
    rh_testkit::eventually(WAIT, "every viewer well into the response", || async {
        (progress.load(Ordering::Relaxed) >= 6 * 30).then_some(())
    })
    .await?;
    let (victim, on_victim) =
        per_edge.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, n)| (i, *n)).unwrap_or((0, 0.0));
    let mut stack = t.stack;
    match away {
        Away::Killed => stack.edges[victim].kill().await,
        Away::Drained => stack.edges[victim].terminate(Duration::from_secs(15)).await,
    }

    let mut texts = Vec::new();
    let mut moved = 0;
    for task in tasks {
        let r = task.await??;
        let text = check_response(&r.seen, rid)?;
        // What each socket saw, reconnects included, is one gapless, duplicate-free run of positions.
        for w in r.seen.windows(2) {
            assert!(w[0].seq < w[1].seq, "seq {} then {}", w[0].seq, w[1].seq);
        }
        if !r.closes.is_empty() {
            moved += 1;
            let want = match away {
                Away::Killed => None,
                Away::Drained => Some(1001),
            };
            assert_eq!(r.closes, [want], "how the viewer's socket ended");
        }
        texts.push(text);
    }
    assert_eq!(moved as f64, on_victim, "the viewers of the edge that went away moved, and only they");
    let stored = stored_response(&t.api, &t.owner, conv, rid).await?;
    assert!(texts.iter().all(|t| *t == stored), "every viewer has the stored text");
    let pg = stack.db.connect().await?;
    let n: i64 = pg.query_one("SELECT count(*) FROM messages WHERE id = $1", &[&rid]).await?.get(0);
    assert_eq!(n, 1, "the response is stored once");
    drop(lb);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_killed_mid_response_loses_its_viewers_nothing() -> anyhow::Result<()> {
    one_edge_goes_away(Away::Killed).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_edge_sends_its_viewers_elsewhere_with_nothing_lost() -> anyhow::Result<()> {
    one_edge_goes_away(Away::Drained).await
}
