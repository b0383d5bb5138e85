//! The test environment: a real nats-server with RelayHub's streams, a real NATS responder playing the api's
//! part on `rh.api.*` (an ACL table in memory instead of PostgreSQL), and real `edge` processes.

use futures::StreamExt;
use rh_auth::{Claims, Role, Secret, TokenKeys};
use rh_protocol::event::Settings;
use rh_protocol::frame::ErrorCode;
use rh_protocol::rpc::{
    AccessGrant, AccessRequest, MessageAccepted, Reply, RpcError, SendMessageRequest, SocketCredential, SocketGrant,
    StopAccepted, StopRequest,
};
use rh_protocol::{Envelope, Event, Permission, ServerFrame, subjects};
use rh_testkit::{NatsServer, Service, WsClient};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestUser {
    pub id: Uuid,
    pub name: String,
    pub token: String,
}

/// What the api would know: who may see which conversation, and the seq its history covers.
#[derive(Default)]
pub struct Acl {
    pub access: HashMap<(Uuid, Uuid), Permission>,
    pub history_seq: HashMap<Uuid, u64>,
}

pub struct Env {
    pub nats: NatsServer,
    pub js: async_nats::jetstream::Context,
    pub client: async_nats::Client,
    pub secret: String,
    keys: TokenKeys,
    pub acl: Arc<Mutex<Acl>>,
    pub edges: Vec<Service>,
    /// Every event published by the test, by seq.
    pub published: Arc<Mutex<BTreeMap<u64, Envelope>>>,
}

impl Env {
    pub async fn start(edges: usize) -> anyhow::Result<Env> {
        Self::start_with(edges, &[]).await
    }

    pub async fn start_with(edges: usize, extra: &[(&str, &str)]) -> anyhow::Result<Env> {
        let nats = NatsServer::start().await?;
        let js = nats.jetstream().await?;
        let client = nats.client().await?;
        let secret = format!("edge-test-{}", Uuid::new_v4());
        let keys = TokenKeys::new(&Secret::new(secret.clone()));
        let mut env =
            Env { nats, js, client, secret, keys, acl: Arc::default(), edges: Vec::new(), published: Arc::default() };
        env.start_api_responder().await?;
        for _ in 0..edges {
            let e = env.spawn_edge(extra).await?;
            env.edges.push(e);
        }
        Ok(env)
    }

    pub async fn spawn_edge(&self, extra: &[(&str, &str)]) -> anyhow::Result<Service> {
        let mut vars = vec![
            ("RH_NATS_URL", self.nats.url()),
            ("RH_JWT_SECRET", self.secret.as_str()),
            ("RH_EDGE_LISTEN", "127.0.0.1:0"),
            ("RH_EDGE_PRESENCE_TTL_MS", "2000"),
        ];
        vars.extend_from_slice(extra);
        Service::spawn("edge", &vars).await
    }

    pub fn ws_url(&self, edge: usize) -> String {
        format!("ws://{}/ws", self.edges[edge].addr())
    }

    pub fn user(&self, name: &str) -> anyhow::Result<TestUser> {
        let id = Uuid::new_v4();
        let claims = Claims {
            sub: id,
            org: Uuid::nil(),
            name: name.to_owned(),
            email: format!("{}@acme.test", name.to_lowercase()),
            role: Role::Member,
            sid: Uuid::new_v4(),
            exp: rh_auth::expiry_in(3600),
        };
        Ok(TestUser { id, name: name.to_owned(), token: self.keys.issue(&claims)? })
    }

