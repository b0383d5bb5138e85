//! A fresh PostgreSQL database per test.

use anyhow::Context;

/// A new database, migrated, on the PostgreSQL server of `RH_TEST_PG_URL` (scripts/test starts a private one).
/// Databases are left behind (the test server's data lives under `target/` and is thrown away with it).
pub struct TestDb {
    url: String,
    admin_url: String,
    name: String,
    db: rh_store::Db,
}

impl TestDb {
    pub async fn create() -> anyhow::Result<Self> {
        Self::create_on(&admin_url()?).await
    }

    /// A new database, migrated, on the server of `admin_url` (e.g. a [`crate::PgCluster`]'s).
    pub async fn create_on(admin_url: &str) -> anyhow::Result<Self> {
        let client = admin_client(admin_url).await?;
        let name = format!("rh_test_{}", uuid::Uuid::new_v4().simple());
        client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        let url = replace_db_name(admin_url, &name);
        let db = rh_store::Db::connect(&url, 8)?;
        db.migrate().await?;
        Ok(TestDb { url, admin_url: admin_url.to_owned(), name, db })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn db(&self) -> &rh_store::Db {
        &self.db
    }

    /// Makes the database refuse new connections and cuts the open ones: PostgreSQL gone, as a service sees it,
    /// without stopping the server other tests share. [`TestDb::allow_connections`] undoes it.
    pub async fn refuse_connections(&self) -> anyhow::Result<()> {
        let admin = admin_client(&self.admin_url).await?;
        admin.batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", self.name)).await?;
        admin
            .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&self.name])
            .await?;
        Ok(())
    }

    /// Undoes [`TestDb::refuse_connections`].
    pub async fn allow_connections(&self) -> anyhow::Result<()> {
        let admin = admin_client(&self.admin_url).await?;
        admin.batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.name)).await?;
        Ok(())
    }

    /// A direct connection (for assertions with plain SQL).
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }
}

/// A connection to the server's `postgres` database.
async fn admin_client(admin_url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .with_context(|| "connecting to the test PostgreSQL".to_string())?;
    tokio::spawn(conn);
    Ok(client)
}

/// `RH_TEST_PG_URL`, else the URL that a running `scripts/test` (or a developer) wrote to `target/test-pg.url`.
fn admin_url() -> anyhow::Result<String> {
    if let Ok(url) = std::env::var("RH_TEST_PG_URL") {
        return Ok(url);
    }
    let file = crate::target_dir().join("test-pg.url");
    std::fs::read_to_string(&file).map(|s| s.trim().to_owned()).with_context(|| {
        format!("RH_TEST_PG_URL is not set and {} is missing: run the tests with scripts/test, which starts a private PostgreSQL", file.display())
    })
}

/// `postgres://u@h:p/old?x` → `postgres://u@h:p/new?x`.
fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let host_part = match path_start {
        Some(i) => &base[..i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_database_name() {
        assert_eq!(
            super::replace_db_name("postgres://postgres@127.0.0.1:5/postgres", "x"),
            "postgres://postgres@127.0.0.1:5/x"
        );
        assert_eq!(
            super::replace_db_name("postgres://u@h:1/postgres?sslmode=disable", "y"),
            "postgres://u@h:1/y?sslmode=disable"
        );
    }
}
