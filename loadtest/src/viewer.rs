//! One simulated viewer: a socket (to an edge, or to nats-server for the baseline) subscribed to one conversation,
//! whose every event goes through a [`Checker`] and into the metrics.
//!
//! Roles: the per-conversation **monitor** (a viewer that also tells the responders and late joiners what happens
//! in its conversation), **initial** viewers (subscribed before the first message; some churn), **late joiners**
//! (read the history `seq` over HTTP while a response streams, subscribe with `after_seq`, and measure how long
//! the replay takes to reach the live position) and **idle** sockets (subscribed to a silent conversation, for
//! memory per connection).
//!
//! A viewer runs until the [`Plan`] (the list of responses the responders created, published once they are all
//! done) is fulfilled for it, or the drain deadline passes; then it records what it missed.

use crate::baseline::NatsWs;
use crate::check::{Checker, EndKind, Seen, WireEvent, WireFrame};
use crate::metrics::{LocalHist, Metrics};
use crate::net::{Net, Target, Ws};
use crate::silence::Silence;
use futures::{SinkExt, StreamExt};
use rh_client::Client;
use rh_protocol::{ClientFrame, ServerFrame};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a subscribe may take to be confirmed.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Reconnects after unexpected closes before a viewer gives up.
const MAX_RECONNECTS: u32 = 5;
/// In a chaos run a viewer may lose its socket at every kill.
const CHAOS_MAX_RECONNECTS: u32 = 1000;
/// In a chaos run, how long a viewer keeps trying to get back onto an edge.
const CHAOS_RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Where viewers connect.
#[derive(Clone)]
pub enum Transport {
    /// Our edge(s): viewer `i` uses edge `i mod n`; each reconnect moves on to the next.
    Edge(Vec<Target>),
    /// nats-server's WebSocket listener, the login it asks for, and whether viewers take the republished (stored)
    /// events rather than the published ones.
    NatsWs(Target, Option<crate::baseline::NatsLogin>, bool),
    /// The `bare-fanout` broadcaster (edge frames, synthetic responses, no replay).
    Bare(Target),
    /// A private Pushpin in front of the load tool's origin and publisher (edge frames, no replay).
    Pushpin(Target, Arc<crate::pushpin::Pushpin>),
}

impl Transport {
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Edge(_) => "edge",
            Transport::NatsWs(_, _, false) => "nats-ws",
            Transport::NatsWs(_, _, true) => "nats-ws-live",
            Transport::Bare(_) => "bare",
            Transport::Pushpin(..) => "pushpin",
        }
    }

    /// The process that fans out in this phase (its `--cpu-pid` name).
    pub fn server_process(&self) -> &'static str {
        match self {
            Transport::Edge(_) => "edge",
            Transport::NatsWs(..) => "nats-server",
            Transport::Bare(_) => "bare-fanout",
            Transport::Pushpin(..) => "pushpin",
        }
    }

    /// A baseline: no auth, no replay, no positions to resume from; every viewer expects every response.
    pub fn is_baseline(&self) -> bool {
        !matches!(self, Transport::Edge(_))
    }

    /// Where viewer `index` connects on its `attempt`-th connect.
    fn target(&self, index: usize, attempt: usize) -> &Target {
        match self {
            Transport::Edge(t) => &t[(index + attempt) % t.len()],
            Transport::NatsWs(t, ..) | Transport::Bare(t) | Transport::Pushpin(t, _) => t,
        }
    }
}

/// How one response ended, as the monitor saw it.
#[derive(Debug, Clone, Copy)]
pub struct End {
    pub kind: EndKind,
    pub text_hash: u64,
    pub at: Instant,
}

/// What the monitor of a conversation tells the others.
pub struct ConvState {
    pub id: Uuid,
    /// The newest position the monitor received (the live position, for late joiners' catch-up).
    pub last_seq: AtomicU64,
    /// When the first response started streaming.
    pub first_started: watch::Sender<Option<Instant>>,
    /// Responses that ended.
    pub ends: watch::Sender<HashMap<Uuid, End>>,
}

impl ConvState {
    pub fn new(id: Uuid) -> Arc<Self> {
        Arc::new(ConvState {
            id,
            last_seq: AtomicU64::new(0),
            first_started: watch::Sender::new(None),
            ends: watch::Sender::new(HashMap::new()),
        })
    }
}

