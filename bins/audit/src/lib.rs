//! RelayHub audit writer: the durable JetStream consumer `audit` on stream `RH_AUDIT` (JetStream's copy of
//! `RH_CONV`'s `rh.conv.*.event` events, kept until this writer acks them; token deltas never reach it) that
//! writes the transcript (`messages`) and the audit log (`audit_log`) to PostgreSQL and raises
//! `conversations.applied_seq` to each event's `RH_CONV` seq, idempotently, strictly in stream order.
//!
//! | module | what it does |
//! |---|---|
//! | [`activity`] | the sidebar's "responding…" marker: `activity` inbox messages after answers start and end |
//! | [`config`] | flags (`--nats-url`, `--ops-listen`, `--database-url`, `--batch-max`), each with its env var |
//! | [`consumer`] | the consumer's definition (explicit acks, ack_wait 30 s, deliver all), rewind to the ack floor |
//! | [`writer`] | the write loop: batch what is delivered, one transaction, ack after commit, retry, poison handling |
//! | [`monitor`] | readiness (NATS ∧ PostgreSQL ∧ writes succeeding ∧ transcript not at risk) and the lag gauges |
//! | [`retention`] | how close an event not yet copied into `RH_AUDIT` is to being dropped from `RH_CONV`; gaps |
//! | [`metrics`] | Prometheus metrics (`relayhub_audit_*`) |
//!
//! The rows written per event are defined in `rh_store::transcript`.
//!
//! Run exactly one audit writer per deployment: order (and so `applied_seq`, which the history rule relies on)
//! holds because one process applies the events one batch after another.

pub mod activity;
pub mod config;
pub mod consumer;
pub mod metrics;
pub mod monitor;
pub mod retention;
pub mod writer;

pub use config::Config;

use anyhow::Context as _;
use rh_store::Db;
use rh_telemetry::Health;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio_util::sync::CancellationToken;

/// Runs the audit writer until `shutdown` is cancelled: serves the ops endpoints, connects, ensures the topology
/// and the consumer, then writes events. On shutdown the current batch is finished and its acks flushed.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let health = Health::new("audit");
    let metrics = metrics::Metrics::new(&health);
    let mut ops = tokio::spawn(rh_telemetry::serve(
        "audit",
        config.ops_listen,
        rh_telemetry::ops_router(health.clone()),
        shutdown.clone().cancelled_owned(),
    ));

    let work = async {
        let tls = &config.database_tls;
        let db = Db::connect_tls(&config.database_url, 2, rh_store::DEFAULT_CHECKOUT_TIMEOUT, tls)
            .context("database url")?;
        let Some(client) =
            until_shutdown(&shutdown, rh_bus::connect(&config.nats_url, &config.nats_auth, rh_bus::Role::Audit)).await
        else {
            return Ok(());
        };
        health.watch_nats(&client);
        // PostgreSQL is asked on a connection of its own: the writer's busy pool never reads as an outage.
        let probe = Db::connect_tls(&config.database_url, 1, rh_telemetry::DEPENDENCY_CHECK_TIMEOUT, tls)?;
        health.watch("postgres", move || {
            let probe = probe.clone();
            async move { probe.ping().await }
        });
        let js = async_nats::jetstream::new(client.clone());
        let streams = [rh_protocol::subjects::STREAM_CONV, rh_protocol::subjects::STREAM_AUDIT];
        if until_shutdown(&shutdown, rh_bus::wait_for_streams(&js, &streams)).await.is_none() {
            return Ok(());
        }
        let Some(mut consumer) =
            retry(&shutdown, "creating the consumer", || async { consumer::ensure(&js).await }).await
        else {
            return Ok(());
        };
        match consumer::ack_pending(&mut consumer).await {
            Ok(0) => {}
            Ok(unacked) => {
                tracing::info!(unacked, "events left unacked by a previous run: delivering them again first");
                if let Err(e) = consumer::rewind_to_ack_floor(&client, &js).await {
                    tracing::warn!(error = %e, "could not rewind the consumer; unacked events come back after ack_wait");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the consumer's state"),
        }

        let db_failing = Arc::new(AtomicBool::new(false));
        let monitor = tokio::spawn(
            monitor::Monitor {
                health: health.clone(),
                metrics: metrics.clone(),
                client: client.clone(),
                consumer: consumer.clone(),
                db: db.clone(),
                db_failing: db_failing.clone(),
                js: js.clone(),
            }
            .run(shutdown.clone()),
        );
        tracing::info!("audit writer started");
        let writer = writer::Writer {
            client: client.clone(),
            js,
            db,
            metrics,
            health: health.clone(),
            db_failing,
            batch_max: usize::from(config.batch_max),
        };
        writer.run(consumer, &shutdown).await;
        // The last acks must reach the server before the process exits.
        if let Err(e) = client.flush().await {
            tracing::warn!(error = %e, "could not flush the last acks; those events will be skipped as duplicates");
        }
        let _ = monitor.await;
        tracing::info!("audit writer stopped");
        anyhow::Ok(())
    };

    tokio::select! {
        result = work => {
            shutdown.cancel();
            result?;
            ops.await.context("ops server task")??;
        }
        served = &mut ops => {
            // The ops server only ends early when it cannot bind.
            shutdown.cancel();
            served.context("ops server task")??;
        }
    }
    Ok(())
}

/// `fut`'s output, or `None` if shutdown comes first.
async fn until_shutdown<T>(shutdown: &CancellationToken, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        _ = shutdown.cancelled() => None,
        value = fut => Some(value),
    }
}

/// Retries `attempt` with back-off until it succeeds; `None` if shutdown comes first.
async fn retry<T, F, Fut>(shutdown: &CancellationToken, what: &str, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        match until_shutdown(shutdown, attempt()).await? {
            Ok(value) => return Some(value),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "{what} failed; retrying"),
        }
        if writer::sleep_or_shutdown(delay, shutdown).await {
            return None;
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
    }
}
