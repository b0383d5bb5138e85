//! Everything the scenario needs, created through the public v1 API exactly as a customer would: its own org
//! (`POST /orgs`), members (`POST /orgs/{id}/members`, then `POST /auth/login`), conversations, and shares.

use anyhow::{Context, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// Concurrent setup requests (creating 1,000 conversations one by one would take longer than the test).
const SETUP_CONCURRENCY: usize = 16;

/// REST client for `{base}/api/v1`.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
}

/// A logged-in account.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub email: String,
}

/// An api answer that was not the expected one.
#[derive(Debug, thiserror::Error)]
#[error("{what}: HTTP {status}: {body}")]
pub struct ApiError {
    pub what: String,
    pub status: StatusCode,
    pub body: String,
}

/// The accepted reply of `POST /conversations/{id}/messages`.
#[derive(Clone, Copy, Debug)]
pub struct Accepted {
    pub message_id: Uuid,
    pub response_id: Uuid,
    /// Stream position of the `message.created` event.
    pub seq: u64,
}

/// What setup created.
#[derive(Clone, Debug)]
pub struct World {
    pub owner: Session,
    /// Responder accounts (`respond` on every conversation); responder r of every conversation is account r.
    pub responders: Vec<Session>,
    /// Viewer accounts (`view` on every conversation), shared by many sockets.
    pub viewers: Vec<Session>,
    pub conversations: Vec<Uuid>,
    /// A conversation without traffic for the idle sockets.
    pub idle_conversation: Uuid,
}

fn uuid_at(v: &Value, ptr: &str) -> anyhow::Result<Uuid> {
    let s = v.pointer(ptr).and_then(Value::as_str).ok_or_else(|| anyhow!("no {ptr} in {v}"))?;
    Ok(Uuid::parse_str(s)?)
}

impl ApiClient {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        crate::init_crypto();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(ApiClient { base: format!("{}/api/v1", base.trim_end_matches('/')), http })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("calling {path}"))?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    async fn expect(
        &self,
        what: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        ok: impl Fn(StatusCode) -> bool,
    ) -> anyhow::Result<Value> {
        let (status, v) = self.call(method, path, token, body).await?;
        if !ok(status) {
            return Err(ApiError { what: what.to_owned(), status, body: v.to_string() }.into());
        }
        Ok(v)
    }

    /// `POST /auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<Session> {
        let v = self
            .expect(
                "login",
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
                |s| s == StatusCode::OK,
            )
            .await?;
        Ok(Session {
            token: v["token"].as_str().context("login reply without token")?.to_owned(),
            user_id: uuid_at(&v, "/user/id")?,
            org_id: uuid_at(&v, "/user/org_id")?,
            email: email.to_owned(),
        })
    }

    /// `POST /orgs` (sign-up: the org and its admin), then login.
    pub async fn sign_up(&self, org: &str, name: &str, email: &str, password: &str) -> anyhow::Result<Session> {
        self.expect(
            "sign up",
            Method::POST,
            "/orgs",
            None,
            Some(json!({"org_name": org, "name": name, "email": email, "password": password})),
            |s| s.is_success(),
        )
        .await?;
        self.login(email, password).await
    }

    /// `POST /orgs/{id}/members` as the admin, then login as the new member.
    pub async fn add_member(
        &self,
        admin: &Session,
        name: &str,
        email: &str,
        password: &str,
    ) -> anyhow::Result<Session> {
        self.expect(
            "add member",
            Method::POST,
            &format!("/orgs/{}/members", admin.org_id),
            Some(&admin.token),
            Some(json!({"name": name, "email": email, "password": password})),
            |s| s.is_success(),
        )
        .await?;
        self.login(email, password).await
    }

    /// `POST /conversations`.
    pub async fn create_conversation(&self, who: &Session, title: &str) -> anyhow::Result<Uuid> {
        let v = self
            .expect(
                "create conversation",
                Method::POST,
                "/conversations",
                Some(&who.token),
                Some(json!({"title": title})),
                |s| s.is_success(),
            )
            .await?;
        uuid_at(&v, "/id").or_else(|_| uuid_at(&v, "/conversation/id"))
    }

    /// `POST /conversations/{id}/shares` with many people at once.
    pub async fn share(&self, owner: &Session, conversation: Uuid, with: &[(Uuid, &str)]) -> anyhow::Result<()> {
        let shares: Vec<Value> = with.iter().map(|(u, p)| json!({"user_id": u, "permission": p})).collect();
        self.expect(
            "share",
            Method::POST,
            &format!("/conversations/{conversation}/shares"),
            Some(&owner.token),
            Some(json!({ "shares": shares })),
            |s| s.is_success(),
        )
        .await?;
        Ok(())
    }

    /// The `seq` that `GET /conversations/{id}` (the HTTP history) covers: a client subscribes after it.
    pub async fn history_seq(&self, token: &str, conversation: Uuid) -> anyhow::Result<u64> {
        let v = self
            .expect(
                "get conversation",
                Method::GET,
                &format!("/conversations/{conversation}"),
                Some(token),
                None,
                |s| s == StatusCode::OK,
            )
            .await?;
        v["seq"].as_u64().ok_or_else(|| anyhow!("no seq in the conversation: {v}"))
    }

    /// `POST /conversations/{id}/messages` → 202.
    pub async fn send_message(&self, who: &Session, conversation: Uuid, text: &str) -> anyhow::Result<Accepted> {
        let v = self
            .expect(
                "send message",
                Method::POST,
                &format!("/conversations/{conversation}/messages"),
                Some(&who.token),
                Some(json!({ "text": text })),
                |s| s.is_success(),
            )
            .await?;
        Ok(Accepted {
            message_id: uuid_at(&v, "/message_id")?,
            response_id: uuid_at(&v, "/response_id")?,
            seq: v["seq"].as_u64().ok_or_else(|| anyhow!("no seq in the send reply: {v}"))?,
        })
    }
}