/// A response the responders created.
#[derive(Debug, Clone)]
pub struct Planned {
    pub response_id: Uuid,
    /// Position of its `message.created`: a viewer subscribed after an earlier position must see it.
    pub msg_seq: u64,
    /// Hash of the final text the monitor saw.
    pub reference: Option<u64>,
}

/// Published once every responder is done.
#[derive(Debug)]
pub struct Plan {
    pub responses: HashMap<Uuid, Vec<Planned>>,
    /// Viewers stop waiting for missing events at this time.
    pub deadline: Instant,
}

/// What every viewer of a phase shares.
pub struct PhaseCtx {
    pub metrics: Arc<Metrics>,
    pub net: Arc<Net>,
    pub api: Client,
    pub transport: Transport,
    pub plan: watch::Receiver<Option<Arc<Plan>>>,
    /// Ends idle sockets (and everything, on abort).
    pub cancel: CancellationToken,
    pub response_time: Duration,
    pub churn_pause: Duration,
    /// Subscribe with `compact` catch-up.
    pub compact: bool,
    /// Late joiners subscribe with the grant of their history request.
    pub grants: bool,
    /// A chaos run: lost sockets and refused connects are disruptions to ride out, not errors.
    pub chaos: bool,
}

#[derive(Clone)]
pub enum Role {
    Monitor(Arc<ConvState>),
    Initial {
        churn: bool,
    },
    /// Joins while a response streams; `state` gives the live position at subscribe time.
    Late(Arc<ConvState>),
    Idle,
}

/// Who a viewer is.
#[derive(Clone)]
pub struct ViewerSpec {
    /// For messages: `c12/v7`, `c12/late3`, `c12/monitor`, `idle/41`.
    pub name: String,
    /// Global number: picks the edge, the histogram shard and the churn randomness.
    pub index: usize,
    pub conversation: Uuid,
    pub token: String,
    pub role: Role,
    /// Subscribe after this position (initial viewers: the conversation's history `seq`).
    pub after_seq: Option<u64>,
    /// Takes `sidebar` frames (see [`crate::scenario`]: one socket per account, as a person's one app tab).
    pub sidebar: bool,
}

enum Conn {
    Edge(Ws),
    Nats(NatsWs),
}

impl Conn {
    async fn close(self) {
        match self {
            Conn::Edge(mut ws) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
            }
            Conn::Nats(n) => n.close().await,
        }
    }
}

/// What came off a socket.
enum Inbound {
    Frame(tokio_tungstenite::tungstenite::Utf8Bytes),
    Envelope(bytes::Bytes),
    Nothing,
    Closed(String),
}

async fn next_inbound(conn: &mut Conn) -> Inbound {
    match conn {
        Conn::Edge(ws) => match ws.next().await {
            Some(Ok(Message::Text(t))) => Inbound::Frame(t),
            Some(Ok(Message::Binary(b))) => match tokio_tungstenite::tungstenite::Utf8Bytes::try_from(b) {
                Ok(s) => Inbound::Frame(s),
                Err(_) => Inbound::Closed("binary frame that is not UTF-8".into()),
            },
            Some(Ok(Message::Close(c))) => Inbound::Closed(format!("closed by the server: {c:?}")),
            Some(Ok(_)) => Inbound::Nothing,
            Some(Err(e)) => Inbound::Closed(format!("socket error: {e}")),
            None => Inbound::Closed("socket ended".into()),
        },
        Conn::Nats(n) => match n.next_payload().await {
            Ok(p) => Inbound::Envelope(p),
            Err(e) => Inbound::Closed(e.to_string()),
        },
    }
}

/// splitmix64: cheap deterministic randomness (churn points) without a dependency.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Per-late-joiner catch-up measurement in progress.
struct Catchup {
    sent: Instant,
    sent_us: i64,
    live_seq: u64,
    replay_done: bool,
    live_done: bool,
}

/// What to do after a frame.
enum Next {
    Continue,
    Done,
    Resubscribe,
    Reconnect(String),
    Stop,
}

