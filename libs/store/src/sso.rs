//! `org_sso`, `org_sso_domains`, `sso_logins`, `sso_used_id_tokens` (`sql/V17__sso.sql`): an org's OpenID Connect
//! provider, the sign-ins under way (one-time, short-lived) and the ID tokens already used; `sso_subjects`
//! (`sql/V18__sso_subjects.sql`): the account each provider subject signs in as.

use crate::orgs::{USER_COLUMNS, User, user_from};
use crate::{Db, Result, StoreError};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

/// An org's provider, with its client secret (the api's token calls need it; no endpoint returns it).
#[derive(Clone, PartialEq)]
pub struct SsoConfig {
    pub org_id: Uuid,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub display_name: String,
    pub passwords_off: bool,
    /// Lower-case, sorted.
    pub email_domains: Vec<String>,
}

impl std::fmt::Debug for SsoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoConfig")
            .field("org_id", &self.org_id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("email_domains", &self.email_domains)
            .field("passwords_off", &self.passwords_off)
            .finish()
    }
}

/// A sign-in started by [`begin_login`], taken back once by [`take_login`].
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub org_id: Uuid,
    pub browser_hash: Vec<u8>,
    pub nonce: String,
    pub pkce_verifier: String,
}

const COLUMNS: &str = "s.org_id, s.issuer, s.client_id, s.client_secret, s.display_name, s.passwords_off, \
     ARRAY(SELECT d.domain FROM org_sso_domains d WHERE d.org_id = s.org_id ORDER BY d.domain) AS domains";

fn config_from(row: &Row) -> Result<SsoConfig> {
    Ok(SsoConfig {
        org_id: row.try_get("org_id")?,
        issuer: row.try_get("issuer")?,
        client_id: row.try_get("client_id")?,
        client_secret: row.try_get("client_secret")?,
        display_name: row.try_get("display_name")?,
        passwords_off: row.try_get("passwords_off")?,
        email_domains: row.try_get("domains")?,
    })
}

/// The org's provider, if it has one.
pub async fn config(db: &Db, org_id: Uuid) -> Result<Option<SsoConfig>> {
    let client = db.client().await?;
    let row = client.query_opt(&format!("SELECT {COLUMNS} FROM org_sso s WHERE s.org_id = $1"), &[&org_id]).await?;
    row.as_ref().map(config_from).transpose()
}

/// The provider of the org that claimed this (lower-case) email domain, if any.
pub async fn config_for_domain(db: &Db, domain: &str) -> Result<Option<SsoConfig>> {
    let client = db.client().await?;
    let sql =
        format!("SELECT {COLUMNS} FROM org_sso s JOIN org_sso_domains dd ON dd.org_id = s.org_id WHERE dd.domain = $1");
    let row = client.query_opt(&sql, &[&domain]).await?;
    row.as_ref().map(config_from).transpose()
}

/// Whether people of another org than `org_id` have emails at `domain` (such a domain cannot be claimed).
pub async fn domain_used_elsewhere(tx: &impl GenericClient, org_id: Uuid, domain: &str) -> Result<bool> {
    let row = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE org_id <> $1 AND lower(split_part(email, '@', 2)) = $2)",
            &[&org_id, &domain],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Sets the org's provider and domains in the caller's transaction. `client_secret: None` keeps the stored one
