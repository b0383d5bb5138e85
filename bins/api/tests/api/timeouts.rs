//! The api when PostgreSQL is slow or unreachable: a request waiting for a pool connection, or taking too long,
//! answers a clear 503 (flags `--db-checkout-timeout-ms`, `--request-timeout-ms`), and `GET /me` answers 503 —
//! not the 401 that would sign the person out — while the database refuses connections.

use crate::helpers::*;

/// The database name of a `postgres://…/name` URL.
fn db_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_and_a_slow_request_answer_503() {
    let app = spawn_app_with(&[
        ("RH_DB_POOL_SIZE", "1"),
        ("RH_DB_CHECKOUT_TIMEOUT_MS", "300"),
        ("RH_REQUEST_TIMEOUT_MS", "1500"),
    ])
    .await;
    let team = team(&app).await;

    // The test holds a lock every authenticated request waits for: the api's one connection gets stuck.
    let mut locker = app.db.connect().await.unwrap();
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE").await.unwrap();

    let slow = {
        let api = app.api.as_user(&team.ada);
        tokio::spawn(async move { api.get("/conversations").await.unwrap() })
    };
    let observer = app.db.connect().await.unwrap();
    let name = db_name(app.db.url());
    rh_testkit::eventually(WAIT, "the api's query waiting for the lock", || async {
        let row = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
                &[&name],
            )
            .await
            .ok()?;
        (row.get::<_, i64>(0) > 0).then_some(())
    })
    .await
    .unwrap();

    // Another request finds no free connection: 503 after the checkout timeout.
    let (s, v) = app.api.as_user(&team.ben).get("/me").await.unwrap();
    assert_error(s, &v, 503, "unavailable");
    assert!(v["error"]["message"].as_str().unwrap().contains("database"), "{v}");
    // The stuck one: 503 after the request timeout.
    let (s, v) = tokio::time::timeout(WAIT, slow).await.expect("answered").unwrap();
    assert_error(s, &v, 503, "unavailable");
    assert!(v["error"]["message"].as_str().unwrap().contains("took longer"), "{v}");

    // Lock released: served again.
    tx.rollback().await.unwrap();
    let (s, v) = app.api.as_user(&team.ada).get("/me").await.unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
}

#[tokio::test]
async fn me_answers_503_not_401_while_the_database_refuses_connections() {
    let app = spawn_app().await;
    let team = team(&app).await;
    app.db.refuse_connections().await.unwrap();

    let (s, v) = app.api.as_user(&team.ada).get("/me").await.unwrap();
    assert_error(s, &v, 503, "unavailable");

    // Back: served again once the api's pool drops the connections the database cut (one it has not noticed yet
    // may still answer 503 once).
    app.db.allow_connections().await.unwrap();
    let ada = app.api.as_user(&team.ada);
    rh_testkit::eventually(WAIT, "GET /me 200 again", || async {
        (ada.get("/me").await.ok()?.0.as_u16() == 200).then_some(())
    })
    .await
    .unwrap();
}
