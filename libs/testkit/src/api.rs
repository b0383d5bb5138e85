//! A small REST client for the v1 API.

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// REST client bound to one api process, optionally with a bearer token.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// A logged-in person.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub name: String,
}

fn uuid_at(v: &Value, ptr: &str) -> anyhow::Result<Uuid> {
    let s = v.pointer(ptr).and_then(Value::as_str).with_context(|| format!("no {ptr} in {v}"))?;
    Ok(Uuid::parse_str(s)?)
}

impl Api {
    /// `base` is `http://host:port` of the api; requests go to `{base}/api/v1{path}`.
    pub fn new(base: &str) -> Self {
        crate::init_crypto();
        Api { base: format!("{base}/api/v1"), http: reqwest::Client::new(), token: None }
    }

    pub fn with_token(&self, token: &str) -> Self {
        Api { token: Some(token.to_owned()), ..self.clone() }
    }

    pub fn as_user(&self, s: &Session) -> Self {
        self.with_token(&s.token)
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty or not JSON).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.send(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// The underlying HTTP client and base URL (`.../api/v1`), for multipart and raw downloads.
    pub fn raw(&self) -> (&reqwest::Client, &str, Option<&str>) {
        (&self.http, &self.base, self.token.as_deref())
    }

    fn expect(status: StatusCode, want: StatusCode, body: &Value, what: &str) -> anyhow::Result<()> {
        if status != want {
            bail!("{what}: expected {want}, got {status}: {body}");
        }
        Ok(())
    }

    /// `POST /orgs`: a new org and its admin, logged in.
    pub async fn sign_up(&self, org: &str, name: &str, email: &str, password: &str) -> anyhow::Result<Session> {
        let (s, v) =
            self.post("/orgs", json!({"org_name": org, "name": name, "email": email, "password": password})).await?;
        Self::expect(s, StatusCode::CREATED, &v, "sign up")?;
        self.login(email, password).await
    }

    /// `POST /orgs/{id}/members` as `admin`, then logs the new member in.
    pub async fn add_member(
        &self,
        admin: &Session,
        name: &str,
        email: &str,
        password: &str,
    ) -> anyhow::Result<Session> {
        let (s, v) = self
            .as_user(admin)
            .post(
                &format!("/orgs/{}/members", admin.org_id),
                json!({"name": name, "email": email, "password": password}),
            )
            .await?;
        Self::expect(s, StatusCode::CREATED, &v, "add member")?;
        self.login(email, password).await
    }

    /// `POST /auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<Session> {
        let (s, v) = self.post("/auth/login", json!({"email": email, "password": password})).await?;
        Self::expect(s, StatusCode::OK, &v, "login")?;
        Ok(Session {
            token: v["token"].as_str().context("no token")?.to_owned(),
            user_id: uuid_at(&v, "/user/id")?,
            org_id: uuid_at(&v, "/user/org_id")?,
            email: email.to_owned(),
            name: v.pointer("/user/name").and_then(Value::as_str).unwrap_or_default().to_owned(),
        })
    }

    /// `POST /conversations` as `who`; returns the conversation id.
    pub async fn create_conversation(&self, who: &Session, title: &str) -> anyhow::Result<Uuid> {
        let (s, v) = self.as_user(who).post("/conversations", json!({"title": title})).await?;
        Self::expect(s, StatusCode::CREATED, &v, "create conversation")?;
        uuid_at(&v, "/id").or_else(|_| uuid_at(&v, "/conversation/id"))
    }

    /// `POST /conversations/{id}/messages` as `who`; returns the response body (`message_id`, `response_id`, `seq`).
    pub async fn send_message(&self, who: &Session, conversation: Uuid, text: &str) -> anyhow::Result<Value> {
        let (s, v) =
            self.as_user(who).post(&format!("/conversations/{conversation}/messages"), json!({"text": text})).await?;
        Self::expect(s, StatusCode::ACCEPTED, &v, "send message")?;
        Ok(v)
    }

    /// `GET /conversations/{id}` as `who`.
    pub async fn conversation(&self, who: &Session, conversation: Uuid) -> anyhow::Result<Value> {
        let (s, v) = self.as_user(who).get(&format!("/conversations/{conversation}")).await?;
        Self::expect(s, StatusCode::OK, &v, "get conversation")?;
        Ok(v)
    }

    /// `POST /conversations/{id}/shares` with one person.
    pub async fn share(
        &self,
        owner: &Session,
        conversation: Uuid,
        with: &Session,
        permission: &str,
    ) -> anyhow::Result<()> {
        let (s, v) = self
            .as_user(owner)
            .post(
                &format!("/conversations/{conversation}/shares"),
                json!({"shares": [{"user_id": with.user_id, "permission": permission}]}),
            )
            .await?;
        if !s.is_success() {
            bail!("share: {s}: {v}");
        }
        Ok(())
    }
}