/// Creates the org, accounts, conversations and shares of a scenario.
pub async fn create_world(
    api: &ApiClient,
    conversations: usize,
    responders: usize,
    viewer_users: usize,
) -> anyhow::Result<World> {
    let tag = Uuid::new_v4().simple().to_string();
    let tag = &tag[..12];
    let password = format!("loadtest-{tag}");
    let owner = api
        .sign_up(&format!("Loadtest {tag}"), "Load Owner", &format!("owner-{tag}@loadtest.test"), &password)
        .await
        .context("signing up the load-test org")?;

    let member = |kind: &'static str, i: usize| {
        let (api, owner, password) = (api.clone(), owner.clone(), password.clone());
        async move {
            api.add_member(&owner, &format!("Load {kind} {i}"), &format!("{kind}-{i}-{tag}@loadtest.test"), &password)
                .await
                .with_context(|| format!("adding {kind} {i}"))
        }
    };
    let responders: Vec<Session> = futures::stream::iter((0..responders).map(|i| member("responder", i)))
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    let viewers: Vec<Session> = futures::stream::iter((0..viewer_users).map(|i| member("viewer", i)))
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;

    let mut shares: Vec<(Uuid, &str)> = responders.iter().map(|s| (s.user_id, "respond")).collect();
    shares.extend(viewers.iter().map(|s| (s.user_id, "view")));
    let make = |title: String| {
        let (api, owner, shares) = (api.clone(), owner.clone(), shares.clone());
        async move {
            let id = api.create_conversation(&owner, &title).await?;
            api.share(&owner, id, &shares).await?;
            anyhow::Ok(id)
        }
    };
    let ids: Vec<Uuid> = futures::stream::iter(
        (0..=conversations)
            .map(|i| make(if i == conversations { "Load test: idle".to_owned() } else { format!("Load test {i}") })),
    )
    .buffered(SETUP_CONCURRENCY)
    .try_collect()
    .await
    .context("creating and sharing the conversations")?;
    let Some((&idle_conversation, conversations)) = ids.split_last() else { bail!("no conversations created") };
    Ok(World { owner, responders, viewers, conversations: conversations.to_vec(), idle_conversation })
}
