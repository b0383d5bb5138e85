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
//!
//! | module | what it does |
//! |---|---|
//! | this one | who a viewer is ([`ViewerSpec`], [`Role`]), what a phase shares ([`PhaseCtx`], [`Plan`]), and [`run`] |
//! | `socket` | the socket of any [`Transport`]: connecting (counted), reconnecting, the next frame or envelope |
//! | `edge` | edge frames (the edge, `bare` and `pushpin`): the subscribe handshake and every later frame |
//! | `read` | reading a subscribed socket to its end: the plan, the deadline, churn, resubscribes, reconnects |
//! | `events` | one event: the [`Checker`], latency, catch-up, what the monitor tells the others, churn points |
//! | `finish` | the final checks: every expected response ended here, with the monitor's text |
//!
//! The `nats-ws` baseline's wire (NATS text protocol) is [`crate::baseline`]'s.

mod edge;
mod events;
mod finish;
mod read;
mod socket;

use crate::check::{Checker, EndKind};
use crate::metrics::{LocalHist, Metrics};
use crate::net::{Net, Target};
use crate::silence::Silence;
use rh_client::Client;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

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
}
