//! `rh-client`: RelayHub's v1 REST API (`{base}/api/v1`) as the web client, the load tool (`loadtest`) and the
//! tests (`rh-testkit`) call it. The contract is `docs/openapi.json` (generated from the api; `docs/api.md`): JSON bodies,
//! `Authorization: Bearer <token>`, errors as `{"error":{"code","message"}}` with a fitting status.
//!
//! | item | what it is |
//! |---|---|
//! | [`Client`] | one `reqwest::Client` and the base URL, cheap to clone; typed calls and a raw [`Client::request`] |
//! | [`Session`] | a logged-in account: its token, user, org, email and name |
//! | [`Accepted`] | the 202 reply of `POST /conversations/{id}/messages` ([`rh_protocol::rpc::MessageAccepted`]) |
//! | `teams` | teams and team shares: [`Client::create_team`], [`Client::share_with_team`], ... |
//!
//! Request and reply bodies are the api's own types, from [`rh_protocol::api`] (re-exported as [`api`]).
//! | [`Error`], [`ErrorKind`] | a failed call: no answer, another status (with the api's error `code`), a bad reply |
//!
//! A typed call fails unless the api answers with the status the contract gives (`201` for sign-up, new members
//! and conversations, `202` for sign-up and messages, `200` for login and reads, any success for shares). Nothing is retried:
//! the caller decides (the load tool counts the error, a test fails).
//!
//! The workspace builds reqwest with `rustls-no-provider`: install a rustls crypto provider (e.g.
//! `rustls::crypto::ring::default_provider().install_default()`) before [`Client::new`].

mod error;
mod teams;

pub use error::{Error, ErrorKind};
pub use reqwest::{Method, StatusCode};

use bytes::Bytes;
pub use rh_protocol::api;

use api::conversations::{
    ConversationDetail, CreateConversation, HistoryMessage, RegenerateRequest, SendRequest, ShareGrant, ShareRequest,
};
use api::{NewMemberRequest, SignUpRequest};
use rh_protocol::admin::RetentionSettings;
use rh_protocol::auth::{LoginRequest, RefreshRequest, SocketTicket, Tokens};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Idle connections kept per host by [`Client::new`] (the load tool runs many calls at once).
const POOL_IDLE_PER_HOST: usize = 64;
/// Whole-request timeout of [`Client::new`].
const TIMEOUT: Duration = Duration::from_secs(60);

/// Client of one api: requests go to `{base}/api/v1{path}`. Clones share the connection pool.
#[derive(Clone, Debug)]
pub struct Client {
    /// `{base}/api/v1`.
    base: Arc<str>,
    http: reqwest::Client,
}

/// A logged-in account.
#[derive(Clone, Debug)]
pub struct Session {
    /// Bearer (access) token: short-lived; [`Client::refresh`] gets the next one.
    pub token: String,
    /// Works once: [`Client::refresh`] replaces it.
    pub refresh_token: String,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    /// Display name (empty when the login reply had none).
    pub name: String,
}

/// The accepted reply (202) of `POST /conversations/{id}/messages`.
pub use rh_protocol::rpc::MessageAccepted as Accepted;

fn session(t: Tokens) -> Session {
    Session {
        token: t.token,
        refresh_token: t.refresh_token,
        user_id: t.user.id,
        org_id: t.user.org_id,
        email: t.user.email,
        name: t.user.name,
    }
}

/// A request body as JSON (our bodies always serialize).
fn body<T: Serialize>(op: &str, value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::decode(op, e.to_string(), None))
}

fn decode<T: serde::de::DeserializeOwned>(op: &str, body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::decode(op, format!("{e}"), Some(e.into())))
}

