//! PostgreSQL access for RelayHub: the pool, the migrations in `sql/`, and the queries, one module per table
//! family.
//!
//! | module | tables | written by |
//! |---|---|---|
//! | [`orgs`] | `orgs`, `users` (the org directory, logins) | api |
//! | [`conversations`] | `conversations` (+ `history_seq`, see `sql/V1__init.sql`) | api |
//! | [`shares`] | `shares` (the ACL) | api |
//! | [`invites`] | `invites`: one-time, expiring invitations (hashes), used up with the account they create | api |
//! | [`sso`] | `org_sso`, `org_sso_domains`, `sso_logins`, `sso_used_id_tokens`, `sso_subjects`: per-org OIDC providers, sign-ins under way, used ID tokens, the account of each provider subject | api |
//! | [`teams`] | `teams`, `team_members`, `team_shares`; who gains or loses access by a change | api |
//! | [`attachments`] | `attachments` (metadata; bytes in the object store) | api |
//! | [`history`] | reads `messages` for `GET /conversations/{id}` and job context | api (reads) |
//! | [`view`] | reads all of `GET /conversations/{id}` on one connection, pipelined | api (reads) |
//! | [`limits`] | `rate_buckets`: token buckets shared by every api replica (AI replies, sign-in attempts) | api |
//! | [`audit_log`] | reads `audit_log` for admins; writes the org-level rows (teams, members, invites) | api |
//! | [`sessions`] | `sessions`, `refresh_tokens`: logins, rotating refresh tokens (hashes), revocation | api |
//! | [`erase`] | `erase_jobs`: marking a conversation deleted with its erase job; claiming and running the PostgreSQL part | api |
//! | [`retention`] | `orgs.retention_days` and the conversations it expired | api |
//! | [`outbox`] | `outbox`: messages of a state change, committed with it, published by the api's relay | api |
//! | [`responding`] | reads `responding` (answers not ended yet) for the sidebar's marker | audit writer (reads) |
//! | [`slots`] | `response_slots`: answers being generated, per conversation and org (taken by the api, freed by the audit writer) | api, audit writer |
//! | [`search`] | full-text search over titles and messages a person can see | api (reads) |
//! | [`transcript`] | writes `messages`, `audit_log`, `responding`, `conversations.applied_seq` (and frees `response_slots`) from stream events, idempotently | audit writer |
//!
//! Errors: [`StoreError`] (`thiserror`), with `NotFound`/`Conflict` for the cases callers turn into HTTP statuses.

pub mod attachments;
pub mod audit_log;
pub mod conversations;
pub mod erase;
pub mod history;
pub mod invites;
pub mod limits;
pub mod orgs;
pub mod outbox;
pub mod responding;
pub mod retention;
pub mod search;
pub mod sessions;
pub mod shares;
pub mod slots;
pub mod sso;
pub mod teams;
pub mod tls;
pub mod transcript;
pub mod view;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use std::str::FromStr;
use std::time::Duration;

/// How long [`Db::client`] waits for a connection unless told otherwise.
pub const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

mod embedded {
    refinery::embed_migrations!("../../sql");
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// No connection within the pool's checkout timeout.
    #[error("no database connection in time")]
    Timeout,
    #[error("migration: {0}")]
    Migration(String),
    #[error("bad database url: {0}")]
    Config(String),
}

impl StoreError {
    /// True for a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Db(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION))
    }

    /// True when the database could not be reached or went away mid-statement (no connection in time, a
    /// connection closed or refused, the server shutting down): worth a retry later, not a fault of the request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) | StoreError::Timeout => true,
            StoreError::Db(e) => {
                let class = e.code().map(|c| &c.code()[..2]);
                e.is_closed()
                    || matches!(class, Some("08") | Some("57"))
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            _ => false,
        }
    }

    /// True when PostgreSQL refused a text value it cannot store (a NUL character): bad input, not a fault.
    pub fn is_invalid_text(&self) -> bool {
        use tokio_postgres::error::SqlState;
        matches!(self, StoreError::Db(e) if e.code() == Some(&SqlState::CHARACTER_NOT_IN_REPERTOIRE)
            || e.code() == Some(&SqlState::UNTRANSLATABLE_CHARACTER))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The connection half of [`Db::connect_dedicated`] (the caller drives it).
pub(crate) type DedicatedConnection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

/// A connection pool to the RelayHub database.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl Db {
    /// Builds a pool of at most `max_size` connections for `url` (`postgres://user:pass@host:port/db`), with
    /// [`DEFAULT_CHECKOUT_TIMEOUT`]. Connections are opened lazily.
    pub fn connect(url: &str, max_size: usize) -> Result<Self> {
        Self::connect_with_timeout(url, max_size, DEFAULT_CHECKOUT_TIMEOUT)
    }

    /// [`Db::connect`] whose [`Db::client`] gives up after `checkout_timeout` — waiting for a free connection,
    /// opening one, or checking a pooled one — with [`StoreError::Timeout`], so a stuck or saturated database
    /// turns into a clear error instead of a request that hangs.
    pub fn connect_with_timeout(url: &str, max_size: usize, checkout_timeout: Duration) -> Result<Self> {
        Self::connect_tls(url, max_size, checkout_timeout, &tls::DbTls::default())
    }

    /// [`Db::connect_with_timeout`] over TLS when `tls` (or the URL's `sslmode=require`) says so.
    pub fn connect_tls(url: &str, max_size: usize, checkout_timeout: Duration, tls: &tls::DbTls) -> Result<Self> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Config(e.to_string()))?;
        let tls = tls.connector(&mut config)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let timeout = Some(checkout_timeout);
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Db { pool, config, tls })
    }

    /// A pooled connection.
    pub async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(_) => StoreError::Timeout,
            other => StoreError::Pool(other),
        })
    }

    /// A dedicated connection outside the pool (the outbox relay's leader), with the pool's settings and TLS.
    pub(crate) async fn connect_dedicated(&self) -> Result<(tokio_postgres::Client, DedicatedConnection)> {
        Ok(self.config.connect(self.tls.clone()).await?)
    }

    /// Applies the migrations in `sql/` that have not run yet.
    ///
    /// Several api replicas start at once in a cluster: a session-level advisory lock makes them migrate one after
    /// the other (the later ones find nothing left to do) instead of racing on refinery's history table.
    pub async fn migrate(&self) -> Result<()> {
        const MIGRATION_LOCK: i64 = 0x5248_4d49_4752; // "RHMIGR"
        let mut client = self.client().await?;
        client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
        let result = embedded::migrations::runner()
            .run_async(&mut **client)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()));
        client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
        result.map(|_| ())
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        match self.client().await {
            Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }
}
