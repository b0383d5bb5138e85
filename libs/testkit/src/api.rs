//! [`Api`]: the v1 REST client of the tests, a thin layer over [`rh_client::Client`] that remembers a bearer
//! token and answers in `anyhow::Result`.

use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

pub use rh_client::Session;

/// REST client bound to one api process, optionally with a bearer token.
#[derive(Clone)]
pub struct Api {
    client: rh_client::Client,
    token: Option<String>,
}

impl Api {
    /// `base` is `http://host:port` of the api; requests go to `{base}/api/v1{path}`.
    pub fn new(base: &str) -> Self {
        crate::init_crypto();
        Api { client: rh_client::Client::with_http(base, reqwest::Client::new()), token: None }
    }

    pub fn with_token(&self, token: &str) -> Self {
        Api { token: Some(token.to_owned()), ..self.clone() }
    }

    pub fn as_user(&self, s: &Session) -> Self {
        self.with_token(&s.token)
    }

    /// The shared client underneath (no token of its own).
    pub fn client(&self) -> &rh_client::Client {
        &self.client
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty or not JSON).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        Ok(self.client.request(method, path, self.token.as_deref(), body).await?)
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
    pub async fn put(&self, path: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// The underlying HTTP client and base URL (`.../api/v1`), for multipart and raw downloads.
    pub fn raw(&self) -> (&reqwest::Client, &str, Option<&str>) {
        (self.client.http(), self.client.base(), self.token.as_deref())
    }

    /// `POST /orgs`: a new org and its admin, logged in.
    pub async fn sign_up(&self, org: &str, name: &str, email: &str, password: &str) -> anyhow::Result<Session> {
        Ok(self.client.sign_up(org, name, email, password).await?)
    }

    /// `POST /orgs/{id}/members` as `admin`, then logs the new member in.
    pub async fn add_member(
        &self,
        admin: &Session,
        name: &str,
        email: &str,
        password: &str,
    ) -> anyhow::Result<Session> {
        Ok(self.client.add_member(admin, name, email, password).await?)
    }

    /// `POST /auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<Session> {
        Ok(self.client.login(email, password).await?)
    }

    /// `POST /conversations` as `who`; returns the conversation id.
    pub async fn create_conversation(&self, who: &Session, title: &str) -> anyhow::Result<Uuid> {
        Ok(self.client.create_conversation(who, title).await?)
    }

    /// `POST /conversations/{id}/messages` as `who`; returns the response body (`message_id`, `response_id`, `seq`).
    pub async fn send_message(&self, who: &Session, conversation: Uuid, text: &str) -> anyhow::Result<Value> {
        let accepted = self.client.send_message(who, conversation, text).await?;
        Ok(serde_json::to_value(accepted)?)
    }

    /// `GET /conversations/{id}` as `who`.
    pub async fn conversation(&self, who: &Session, conversation: Uuid) -> anyhow::Result<Value> {
        Ok(serde_json::to_value(self.client.conversation(&who.token, conversation).await?)?)
    }

    /// `POST /conversations/{id}/shares` with one person.
    pub async fn share(
        &self,
        owner: &Session,
        conversation: Uuid,
        with: &Session,
        permission: &str,
    ) -> anyhow::Result<()> {
        Ok(self.client.share(owner, conversation, &[(with.user_id, permission)]).await?)
    }
}