    /// The upgrade request of `user` to edge `edge` (`Authorization: Bearer`), for raw tungstenite sockets.
    pub fn request(
        &self,
        edge: usize,
        user: &TestUser,
    ) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = self.ws_url(edge).into_client_request()?;
        req.headers_mut().insert("authorization", format!("Bearer {}", user.token).parse()?);
        Ok(req)
    }

    pub async fn connect(&self, edge: usize, user: &TestUser) -> anyhow::Result<WsClient> {
        WsClient::connect(&self.ws_url(edge), &user.token).await
    }

    /// A conversation owned by `owner` (its `conversation.created` event published), history covering it.
    pub async fn conversation(&self, owner: &TestUser) -> anyhow::Result<Uuid> {
        let conv = Uuid::new_v4();
        self.grant(conv, owner, Permission::Owner);
        let seq = self
            .publish(
                conv,
                Some(owner.id),
                Event::ConversationCreated { owner_id: owner.id, title: "Test".into(), settings: Settings::default() },
            )
            .await?;
        self.set_history(conv, seq);
        Ok(conv)
    }

    pub fn grant(&self, conv: Uuid, user: &TestUser, permission: Permission) {
        self.acl.lock().unwrap().access.insert((conv, user.id), permission);
    }

    pub fn revoke(&self, conv: Uuid, user: &TestUser) {
        self.acl.lock().unwrap().access.remove(&(conv, user.id));
    }

    pub fn set_history(&self, conv: Uuid, seq: u64) {
        self.acl.lock().unwrap().history_seq.insert(conv, seq);
    }

    /// Publishes an event (acked) and returns its seq.
    pub async fn publish(&self, conv: Uuid, actor: Option<Uuid>, event: Event) -> anyhow::Result<u64> {
        publish(&self.js, &self.published, conv, actor, event).await
    }

    /// Starts publishing `n` deltas of one response, one every `every`, in the background; returns their seqs.
    pub fn stream_deltas(
        &self,
        conv: Uuid,
        n: u32,
        every: Duration,
    ) -> tokio::task::JoinHandle<anyhow::Result<Vec<u64>>> {
        let js = self.js.clone();
        let published = self.published.clone();
        tokio::spawn(async move {
            let rid = Uuid::new_v4();
            let mut seqs = Vec::new();
            for index in 0..n {
                let e = delta(rid, index, format!("t{index} "));
                seqs.push(publish(&js, &published, conv, None, e).await?);
                // Another conversation's traffic in between, so stream seqs are not contiguous.
                if index % 3 == 0 {
                    let other = delta(rid, index, "x");
                    publish(&js, &published, Uuid::new_v4(), None, other).await?;
                }
                tokio::time::sleep(every).await;
            }
            Ok(seqs)
        })
    }

    /// Seqs of `conv`'s events published so far, above `after`.
    pub fn published_after(&self, conv: Uuid, after: u64) -> Vec<u64> {
        self.published
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, e)| **s > after && e.conversation_id == conv)
            .map(|(s, _)| *s)
            .collect()
    }

    /// Waits until at least `n` of `conv`'s events above `after` are published (e.g. by [`Env::stream_deltas`]).
    pub async fn until_published(&self, conv: Uuid, after: u64, n: usize) -> anyhow::Result<()> {
        rh_testkit::eventually(WAIT, &format!("{n} events published"), || async {
            (self.published_after(conv, after).len() >= n).then_some(())
        })
        .await
    }

    pub fn envelope(&self, seq: u64) -> Option<Envelope> {
        self.published.lock().unwrap().get(&seq).cloned()
    }

    /// The `rh.api.*` responder: answers like the api would, from [`Acl`].
    async fn start_api_responder(&mut self) -> anyhow::Result<()> {
        let client = self.client.clone();
        let mut access = client.queue_subscribe(subjects::API_ACCESS, subjects::API_QUEUE.into()).await?;
        let mut send = client.queue_subscribe(subjects::API_SEND_MESSAGE, subjects::API_QUEUE.into()).await?;
        let mut stop = client.queue_subscribe(subjects::API_STOP, subjects::API_QUEUE.into()).await?;
        let mut socket_auth = client.queue_subscribe(subjects::API_SOCKET_AUTH, subjects::API_QUEUE.into()).await?;
        client.flush().await?;
        let keys = self.keys.clone();
        let acl = self.acl.clone();
        let js = self.js.clone();
        let published = self.published.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(m) = access.next() => {
                        let reply = match serde_json::from_slice::<AccessRequest>(&m.payload) {
                            Ok(r) => {
                                let acl = acl.lock().unwrap();
                                match acl.access.get(&(r.conversation_id, r.user_id)) {
                                    Some(p) => Reply::Ok(AccessGrant {
                                        permission: *p,
                                        history_seq: acl.history_seq.get(&r.conversation_id).copied().unwrap_or(0),
                                    }),
                                    None => Reply::Error(RpcError::new(ErrorCode::NotFound, "no such conversation")),
                                }
                            }
                            Err(e) => Reply::Error(RpcError::new(ErrorCode::BadRequest, e.to_string())),
                        };
                        rh_bus::respond(&client, &m, &reply).await;
                    }
                    Some(m) = send.next() => {
                        let reply = match serde_json::from_slice::<SendMessageRequest>(&m.payload) {
                            Ok(r) => {
                                let p = acl.lock().unwrap().access.get(&(r.conversation_id, r.user_id)).copied();
                                match p {
                                    None => Reply::Error(RpcError::new(ErrorCode::NotFound, "no such conversation")),
                                    Some(p) if !p.can_respond() => Reply::Error(RpcError::new(ErrorCode::Forbidden, "view only")),
                                    Some(_) => {
                                        let (message_id, response_id) = (Uuid::now_v7(), Uuid::now_v7());
                                        let e = Event::MessageCreated {
                                            message_id,
                                            author_id: r.user_id,
                                            author_name: "someone".into(),
                                            text: r.text,
                                            client_msg_id: r.client_msg_id,
                                            response_id,
                                            copied_from: None,
                                            edit_of: None,
                                        };
                                        match publish(&js, &published, r.conversation_id, Some(r.user_id), e).await {
                                            Ok(seq) => Reply::Ok(MessageAccepted { message_id, response_id, seq }),
                                            Err(e) => Reply::Error(RpcError::new(ErrorCode::Unavailable, e.to_string())),
                                        }
                                    }
                                }
                            }
                            Err(e) => Reply::Error(RpcError::new(ErrorCode::BadRequest, e.to_string())),
                        };
                        rh_bus::respond(&client, &m, &reply).await;
                    }
                    Some(m) = stop.next() => {
                        let reply: Reply<StopAccepted> = match serde_json::from_slice::<StopRequest>(&m.payload) {
                            Ok(r) => match acl.lock().unwrap().access.get(&(r.conversation_id, r.user_id)) {
                                None => Reply::Error(RpcError::new(ErrorCode::NotFound, "no such conversation")),
                                Some(p) if !p.can_respond() => Reply::Error(RpcError::new(ErrorCode::Forbidden, "view only")),
                                Some(_) => Reply::Ok(StopAccepted {}),
                            },
                            Err(e) => Reply::Error(RpcError::new(ErrorCode::BadRequest, e.to_string())),
                        };
                        rh_bus::respond(&client, &m, &reply).await;
                    }
                    Some(m) = socket_auth.next() => {
                        // Like the api, minus the session lookup: the token's claims, if it verifies.
                        let reply: Reply<SocketGrant> = match serde_json::from_slice::<SocketCredential>(&m.payload) {
                            Ok(SocketCredential::Token(t)) => match keys.verify(&t) {
                                Ok(c) => Reply::Ok(SocketGrant { user_id: c.sub, name: c.name, session_id: c.sid, expires_at: c.exp }),
                                Err(_) => Reply::Error(RpcError::new(ErrorCode::Unauthorized, "invalid token")),
                            },
                            Ok(SocketCredential::Ticket(_)) => Reply::Error(RpcError::new(ErrorCode::Unauthorized, "no tickets here")),
                            Err(e) => Reply::Error(RpcError::new(ErrorCode::BadRequest, e.to_string())),
                        };
                        rh_bus::respond(&client, &m, &reply).await;
                    }
                    else => return,
                }
            }
        });
        Ok(())
    }

    /// A metric of one edge, from its `/metrics` endpoint.
    pub async fn metric(&self, edge: usize, name: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("{}/metrics", self.edges[edge].http_url())).await?.text().await?;
        let full = format!("relayhub_edge_{name}");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == full).then(|| v.trim().parse::<f64>().ok()).flatten()
            })
            .ok_or_else(|| anyhow::anyhow!("no metric {full}"))
    }

    /// Consumers on stream `RH_CONV` right now.
    pub async fn conv_consumers(&self) -> anyhow::Result<usize> {
        let mut stream = self.js.get_stream(subjects::STREAM_CONV).await?;
        Ok(stream.info().await?.state.consumer_count)
    }
}

