//! PostgreSQL over TLS: scripts/test's private PostgreSQL has TLS on (a throwaway CA, `pg_test_tls` in
//! scripts/lib.sh) and lets the role `rh_tls` in only over TLS. The api and the audit writer reach it with
//! `--database-tls-ca`; without TLS, or trusting another CA, they are refused.

use crate::helpers::*;
use rh_store::tls::DbTls;
use rh_store::{DEFAULT_CHECKOUT_TIMEOUT, Db};
use rh_testkit::{NatsServer, Service};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test"))
}

/// A fresh database owned by `rh_tls` (made if missing) on the test server; its URL as `rh_tls`.
async fn tls_only_database() -> String {
    let admin_url = env("RH_TEST_PG_URL");
    let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute("DO $$ BEGIN CREATE ROLE rh_tls LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        .await
        .unwrap();
    let name = format!("rh_tls_{}", uuid::Uuid::new_v4().simple());
    admin.batch_execute(&format!("CREATE DATABASE {name} OWNER rh_tls")).await.unwrap();
    // postgres://postgres@127.0.0.1:PORT/postgres → postgres://rh_tls@127.0.0.1:PORT/<name>
    let host = admin_url.split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap();
    format!("postgres://rh_tls@{host}/{name}")
}

async fn reaches(url: &str, tls: &DbTls) -> bool {
    Db::connect_tls(url, 1, DEFAULT_CHECKOUT_TIMEOUT, tls).unwrap().ping().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_audit_writer_reach_postgresql_over_tls_and_are_refused_without_it() {
    let url = tls_only_database().await;
    let (ca, wrong_ca) = (env("RH_TEST_PG_TLS_CA"), env("RH_TEST_PG_WRONG_CA"));
    assert!(!reaches(&url, &DbTls::default()).await, "a plain connection is refused");
    assert!(!reaches(&url, &DbTls::with_ca(&wrong_ca)).await, "a server the CA does not vouch for is refused");
    assert!(reaches(&url, &DbTls::with_ca(&ca)).await, "TLS with the right CA connects");

    let nats = NatsServer::start().await.unwrap();
    let api_env = |tls: bool| {
        let mut env = vec![
            ("RH_NATS_URL", nats.url()),
            ("RH_DATABASE_URL", url.as_str()),
            ("RH_JWT_SECRET", "api-test-secret-api-test-secret-0"),
            ("RH_API_LISTEN", "127.0.0.1:0"),
        ];
        env.extend(tls.then_some(("RH_DATABASE_TLS_CA", ca.as_str())));
        env
    };
    // Without TLS the api cannot even migrate: it never starts serving.
    assert!(Service::spawn("api", &api_env(false)).await.is_err(), "the api started without TLS");
    let api = Service::spawn("api", &api_env(true)).await.unwrap();
    let client = rh_testkit::Api::new(&api.http_url());
    let ada = client.sign_up("Tls", "Ada", "ada@tls.test", "pw-ada-123456").await.expect("the api serves over TLS");
    client.create_conversation(&ada, "Encrypted").await.unwrap();

    let audit_env = |tls: bool| {
        let mut env = vec![
            ("RH_NATS_URL", nats.url()),
            ("RH_DATABASE_URL", url.as_str()),
            ("RH_AUDIT_OPS_LISTEN", "127.0.0.1:0"),
        ];
        env.extend(tls.then_some(("RH_DATABASE_TLS_CA", ca.as_str())));
        env
    };
    let ready = |service: &Service| {
        let url = format!("{}/readyz", service.http_url());
        async move { reqwest::get(url).await.is_ok_and(|r| r.status().is_success()) }
    };
    let audit = Service::spawn("audit", &audit_env(true)).await.unwrap();
    rh_testkit::eventually(WAIT, "the audit writer ready over TLS", || async { ready(&audit).await.then_some(()) })
        .await
        .unwrap();
    let plain = Service::spawn("audit", &audit_env(false)).await.unwrap();
    // Ready within a second when it can reach PostgreSQL (checked every 250 ms): after 2 s, it cannot.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(!ready(&plain).await, "an audit writer without TLS reads PostgreSQL as down");
}
