//! The harness itself: real servers come up, are isolated per test, and go away on drop.

use rh_testkit::{NatsServer, TestDb};

#[tokio::test]
async fn nats_server_starts_with_jetstream_and_relayhub_streams() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let js = nats.jetstream().await?;
    let mut stream = js.get_stream(rh_protocol::subjects::STREAM_CONV).await?;
    assert_eq!(stream.info().await?.config.name, "RH_CONV");
    assert!(js.get_stream(rh_protocol::subjects::STREAM_JOBS).await.is_ok());
    let dir = nats.dir().to_path_buf();
    drop(nats);
    assert!(!dir.exists(), "data removed on drop");
    Ok(())
}

#[tokio::test]
async fn two_servers_are_independent() -> anyhow::Result<()> {
    let (a, b) = (NatsServer::start().await?, NatsServer::start().await?);
    assert_ne!(a.url(), b.url());
    Ok(())
}

#[tokio::test]
async fn a_restarted_nats_server_keeps_its_port_and_its_streams() -> anyhow::Result<()> {
    let mut nats = NatsServer::start().await?;
    let js = nats.jetstream().await?;
    js.publish("rh.conv.x.event", "kept".into()).await?.await?;
    let url = nats.url().to_owned();
    nats.stop().await;
    assert!(async_nats::connect(&url).await.is_err(), "down after stop");
    nats.restart().await?;
    assert_eq!(nats.url(), url, "same port");
    let js = nats.jetstream().await?;
    let mut stream = js.get_stream(rh_protocol::subjects::STREAM_CONV).await?;
    assert_eq!(stream.info().await?.state.messages, 1, "the stream came back from disk");
    Ok(())
}

#[tokio::test]
async fn each_test_database_is_fresh_and_migrated() -> anyhow::Result<()> {
    let (a, b) = (TestDb::create().await?, TestDb::create().await?);
    assert_ne!(a.url(), b.url());
    let ca = a.connect().await?;
    ca.execute("INSERT INTO orgs (id, name) VALUES ($1, 'x')", &[&uuid::Uuid::new_v4()]).await?;
    let cb = b.connect().await?;
    let n: i64 = cb.query_one("SELECT count(*) FROM orgs", &[]).await?.get(0);
    assert_eq!(n, 0);
    Ok(())
}