async fn publish(
    js: &async_nats::jetstream::Context,
    published: &Mutex<BTreeMap<u64, Envelope>>,
    conv: Uuid,
    actor: Option<Uuid>,
    event: Event,
) -> anyhow::Result<u64> {
    let env = Envelope::new(conv, actor, event);
    let seq = rh_bus::publish_event_acked(js, &env).await?;
    published.lock().unwrap().insert(seq, env);
    Ok(seq)
}

/// Delta `index` of attempt 1 of response `rid`, as the worker publishes it.
pub fn delta(rid: Uuid, index: u32, text: impl Into<String>) -> Event {
    Event::ResponseDelta { response_id: rid, attempt: 1, index, text: text.into(), from_index: None }
}

/// Subscribes and waits for `subscribed` (returned as (permission, seq)) or fails with the error frame.
pub async fn subscribe(ws: &mut WsClient, conv: Uuid, after_seq: Option<u64>) -> anyhow::Result<(Permission, u64)> {
    ws.subscribe(conv, after_seq).await?;
    let (f, _) = ws
        .until(WAIT, |f| {
            matches!(f, ServerFrame::Subscribed { conversation_id, .. } if *conversation_id == conv)
                || matches!(f, ServerFrame::Error { .. })
        })
        .await?;
    match f {
        ServerFrame::Subscribed { permission, seq, .. } => Ok((permission, seq)),
        other => anyhow::bail!("subscribe refused: {other:?}"),
    }
}

