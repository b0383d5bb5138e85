//! A real OpenID Connect provider for the SSO tests: `e2e/oidc/provider.mjs` (npm `oidc-provider`, installed by
//! `scripts/test` into `target/tools/oidc`) on a free port, and a person signing in at its own login page the way
//! a browser does (cookies, its form, redirects), stopping at the redirect back to RelayHub.

use anyhow::{Context, bail};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// RelayHub's redirect URI in these tests (`RH_PUBLIC_URL`): never fetched, the person stops at it.
pub const PUBLIC_URL: &str = "http://relayhub.test";

pub struct Provider {
    pub issuer: String,
    _child: Child,
}

/// The client registered at the provider: `(client_id, client_secret)`.
pub const CLIENT: (&str, &str) = ("relayhub-acme", "acme-client-secret-0123456789");

impl Provider {
    /// A provider with [`CLIENT`] registered to send people back to [`PUBLIC_URL`].
    pub async fn start() -> anyhow::Result<Provider> {
        Self::start_for(PUBLIC_URL).await
    }

    /// A provider with [`CLIENT`] registered to send people back to `public_url` (RelayHub's `RH_PUBLIC_URL`).
    pub async fn start_for(public_url: &str) -> anyhow::Result<Provider> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let modules = root.join("../target/tools/oidc/node_modules");
        if !modules.join("oidc-provider").is_dir() {
            bail!("{} is missing: run scripts/test (it installs oidc-provider)", modules.display());
        }
        let clients = serde_json::json!([{
            "client_id": CLIENT.0, "client_secret": CLIENT.1, "redirect_uris": [format!("{public_url}/")],
        }]);
        let log = rh_testkit::scratch_dir("oidc").join("provider.log");
        let mut child = Command::new("node")
            .arg(root.join("oidc/provider.mjs"))
            .env("RH_OIDC_MODULES", &modules)
            .env("RH_OIDC_CLIENTS", clients.to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).context("the provider's log file")?)
            .kill_on_drop(true)
            .spawn()
            .context("starting node e2e/oidc/provider.mjs")?;
        let stdout = child.stdout.take().context("provider stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .context("the provider did not start in 30 s")??
            .context("the provider exited")?;
        let issuer = line.strip_prefix("listening oidc ").context("unexpected provider output")?.to_owned();
        // Keep reading: a closed pipe would fail the provider's next write.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Provider { issuer, _child: child })
    }

    /// How the token endpoint's ID tokens come out from now on (`provider.mjs` lists the modes).
    pub async fn set_mode(&self, mode: &str) -> anyhow::Result<()> {
        let s = reqwest::Client::new().post(format!("{}/__test/mode/{mode}", self.issuer)).send().await?.status();
        anyhow::ensure!(s == StatusCode::NO_CONTENT, "mode {mode}: {s}");
        Ok(())
    }

    /// From now on the person who signs in as `login` (their `sub`) has `email` at the provider.
    pub async fn set_email(&self, login: &str, email: &str) -> anyhow::Result<()> {
        let body = serde_json::json!({ "login": login, "email": email }).to_string();
        let url = format!("{}/__test/email", self.issuer);
        let s = reqwest::Client::new().post(url).body(body).send().await?.status();
        anyhow::ensure!(s == StatusCode::NO_CONTENT, "email of {login}: {s}");
        Ok(())
    }
}

/// What the provider sent the browser back to RelayHub with.
#[derive(Debug, Clone)]
pub struct Return {
    pub code: String,
    pub state: String,
}

/// Opens `authorize_url` and signs in as `login` (the person's `sub`, and their email unless
/// [`Provider::set_email`] changed it) at the provider's login page; returns the code and state of the redirect
/// back to [`PUBLIC_URL`].
pub async fn sign_in_at_provider(issuer: &str, authorize_url: &str, login: &str) -> anyhow::Result<Return> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let mut cookies = BTreeMap::<String, String>::new();
    let mut url = authorize_url.to_owned();
    for _ in 0..10 {
        if url.starts_with(PUBLIC_URL) {
            let parsed = reqwest::Url::parse(&url)?;
            let get = |k: &str| parsed.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
            if let Some(error) = get("error") {
                bail!("the provider answered {error}: {:?}", get("error_description"));
            }
            return Ok(Return { code: get("code").context("no code")?, state: get("state").context("no state")? });
        }
        let page = send(&http, &mut cookies, http.get(&url)).await?;
        url = match page {
            Page::Redirect(to) => absolute(issuer, &to),
            Page::Html(html) => {
                // The provider's own login (or consent) form: its action and prompt.
                let action = between(&html, "action=\"", "\"").context("a form")?;
                let prompt = if html.contains("name=\"login\"") { "login" } else { "consent" };
                let form = [("prompt", prompt), ("login", login), ("password", "any-password")];
                // URL-encoding the form as a query does (reqwest's `form` feature is off in this workspace).
                let body = reqwest::Url::parse_with_params("http://form.invalid/", &form)?
                    .query()
                    .unwrap_or_default()
                    .to_owned();
                let post = http
                    .post(absolute(issuer, &action))
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body);
                match send(&http, &mut cookies, post).await? {
                    Page::Redirect(to) => absolute(issuer, &to),
                    Page::Html(html) => bail!("the login form answered a page: {html:.300}"),
                }
            }
        };
    }
    bail!("too many redirects at the provider")
}

enum Page {
    Redirect(String),
    Html(String),
}

async fn send(
    http: &reqwest::Client,
    cookies: &mut BTreeMap<String, String>,
    request: reqwest::RequestBuilder,
) -> anyhow::Result<Page> {
    let jar: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let response = http.execute(request.header(COOKIE, jar.join("; ")).build()?).await?;
    for set in response.headers().get_all(SET_COOKIE) {
        let pair = set.to_str()?.split(';').next().unwrap_or_default();
        if let Some((k, v)) = pair.split_once('=') {
            cookies.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    if response.status().is_redirection() {
        let to = response.headers().get(LOCATION).context("redirect without Location")?.to_str()?.to_owned();
        return Ok(Page::Redirect(to));
    }
    let status = response.status();
    let body = response.text().await?;
    anyhow::ensure!(status.is_success(), "the provider answered {status}: {body:.300}");
    Ok(Page::Html(body))
}

fn absolute(issuer: &str, to: &str) -> String {
    if to.starts_with("http://") || to.starts_with("https://") { to.to_owned() } else { format!("{issuer}{to}") }
}

fn between(s: &str, start: &str, end: &str) -> Option<String> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(s[from..from + len].replace("&amp;", "&"))
}