/// (`NotFound` when there is none). `Conflict` when another org claimed one of the domains.
pub async fn put(tx: &impl GenericClient, config: &SsoConfig, keep_secret: bool) -> Result<()> {
    if keep_secret {
        let n = tx
            .execute(
                "UPDATE org_sso SET issuer = $2, client_id = $3, display_name = $4, passwords_off = $5, \
                 updated_at = now() WHERE org_id = $1",
                &[&config.org_id, &config.issuer, &config.client_id, &config.display_name, &config.passwords_off],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
    } else {
        tx.execute(
            "INSERT INTO org_sso (org_id, issuer, client_id, client_secret, display_name, passwords_off) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id) DO UPDATE SET issuer = $2, client_id = $3, \
             client_secret = $4, display_name = $5, passwords_off = $6, updated_at = now()",
            &[
                &config.org_id,
                &config.issuer,
                &config.client_id,
                &config.client_secret,
                &config.display_name,
                &config.passwords_off,
            ],
        )
        .await?;
    }
    tx.execute("DELETE FROM org_sso_domains WHERE org_id = $1", &[&config.org_id]).await?;
    for domain in &config.email_domains {
        tx.execute("INSERT INTO org_sso_domains (domain, org_id) VALUES ($1, $2)", &[domain, &config.org_id])
            .await
            .map_err(|e| {
                let e = StoreError::Db(e);
                if e.is_unique_violation() {
                    StoreError::Conflict(format!("the domain {domain} is claimed by another organization"))
                } else {
                    e
                }
            })?;
    }
    Ok(())
}

/// Removes the org's provider (passwords work again). `NotFound` when it had none.
pub async fn delete(tx: &impl GenericClient, org_id: Uuid) -> Result<()> {
    let n = tx.execute("DELETE FROM org_sso WHERE org_id = $1", &[&org_id]).await?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Stores a sign-in under way for `ttl_secs` (and drops those that expired).
pub async fn begin_login(db: &Db, state_hash: &[u8], login: &PendingLogin, ttl_secs: u64) -> Result<()> {
    let client = db.client().await?;
    client.execute("DELETE FROM sso_logins WHERE expires_at < now()", &[]).await?;
    client
        .execute(
            "INSERT INTO sso_logins (state_hash, browser_hash, org_id, nonce, pkce_verifier, expires_at) \
             VALUES ($1, $2, $3, $4, $5, now() + $6::float8 * interval '1 second')",
            &[&state_hash, &login.browser_hash, &login.org_id, &login.nonce, &login.pkce_verifier, &(ttl_secs as f64)],
        )
        .await?;
    Ok(())
}

/// Takes the sign-in with this state out (it works once), if it has not expired.
pub async fn take_login(db: &Db, state_hash: &[u8]) -> Result<Option<PendingLogin>> {
    let client = db.client().await?;
    let row = client
        .query_opt(
            "DELETE FROM sso_logins WHERE state_hash = $1 \
             RETURNING org_id, browser_hash, nonce, pkce_verifier, expires_at > now() AS live",
            &[&state_hash],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    if !row.try_get::<_, bool>("live")? {
        return Ok(None);
    }
    Ok(Some(PendingLogin {
        org_id: row.try_get("org_id")?,
        browser_hash: row.try_get("browser_hash")?,
        nonce: row.try_get("nonce")?,
        pkce_verifier: row.try_get("pkce_verifier")?,
    }))
}

/// Whether this ID token was used to sign in before.
pub async fn id_token_used(db: &Db, token_hash: &[u8]) -> Result<bool> {
    let client = db.client().await?;
    let row = client
        .query_one("SELECT EXISTS (SELECT 1 FROM sso_used_id_tokens WHERE token_hash = $1)", &[&token_hash])
        .await?;
    Ok(row.try_get(0)?)
}

/// Records an ID token as used until `expires_at_secs` (Unix seconds); false when it was used before.
pub async fn use_id_token(db: &Db, token_hash: &[u8], expires_at_secs: i64) -> Result<bool> {
    let client = db.client().await?;
    client.execute("DELETE FROM sso_used_id_tokens WHERE expires_at < now()", &[]).await?;
    let n = client
        .execute(
            "INSERT INTO sso_used_id_tokens (token_hash, expires_at) VALUES ($1, to_timestamp($2::float8)) \
             ON CONFLICT DO NOTHING",
            &[&token_hash, &(expires_at_secs as f64)],
        )
        .await?;
    Ok(n == 1)
}

/// A pending invite of `org_id` naming exactly this email, used up in the caller's transaction: its role.
pub async fn claim_invite_for_email(
    tx: &impl GenericClient,
    org_id: Uuid,
    email: &str,
) -> Result<Option<(Uuid, String)>> {
    let row = tx
        .query_opt(
            "UPDATE invites SET used_at = now() WHERE id = (SELECT id FROM invites WHERE org_id = $1 \
               AND lower(email) = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now() \
               ORDER BY created_at DESC LIMIT 1 FOR UPDATE) RETURNING id, role",
            &[&org_id, &email],
        )
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// The account bound to `subject` at `issuer`, and whether it was removed from its org.
pub async fn user_for_subject(db: &Db, issuer: &str, subject: &str) -> Result<Option<(User, bool)>> {
    let client = db.client().await?;
    let sql = format!(
        "SELECT {USER_COLUMNS}, u.removed_at IS NOT NULL AS removed FROM sso_subjects s \
         JOIN users u ON u.id = s.user_id WHERE s.issuer = $1 AND s.subject = $2"
    );
    let row = client.query_opt(&sql, &[&issuer, &subject]).await?;
    row.map(|r| Ok((user_from(&r)?, r.try_get("removed")?))).transpose()
}

/// What [`bind_subject`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The subject is now (or already was) this account's.
    Bound,
    /// The account is bound to another subject of this issuer.
    AccountHasAnother,
    /// The subject is bound to another account (a sign-in of the same subject committed first).
    SubjectHasAnother,
}

/// Binds `subject` at `issuer` to `user_id` in the caller's transaction.
pub async fn bind_subject(tx: &impl GenericClient, issuer: &str, subject: &str, user_id: Uuid) -> Result<Binding> {
    let n = tx
        .execute(
            "INSERT INTO sso_subjects (issuer, subject, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&issuer, &subject, &user_id],
        )
        .await?;
    if n == 1 {
        return Ok(Binding::Bound);
    }
    let row = tx
        .query_opt("SELECT user_id FROM sso_subjects WHERE issuer = $1 AND subject = $2", &[&issuer, &subject])
        .await?;
    Ok(match row.map(|r| r.try_get::<_, Uuid>(0)).transpose()? {
        Some(owner) if owner == user_id => Binding::Bound,
        Some(_) => Binding::SubjectHasAnother,
        None => Binding::AccountHasAnother,
    })
}