/// What a socket received of one conversation, in order.
#[derive(Default, Debug)]
pub struct Received {
    pub events: Vec<(u64, Envelope)>,
    pub other: Vec<ServerFrame>,
}

impl Received {
    pub fn seqs(&self) -> Vec<u64> {
        self.events.iter().map(|(s, _)| *s).collect()
    }
}

/// Reads frames until the event at `until_seq` of `conv` arrived.
pub async fn read_until_seq(ws: &mut WsClient, conv: Uuid, until_seq: u64, into: &mut Received) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let f = ws
            .next_frame(left)
            .await
            .map_err(|e| anyhow::anyhow!("{e:#} while waiting for seq {until_seq}; got {:?}", into.seqs().last()))?;
        match f {
            ServerFrame::Event { conversation_id, seq, event } if conversation_id == conv => {
                into.events.push((seq, event));
                if seq >= until_seq {
                    return Ok(());
                }
            }
            other => into.other.push(other),
        }
    }
}

/// Asserts `got` is exactly `want`: every event once, in order.
pub fn assert_gapless(got: &[u64], want: &[u64]) {
    for w in got.windows(2) {
        assert!(w[0] < w[1], "seq {} then {}: duplicate or out of order", w[0], w[1]);
    }
    assert_eq!(got.len(), want.len(), "missing or extra events:\n got {got:?}\nwant {want:?}");
    assert_eq!(got, want);
}

/// Reads until an `error` frame; returns (code, ref). Other frames are kept in `into`.
pub async fn expect_error(
    ws: &mut WsClient,
    into: &mut Received,
    conv: Uuid,
) -> anyhow::Result<(String, Option<String>)> {
    loop {
        match ws.next_frame(WAIT).await? {
            ServerFrame::Error { code, reference, .. } => return Ok((code, reference)),
            ServerFrame::Event { conversation_id, seq, event } if conversation_id == conv => {
                into.events.push((seq, event))
            }
            other => into.other.push(other),
        }
    }
}