struct Viewer {
    spec: ViewerSpec,
    ctx: Arc<PhaseCtx>,
    checker: Checker,
    lat: LocalHist,
    /// Position of the first subscription (responses after it are expected); `None` on the baseline.
    initial_after: Option<u64>,
    plan: Option<Arc<Plan>>,
    expected: HashSet<Uuid>,
    remaining: usize,
    churn_at: Option<Instant>,
    churned: HashSet<Uuid>,
    reconnects: u32,
    connects: u32,
    catchup: Option<Catchup>,
    /// Event frames that arrived before `subscribed`.
    early: Vec<String>,
    silence: Silence,
    /// A late joiner's signed grant from its history request, for its first subscribe.
    grant: Option<String>,
}

/// Runs one viewer to the end. `ready` gets `true` once it is subscribed (`false` if it never got there).
pub async fn run(spec: ViewerSpec, ctx: Arc<PhaseCtx>, ready: Option<mpsc::UnboundedSender<bool>>) {
    let mut plan_rx = ctx.plan.clone();
    let mut v = Viewer {
        lat: LocalHist::new(spec.index),
        spec,
        ctx,
        checker: Checker::default(),
        initial_after: None,
        plan: None,
        expected: HashSet::new(),
        remaining: 0,
        churn_at: None,
        churned: HashSet::new(),
        reconnects: 0,
        connects: 0,
        catchup: None,
        early: Vec::new(),
        silence: Silence::default(),
        grant: None,
    };
    if let Role::Late(_) = v.spec.role {
        match v.ctx.api.conversation(&v.spec.token, v.spec.conversation).await {
            Ok(detail) => {
                v.spec.after_seq = Some(detail.seq);
                v.grant = detail.grant.filter(|_| v.ctx.grants);
            }
            Err(e) => {
                v.ctx.metrics.error("late_join_history");
                tracing::warn!(viewer = v.spec.name, error = %e, "could not read the history seq");
                if let Some(r) = ready {
                    let _ = r.send(false);
                }
                return;
            }
        }
    }
    let after = v.spec.after_seq;
    let conn = v.connect(after).await;
    if let Some(r) = ready {
        let _ = r.send(conn.is_some());
    }
    let Some(conn) = conn else { return };
    Metrics::inc(&v.ctx.metrics.connections_open);
    if let Role::Idle = v.spec.role {
        v.idle(conn).await;
        v.ctx.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let early = std::mem::take(&mut v.early);
    let mut done = false;
    let mut conn = Some(conn);
    for f in early {
        if let Next::Done = v.on_frame(&f) {
            done = true;
        }
    }
    // The plan may already be out (a late subscriber).
    if plan_rx.borrow().is_some() {
        v.plan = plan_rx.borrow().clone();
        done |= v.on_plan();
    }
    if !done && let Some(c) = conn.take() {
        conn = v.read_loop(c, &mut plan_rx).await;
    }
    v.finish();
    v.ctx.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
    if let Some(c) = conn {
        c.close().await;
    }
}

impl Viewer {
    fn metrics(&self) -> &Metrics {
        &self.ctx.metrics
    }

    /// Connects and subscribes (after `after_seq` on the edge). Counts failures; `None` if it failed.
    async fn connect(&mut self, after_seq: Option<u64>) -> Option<Conn> {
        let attempt = self.connects as usize;
        self.connects += 1;
        let ctx = self.ctx.clone();
        let res = match &ctx.transport {
            Transport::Edge(_) | Transport::Bare(_) | Transport::Pushpin(..) => {
                let target = ctx.transport.target(self.spec.index, attempt);
                let mut res = self.connect_edge(target, after_seq).await;
                // Under a burst of connects Pushpin's proxy answers some upgrades with 502 itself (the origin never
                // sees them) or resets a socket right after it opened: like a browser, try again, counted as
                // `connect_retries` rather than as errors (the summary shows them).
                let mut tries = 0;
                while matches!(ctx.transport, Transport::Pushpin(..)) && tries < 5 && res.is_err() {
                    tries += 1;
                    Metrics::inc(&self.metrics().connect_retries);
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                    res = self.connect_edge(target, after_seq).await;
                }
                res
            }
            Transport::NatsWs(target, login, live) => {
                match NatsWs::connect(&self.ctx.net, target, login.as_ref(), self.spec.conversation, *live).await {
                    Ok((n, connect, subscribe)) => {
                        let m = self.metrics();
                        m.connect.record(self.spec.index, connect.as_micros() as u64);
                        m.subscribe.record(self.spec.index, subscribe.as_micros() as u64);
                        Metrics::inc(&m.connections_opened);
                        Ok(Conn::Nats(n))
                    }
                    Err(e) => Err(("connect_failed".to_owned(), e.to_string())),
                }
            }
        };
        match res {
            Ok(c) => Some(c),
            Err((kind, detail)) => {
                if self.ctx.chaos {
                    Metrics::inc(&self.metrics().disruptions);
                } else {
                    self.metrics().error(kind);
                }
                tracing::debug!(viewer = self.spec.name, detail, "connect failed");
                None
            }
        }
    }

    async fn connect_edge(&mut self, target: &Target, after_seq: Option<u64>) -> Result<Conn, (String, String)> {
        let (mut ws, took) = self
            .ctx
            .net
            .websocket(target, &self.spec.token, self.spec.sidebar)
            .await
            .map_err(|e| ("connect_failed".to_owned(), format!("{e:#}")))?;
        let m = self.metrics();
        m.connect.record(self.spec.index, took.as_micros() as u64);
        Metrics::inc(&m.connections_opened);
        if let (Role::Late(state), None) = (&self.spec.role, self.initial_after) {
            let live_seq = state.last_seq.load(Ordering::Acquire);
            self.catchup = Some(Catchup {
                sent: Instant::now(),
                sent_us: rh_protocol::now_us(),
                live_seq,
                replay_done: false,
                live_done: false,
            });
        }
        let seq = self.subscribe(&mut ws, after_seq).await?;
        if self.initial_after.is_none() {
            self.initial_after = Some(seq);
        }
        self.checker.start_after(seq);
        if let Some(c) = &mut self.catchup
            && c.live_seq <= seq
        {
            // Nothing to replay: caught up as soon as the subscription stands.
            c.replay_done = true;
            self.ctx.metrics.catchup_replay.record(self.spec.index, c.sent.elapsed().as_micros() as u64);
        }
        Ok(Conn::Edge(ws))
    }

    /// Sends `subscribe` and waits for `subscribed` (event frames before it are kept for later).
    async fn subscribe(&mut self, ws: &mut Ws, after_seq: Option<u64>) -> Result<u64, (String, String)> {
        let frame = ClientFrame::Subscribe {
            conversation_id: self.spec.conversation,
            after_seq,
            compact: self.ctx.compact,
            grant: self.grant.take(),
        };
        let text = serde_json::to_string(&frame).map_err(|e| ("internal".to_owned(), e.to_string()))?;
        let sent = Instant::now();
        ws.send(Message::Text(text.into())).await.map_err(|e| ("subscribe_send".to_owned(), e.to_string()))?;
        let deadline = sent + SUBSCRIBE_TIMEOUT;
        loop {
            let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => return Err(("subscribe_timeout".into(), "no subscribed frame in time".into())),
                Ok(None) => return Err(("subscribe_closed".into(), "socket ended".into())),
                Ok(Some(Err(e))) => return Err(("subscribe_closed".into(), e.to_string())),
                Ok(Some(Ok(m))) => m,
            };
            let text = match msg {
                Message::Text(t) => t.as_str().to_owned(),
                Message::Close(c) => return Err(("subscribe_closed".into(), format!("{c:?}"))),
                _ => continue,
            };
            let Ok(head) = serde_json::from_str::<WireFrame>(&text) else {
                return Err(("bad_frame".into(), text.chars().take(200).collect()));
            };
            match head.kind.as_ref() {
                "subscribed" if head.conversation_id == Some(self.spec.conversation) => {
                    self.metrics().subscribe.record(self.spec.index, sent.elapsed().as_micros() as u64);
                    return head.seq.ok_or_else(|| ("bad_frame".into(), "subscribed without seq".into()));
                }
                "event" => self.early.push(text),
                "error" => {
                    let (code, message) = match serde_json::from_str::<ServerFrame>(&text) {
                        Ok(ServerFrame::Error { code, message, .. }) => (code, message),
                        _ => ("unknown".to_owned(), text.clone()),
                    };
                    return Err((format!("subscribe_refused_{code}"), message));
                }
                _ => {}
            }
        }
    }

    async fn idle(&mut self, mut conn: Conn) {
        loop {
            tokio::select! {
                _ = self.ctx.cancel.cancelled() => break,
                inbound = next_inbound(&mut conn) => match inbound {
                    Inbound::Closed(why) => {
                        self.ctx.metrics.error("idle_socket_closed");
                        tracing::debug!(viewer = self.spec.name, why, "idle socket closed");
                        return;
                    }
                    _ => continue,
                },
            }
        }
        conn.close().await;
    }

    async fn read_loop(&mut self, mut conn: Conn, plan_rx: &mut watch::Receiver<Option<Arc<Plan>>>) -> Option<Conn> {
        let cancel = self.ctx.cancel.clone();
        loop {
            let churn_at = self.churn_at;
            let deadline = self.plan.as_ref().map(|p| p.deadline);
            let waiting_plan = self.plan.is_none();
            let next = tokio::select! {
                _ = cancel.cancelled() => Next::Stop,
                changed = plan_rx.changed(), if waiting_plan => {
                    if changed.is_err() {
                        Next::Stop
                    } else {
                        self.plan = plan_rx.borrow().clone();
                        if self.on_plan() { Next::Done } else { Next::Continue }
                    }
                }
                _ = sleep_opt(deadline) => Next::Stop,
                _ = sleep_opt(churn_at) => {
                    self.churn_at = None;
                    Next::Reconnect(String::new())
                }
                inbound = next_inbound(&mut conn) => match inbound {
                    Inbound::Frame(text) => {
                        self.metrics().bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                        self.on_frame(text.as_str())
                    }
                    Inbound::Envelope(payload) => {
                        self.metrics().bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
                        self.on_envelope(None, &payload)
                    }
                    Inbound::Nothing => Next::Continue,
                    Inbound::Closed(why) => Next::Reconnect(why),
                },
            };
            match next {
                Next::Continue => {}
                Next::Done | Next::Stop => return Some(conn),
                Next::Resubscribe => {
                    // The edge dropped the live stream (lagged): ask again from the last position.
                    if let Conn::Edge(ws) = &mut conn {
                        let frame = ClientFrame::Subscribe {
                            conversation_id: self.spec.conversation,
                            after_seq: Some(self.checker.last_seq()),
                            compact: self.ctx.compact,
                            grant: None,
                        };
                        let text = serde_json::to_string(&frame).unwrap_or_default();
                        if ws.send(Message::Text(text.into())).await.is_err() {
                            self.metrics().error("resubscribe_failed");
                        }
                    }
                }
                Next::Reconnect(why) => {
                    let planned = why.is_empty();
                    if !planned {
                        self.reconnects += 1;
                        if self.ctx.chaos {
                            Metrics::inc(&self.metrics().disruptions);
                        } else {
                            self.metrics().error("socket_closed");
                        }
                        tracing::debug!(viewer = self.spec.name, why, "socket closed unexpectedly");
                    }
                    let can_resume = !self.ctx.transport.is_baseline();
                    let max_reconnects = if self.ctx.chaos { CHAOS_MAX_RECONNECTS } else { MAX_RECONNECTS };
                    if !can_resume || self.reconnects > max_reconnects {
                        return Some(conn);
                    }
                    conn.close().await;
                    if planned {
                        tokio::time::sleep(self.ctx.churn_pause).await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Metrics::inc(&self.ctx.metrics.reconnects);
                    let last = self.checker.last_seq();
                    match self.connect(Some(last)).await {
                        Some(c) => {
                            conn = c;
                            let early = std::mem::take(&mut self.early);
                            for f in early {
                                if let Next::Done = self.on_frame(&f) {
                                    return Some(conn);
                                }
                            }
                        }
                        None => match self.reconnect_again(last).await {
                            Some(c) => conn = c,
                            None => return None,
                        },
                    }
                }
            }
        }
    }

    /// After a failed reconnect: once more after a pause, or, in a chaos run, until the edge is back (up to
    /// [`CHAOS_RECONNECT_FOR`]). Failures are counted by `connect`.
    async fn reconnect_again(&mut self, last: u64) -> Option<Conn> {
        let give_up = Instant::now() + if self.ctx.chaos { CHAOS_RECONNECT_FOR } else { Duration::ZERO };
        loop {
            self.reconnects += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Some(c) = self.connect(Some(last)).await {
                return Some(c);
            }
            if Instant::now() >= give_up {
                if self.ctx.chaos {
                    self.metrics().error("reconnect_gave_up");
                }
                return None;
            }
        }
    }

    /// An edge text frame.
    fn on_frame(&mut self, text: &str) -> Next {
        let head: WireFrame = match serde_json::from_str(text) {
            Ok(h) => h,
            Err(e) => {
                self.violation("malformed_frame", format!("{e}: {}", text.chars().take(200).collect::<String>()));
                return Next::Continue;
            }
        };
        match head.kind.as_ref() {
            "event" => {
                if head.conversation_id != Some(self.spec.conversation) {
                    return Next::Continue;
                }
                let Some(raw) = head.event else {
                    self.violation("malformed_frame", "event frame without event".into());
                    return Next::Continue;
                };
                match head.seq {
                    Some(seq) => self.on_envelope(Some(seq), raw.get().as_bytes()),
                    None => {
                        self.violation("malformed_frame", "event frame without seq".into());
                        Next::Continue
                    }
                }
            }
            "error" => {
                let code = match serde_json::from_str::<ServerFrame>(text) {
                    Ok(ServerFrame::Error { code, .. }) => code,
                    _ => "unknown".to_owned(),
                };
                self.metrics().error(format!("error_frame_{code}"));
                match code.as_str() {
                    "lagged" => Next::Resubscribe,
                    "cannot_recover" => Next::Stop,
                    _ => Next::Continue,
                }
            }
            "access_revoked" => {
                self.metrics().error("access_revoked");
                Next::Stop
            }
            _ => Next::Continue, // subscribed (after a resubscribe), presence, sidebar, pong, ...
        }
    }

    fn violation(&self, kind: &'static str, detail: String) {
        // Where this viewer's first subscription started and which edge it is on: what one needs to chase it.
        let edge =
            self.ctx.transport.target(self.spec.index, self.connects.saturating_sub(1) as usize).addr.to_string();
        let detail = format!(
            "{detail} [asked after_seq {:?}, subscribed at {:?}, on {edge}]",
            self.spec.after_seq, self.initial_after
        );
        self.ctx.metrics.violation(kind, &self.spec.name, self.spec.conversation, detail);
    }

    /// One event envelope at `seq`.
    fn on_envelope(&mut self, seq: Option<u64>, json: &[u8]) -> Next {
        let now_us = rh_protocol::now_us();
        self.silence.on_event(Instant::now().into_std());
        let ev: WireEvent = match serde_json::from_slice(json) {
            Ok(e) => e,
            Err(e) => {
                self.violation(
                    "malformed_event",
                    format!("{e}: {}", String::from_utf8_lossy(&json[..json.len().min(200)])),
                );
                return Next::Continue;
            }
        };
        let metrics = self.ctx.metrics.clone();
        Metrics::inc(&metrics.events);
        if ev.kind != "response.delta" {
            // Rare events get the full contract check.
            if let Err(e) = serde_json::from_slice::<rh_protocol::Envelope>(json) {
                self.violation("malformed_event", format!("{} does not match the protocol: {e}", ev.kind));
            }
        }
        let seen = self.checker.on_event(seq, &ev);
        for (kind, detail) in std::mem::take(&mut self.checker.violations) {
            self.violation(kind, detail);
        }
        if let Some(c) = &mut self.catchup {
            if let Some(seq) = seq
                && !c.replay_done
                && seq >= c.live_seq
            {
                c.replay_done = true;
                metrics.catchup_replay.record(self.spec.index, c.sent.elapsed().as_micros() as u64);
            }
            if !c.live_done && ev.ts_us >= c.sent_us {
                c.live_done = true;
                metrics.catchup_live.record(self.spec.index, c.sent.elapsed().as_micros() as u64);
            }
            if c.replay_done && c.live_done {
                self.catchup = None;
            }
        }
        if let Role::Monitor(state) = &self.spec.role
            && let Some(seq) = seq
        {
            state.last_seq.fetch_max(seq, Ordering::AcqRel);
        }
        match seen {
            Seen::Delta => {
                Metrics::inc(&metrics.deliveries);
                let index = ev.index.unwrap_or(0);
                let folded = index.saturating_sub(ev.from_index.unwrap_or(index)) + 1;
                metrics.deltas.fetch_add(u64::from(folded), Ordering::Relaxed);
                self.lat.record(&metrics.latency, (now_us - ev.ts_us).max(0) as u64);
                Next::Continue
            }
            Seen::Started { response_id, first } => {
                if let Role::Monitor(state) = &self.spec.role {
                    let now = Instant::now();
                    state.first_started.send_if_modified(|s| {
                        if s.is_none() {
                            *s = Some(now);
                            true
                        } else {
                            false
                        }
                    });
                }
                if first && matches!(self.spec.role, Role::Initial { churn: true }) && self.churned.insert(response_id)
                {
                    // Leave at a random point in the first 10–60 % of the response.
                    let r = mix(self.spec.index as u64 ^ response_id.as_u64_pair().0) % 1000;
                    let frac = 0.1 + 0.5 * (r as f64 / 1000.0);
                    self.churn_at = Some(Instant::now() + self.ctx.response_time.mul_f64(frac));
                }
                Next::Continue
            }
            Seen::Ended { response_id, kind, text_hash } => {
                if kind == EndKind::Completed {
                    Metrics::inc(&metrics.viewer_completions);
                }
                if let Role::Monitor(state) = &self.spec.role {
                    let end = End { kind, text_hash, at: Instant::now() };
                    state.ends.send_modify(|m| {
                        m.insert(response_id, end);
                    });
                }
                if self.plan.is_some() && self.expected.remove(&response_id) {
                    self.remaining = self.expected.len();
                    if self.remaining == 0 {
                        return Next::Done;
                    }
                }
                Next::Continue
            }
            Seen::Rejected | Seen::Other => Next::Continue,
        }
    }

    /// The plan arrived: which responses this viewer must see end. Returns true if it already has.
    fn on_plan(&mut self) -> bool {
        let Some(plan) = self.plan.clone() else { return false };
        let baseline = self.ctx.transport.is_baseline();
        let after = self.initial_after.unwrap_or(0);
        self.expected = plan
            .responses
            .get(&self.spec.conversation)
            .map(|rs| {
                rs.iter()
                    .filter(|p| baseline || p.msg_seq > after || self.checker.was_started(&p.response_id))
                    .filter(|p| self.checker.ended(&p.response_id).is_none())
                    .map(|p| p.response_id)
                    .collect()
            })
            .unwrap_or_default();
        self.remaining = self.expected.len();
        self.remaining == 0
    }

    /// Final checks: every expected response ended here, with the monitor's text.
    fn finish(&mut self) {
        self.lat.flush(&self.ctx.metrics.latency);
        self.silence.flush(self.spec.index, &self.ctx.metrics);
        let metrics = self.ctx.metrics.clone();
        Metrics::inc(&metrics.viewers_done);
        let Some(plan) = self.plan.clone() else {
            self.violation("no_plan", "the run ended before the responders finished".into());
            return;
        };
        let baseline = self.ctx.transport.is_baseline();
        let after = self.initial_after.unwrap_or(0);
        let mut all = true;
        for p in plan.responses.get(&self.spec.conversation).into_iter().flatten() {
            // Responses whose message is covered by this viewer's first position came with the HTTP history,
            // unless the response was still streaming then (the edge replays it: it started here).
            if !baseline && p.msg_seq <= after && !self.checker.was_started(&p.response_id) {
                continue;
            }
            metrics.completions_expected.fetch_add(1, Ordering::Relaxed);
            match self.checker.ended(&p.response_id) {
                Some((EndKind::Completed, hash)) => {
                    if p.reference.is_some_and(|r| r != hash) {
                        all = false;
                        self.violation(
                            "text_differs",
                            format!("response {}: final text differs from the monitor's", p.response_id),
                        );
                    } else {
                        Metrics::inc(&metrics.completions_ok);
                    }
                }
                Some(_) => all = false, // failed/stopped: counted when it happened
                None if self.checker.was_started(&p.response_id) => {
                    all = false;
                    self.violation(
                        "response_unfinished",
                        format!("response {} started but never ended here", p.response_id),
                    );
                }
                None => {
                    all = false;
                    self.violation("response_missing", format!("response {} never arrived", p.response_id));
                }
            }
        }
        let planned: HashSet<Uuid> =
            plan.responses.get(&self.spec.conversation).into_iter().flatten().map(|p| p.response_id).collect();
        let stray: Vec<(Uuid, u32)> =
            self.checker.unfinished().filter(|(id, _)| !planned.contains(id)).map(|(id, n)| (*id, n)).collect();
        for (id, n) in stray {
            all = false;
            self.violation("response_unfinished", format!("response {id} started ({n} deltas) but never ended"));
        }
        if all {
            Metrics::inc(&metrics.viewers_all_completed);
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