impl Client {
    /// A client with its own connection pool (64 idle connections per host, 60 s timeout per request).
    /// `base` is `http://host:port` of the api (a trailing `/` is ignored).
    pub fn new(base: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| Error::transport("building the HTTP client", e))?;
        Ok(Self::with_http(base, http))
    }

    /// A client over an existing `reqwest::Client` (its pool, timeouts and TLS settings).
    pub fn with_http(base: &str, http: reqwest::Client) -> Self {
        Client { base: format!("{}/api/v1", base.trim_end_matches('/')).into(), http }
    }

    /// `{base}/api/v1`, for requests the typed calls do not cover (multipart uploads, raw downloads).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `method {base}/api/v1{path}` with an optional bearer token and JSON body; returns the status and the
    /// JSON reply (`Null` when the body is empty or not JSON). Any status is `Ok`: only a failed exchange is an
    /// error ([`ErrorKind::Transport`]).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), Error> {
        let op = format!("{method} {path}");
        let (status, bytes) = self.exchange(&op, method, path, token, body.as_ref()).await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    async fn exchange(
        &self,
        op: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), Error> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| Error::transport(op, e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| Error::transport(op, e))?;
        Ok((status, bytes))
    }

    /// A typed call's exchange: the reply body when the status is `want` (any success when `None`).
    async fn expect(
        &self,
        op: &str,
        want: Option<StatusCode>,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Bytes, Error> {
        let (status, bytes) = self.exchange(op, method, path, token, body.as_ref()).await?;
        let ok = match want {
            Some(w) => status == w,
            None => status.is_success(),
        };
        if !ok {
            return Err(Error::status_from(op, status, &bytes));
        }
        Ok(bytes)
    }

    /// `POST /auth/login` → 200 [`Tokens`]: a new session.
    pub async fn login(&self, email: &str, password: &str) -> Result<Session, Error> {
        const OP: &str = "login";
        let body = body(OP, &LoginRequest { email: email.to_owned(), password: password.to_owned() })?;
        let bytes = self.expect(OP, Some(StatusCode::OK), Method::POST, "/auth/login", None, Some(body)).await?;
        Ok(session(decode(OP, &bytes)?))
    }

    /// `POST /auth/refresh` → 200 [`Tokens`]: the session with a new access token and the next refresh token
    /// (`refresh_token` of `who` no longer works).
    pub async fn refresh(&self, who: &Session) -> Result<Session, Error> {
        const OP: &str = "refresh";
        let body = body(OP, &RefreshRequest { refresh_token: who.refresh_token.clone() })?;
        let bytes = self.expect(OP, Some(StatusCode::OK), Method::POST, "/auth/refresh", None, Some(body)).await?;
        Ok(session(decode(OP, &bytes)?))
    }

    /// `POST /auth/ticket` → 200 [`SocketTicket`]: a one-time ticket for `GET /ws?ticket=`.
    pub async fn socket_ticket(&self, who: &Session) -> Result<SocketTicket, Error> {
        const OP: &str = "socket ticket";
        let bytes = self.expect(OP, Some(StatusCode::OK), Method::POST, "/auth/ticket", Some(&who.token), None).await?;
        decode(OP, &bytes)
    }

    /// `POST /auth/logout` → 204: ends the session (its tokens are refused from now on).
    pub async fn logout(&self, who: &Session) -> Result<(), Error> {
        let ok = Some(StatusCode::NO_CONTENT);
        self.expect("logout", ok, Method::POST, "/auth/logout", Some(&who.token), None).await.map(|_| ())
    }

    /// `POST /orgs` → 202 (sign-up: a new org and its admin, unless the email is taken — the api answers the same
    /// either way), then logs the admin in (which fails like a wrong password when the email was taken).
    pub async fn sign_up(&self, org: &str, name: &str, email: &str, password: &str) -> Result<Session, Error> {
        const OP: &str = "sign up";
        let request = SignUpRequest {
            org_name: org.to_owned(),
            name: name.to_owned(),
            email: email.to_owned(),
            password: password.to_owned(),
        };
        self.expect(OP, Some(StatusCode::ACCEPTED), Method::POST, "/orgs", None, Some(body(OP, &request)?)).await?;
        self.login(email, password).await
    }

    /// `POST /orgs/{id}/members` → 201 as `admin` (a new member of the admin's org), then logs the member in.
    pub async fn add_member(&self, admin: &Session, name: &str, email: &str, password: &str) -> Result<Session, Error> {
        const OP: &str = "add member";
        let request = NewMemberRequest {
            name: name.to_owned(),
            email: email.to_owned(),
            password: password.to_owned(),
            role: None,
        };
        let path = format!("/orgs/{}/members", admin.org_id);
        self.expect(OP, Some(StatusCode::CREATED), Method::POST, &path, Some(&admin.token), Some(body(OP, &request)?))
            .await?;
        self.login(email, password).await
    }

    /// `POST /conversations` → 201 as `who`; returns the new conversation's id.
    pub async fn create_conversation(&self, who: &Session, title: &str) -> Result<Uuid, Error> {
        const OP: &str = "create conversation";
        let request = body(OP, &CreateConversation { title: Some(title.to_owned()), model: None })?;
        let bytes = self
            .expect(OP, Some(StatusCode::CREATED), Method::POST, "/conversations", Some(&who.token), Some(request))
            .await?;
        Ok(decode::<ConversationDetail>(OP, &bytes)?.id)
    }

    /// `POST /conversations/{id}/shares` as `owner`, with any number of `(user_id, permission)` at once
    /// (`permission`: `view` or `respond`).
    pub async fn share(&self, owner: &Session, conversation: Uuid, with: &[(Uuid, &str)]) -> Result<(), Error> {
        const OP: &str = "share";
        let shares = with
            .iter()
            .map(|(u, p)| ShareGrant { user_id: *u, permission: (*p).to_owned(), expires_at: None })
            .collect();
        let path = format!("/conversations/{conversation}/shares");
        let request = body(OP, &ShareRequest { shares })?;
        self.expect(OP, None, Method::POST, &path, Some(&owner.token), Some(request)).await?;
        Ok(())
    }

    /// `POST /conversations/{id}/messages` → 202 as `who`: the message is stored and an AI response starts.
    pub async fn send_message(&self, who: &Session, conversation: Uuid, text: &str) -> Result<Accepted, Error> {
        const OP: &str = "send message";
        let path = format!("/conversations/{conversation}/messages");
        let request = SendRequest { text: text.to_owned(), client_msg_id: None, max_tokens: None, edit_of: None };
        let bytes = body(OP, &request)?;
        let bytes =
            self.expect(OP, Some(StatusCode::ACCEPTED), Method::POST, &path, Some(&who.token), Some(bytes)).await?;
        decode(OP, &bytes)
    }

    /// `POST /conversations/{id}/messages {text, edit_of}` → 202 as `who`: a new version of the last message
    /// `edit_of` (theirs), with a new answer.
    pub async fn edit_message(
        &self,
        who: &Session,
        conversation: Uuid,
        edit_of: Uuid,
        text: &str,
    ) -> Result<Accepted, Error> {
        const OP: &str = "edit message";
        let path = format!("/conversations/{conversation}/messages");
        let request =
            SendRequest { text: text.to_owned(), client_msg_id: None, max_tokens: None, edit_of: Some(edit_of) };
        let bytes = body(OP, &request)?;
        let bytes =
            self.expect(OP, Some(StatusCode::ACCEPTED), Method::POST, &path, Some(&who.token), Some(bytes)).await?;
        decode(OP, &bytes)
    }

    /// `POST /conversations/{id}/regenerate {message_id?}` → 202 as `who`: another answer to the last message.
    pub async fn regenerate(
        &self,
        who: &Session,
        conversation: Uuid,
        message_id: Option<Uuid>,
    ) -> Result<Accepted, Error> {
        const OP: &str = "regenerate";
        let path = format!("/conversations/{conversation}/regenerate");
        let bytes = body(OP, &RegenerateRequest { message_id, max_tokens: None })?;
        let bytes =
            self.expect(OP, Some(StatusCode::ACCEPTED), Method::POST, &path, Some(&who.token), Some(bytes)).await?;
        decode(OP, &bytes)
    }

    /// `GET /conversations/{id}` → 200 with `token`: the conversation, its messages, participants, the caller's
    /// permission and the `seq` the history covers.
    pub async fn conversation(&self, token: &str, conversation: Uuid) -> Result<ConversationDetail, Error> {
        const OP: &str = "get conversation";
        let path = format!("/conversations/{conversation}");
        let bytes = self.expect(OP, Some(StatusCode::OK), Method::GET, &path, Some(token), None).await?;
        decode(OP, &bytes)
    }

    /// `GET /conversations/{id}?limit=&before=` → 200: one page of the history (the api's default size when
    /// `limit` is `None`; the newest turns unless `before` names where the previous page began).
    pub async fn history_page(
        &self,
        token: &str,
        conversation: Uuid,
        limit: Option<u16>,
        before: Option<u64>,
    ) -> Result<ConversationDetail, Error> {
        const OP: &str = "get history page";
        let mut query = Vec::new();
        query.extend(limit.map(|n| format!("limit={n}")));
        query.extend(before.map(|b| format!("before={b}")));
        let path = format!("/conversations/{conversation}?{}", query.join("&"));
        let bytes = self.expect(OP, Some(StatusCode::OK), Method::GET, &path, Some(token), None).await?;
        decode(OP, &bytes)
    }

    /// The whole history, `page_size` turns per request, oldest first, with the `seq` of its newest page (a
    /// client subscribes after it; older pages never change, see `libs/store/src/history.rs`).
    pub async fn history(
        &self,
        token: &str,
        conversation: Uuid,
        page_size: u16,
    ) -> Result<(u64, Vec<HistoryMessage>), Error> {
        let newest = self.history_page(token, conversation, Some(page_size), None).await?;
        let seq = newest.seq;
        let mut pages = vec![newest.messages];
        let mut next = newest.next_before.filter(|_| newest.has_more);
        while let Some(before) = next {
            let page = self.history_page(token, conversation, Some(page_size), Some(before)).await?;
            next = page.next_before.filter(|_| page.has_more);
            pages.push(page.messages);
        }
        Ok((seq, pages.into_iter().rev().flatten().collect()))
    }

    /// `PUT /orgs/{id}/retention` → 200 as an admin of `org`: erase conversations not updated for `days` days
    /// (`None`: keep them).
    pub async fn set_retention(&self, admin: &Session, days: Option<u32>) -> Result<RetentionSettings, Error> {
        const OP: &str = "set retention";
        let body = body(OP, &RetentionSettings { retention_days: days })?;
        let path = format!("/orgs/{}/retention", admin.org_id);
        let bytes = self.expect(OP, Some(StatusCode::OK), Method::PUT, &path, Some(&admin.token), Some(body)).await?;
        decode(OP, &bytes)
    }

    /// The `seq` that `GET /conversations/{id}` (the HTTP history) covers: a client subscribes after it.
    pub async fn history_seq(&self, token: &str, conversation: Uuid) -> Result<u64, Error> {
        Ok(self.conversation(token, conversation).await?.seq)
    }
}
