//! RelayHub worker: pulls generation jobs from JetStream (`rh.jobs.generate`, durable consumer `workers`) and
//! streams the provider's tokens onto the conversation's subject. See [`job`] for one job's life.
//!
//! Shutdown (SIGTERM / Ctrl-C): stop pulling, let running jobs finish for `--shutdown-grace-secs`, then hand the
//! rest back to JetStream (nak) so another worker takes them over at once.

mod claim;
mod config;
mod job;
mod metrics;
mod publisher;

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, consumer::pull};
use clap::Parser;
use config::{Config, ProviderKind, clean_list};
use futures::StreamExt;
use job::JobContext;
use metrics::Metrics;
use rh_llm::{OpenAiCompatible, OpenAiConfig, Provider, Simulated, SimulatedConfig};
use rh_protocol::rpc::{ModelInfo, ModelList, Reply};
use rh_protocol::subjects;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long one pull request waits at the server for jobs. Short, because at shutdown a pull request cannot be
/// withdrawn: jobs it still delivers are handed back, and they must not land in it again. A job published while
/// a request waits is delivered at once either way; an idle worker costs one request per this period.
const PULL_EXPIRES: Duration = Duration::from_secs(2);
/// How long re-creating the consumer may hold up pulling ([`refresh_consumer`]).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(2);

/// mimalloc: many small allocations per frame and per event (loadtest/RESULTS.md, session 9).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _tracing = rh_telemetry::init("worker", &config.trace)?;
    rh_llm::install_crypto_provider();
    let provider = build_provider(&config)?;
    tracing::info!(provider = provider.kind(), models = ?provider.models(), "provider ready");

    let health = rh_telemetry::Health::new("worker");
    let metrics = Metrics::new(&health);
    // The ops port is bound (and /healthz served) at once and stays up until the very end, so /metrics can be
    // scraped while jobs drain; the `listening` line that launchers and tests wait for is printed only once the
    // worker can take jobs and answer `rh.worker.models`.
    let done = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(config.ops_listen)
        .await
        .with_context(|| format!("binding the ops port {}", config.ops_listen))?;
    let ops_addr = listener.local_addr()?;
    let ops = {
        let router = rh_telemetry::ops_router(health.clone());
        let done = done.clone();
        tokio::spawn(async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .with_graceful_shutdown(done.cancelled_owned())
                .await
        })
    };

    let shutdown = rh_telemetry::shutdown_token();

    let result = run(&config, provider, metrics, &health, ops_addr, shutdown.clone()).await;
    health.set_ready(false);
    done.cancel();
    match ops.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "ops server failed"),
        Err(e) => tracing::warn!(error = %e, "ops server task failed"),
        Ok(Ok(())) => {}
    }
    result
}

fn build_provider(config: &Config) -> anyhow::Result<Arc<dyn Provider>> {
    Ok(match config.provider {
        ProviderKind::Simulated => {
            let models = clean_list(&config.sim_models);
            anyhow::ensure!(!models.is_empty(), "--sim-models is empty");
            Arc::new(Simulated::new(SimulatedConfig {
                models,
                tokens: config.sim_tokens,
                tokens_per_sec: config.sim_tokens_per_sec,
            }))
        }
        ProviderKind::Openai => {
            let base =
                config.openai_base_url.clone().context("--openai-base-url is required with --provider openai")?;
            let mut c = OpenAiConfig::new(base);
            c.api_key = config.openai_api_key.clone().filter(|k| !k.expose().is_empty());
            c.models = clean_list(&config.openai_models);
            Arc::new(
                OpenAiCompatible::new(c)
                    .context("OpenAI-compatible provider (set --openai-models, RH_OPENAI_MODELS)")?,
            )
        }
    })
}

/// The consumer configuration. `create_consumer` creates or updates, so a restart with another
/// `--job-ack-wait-secs` takes effect (the last worker to start wins for the whole pool).
fn consumer_config(config: &Config) -> pull::Config {
    pull::Config {
        durable_name: Some(subjects::WORKER_CONSUMER.to_owned()),
        description: Some("RelayHub worker pool: generation jobs".to_owned()),
        filter_subject: subjects::JOBS_GENERATE.to_owned(),
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: config.ack_wait(),
        max_ack_pending: config.max_ack_pending.max(config.concurrency() as i64),
        ..Default::default()
    }
}

async fn ensure_consumer(js: &jetstream::Context, config: &Config) -> anyhow::Result<PullConsumer> {
    let stream = js.get_stream(subjects::STREAM_JOBS).await.context("stream RH_JOBS")?;
    match stream.create_consumer(consumer_config(config)).await {
        Ok(c) => Ok(c),
        Err(e) => {
            // E.g. an operator changed a field that cannot be updated: use the consumer as it is.
            tracing::warn!(error = %e, "could not create or update the workers consumer, using it as it is");
            stream
                .get_consumer::<pull::Config>(subjects::WORKER_CONSUMER)
                .await
                .map_err(|e| anyhow::anyhow!("consumer workers: {e}"))
        }
    }
}

/// After repeated pull errors: the consumer may have been deleted (a server that lost its state), so it is created
/// again. Bounded by [`REFRESH_TIMEOUT`]: in a cluster the errors usually mean the consumer is electing a leader, and
/// creating it needs the meta leader, which may be the server that just died. Pulling again finds the new leader
/// sooner than a create waiting out its request timeout (10 s) would.
async fn refresh_consumer(consumer: &mut PullConsumer, js: &jetstream::Context, config: &Config) {
    match tokio::time::timeout(REFRESH_TIMEOUT, ensure_consumer(js, config)).await {
        Ok(Ok(c)) => *consumer = c,
        Ok(Err(e)) => tracing::warn!(error = %e, "could not refresh the workers consumer"),
        Err(_) => tracing::warn!("refreshing the workers consumer timed out; pulling again"),
    }
}

async fn run(
    config: &Config,
    provider: Arc<dyn Provider>,
    metrics: Metrics,
    health: &rh_telemetry::Health,
    ops_addr: std::net::SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let client = tokio::select! {
        c = rh_bus::connect(&config.nats_url, &config.nats_auth, rh_bus::Role::Worker) => c,
        _ = shutdown.cancelled() => return Ok(()),
    };
    health.watch_nats(&client);
    let js = jetstream::new(client.clone());
    let stops_stream = format!("KV_{}", subjects::KV_STOPS);
    rh_bus::wait_for_streams(&js, &[subjects::STREAM_JOBS, &stops_stream]).await;
    let stops = js.get_key_value(subjects::KV_STOPS).await.context("KV rh_stops")?;
    let mut consumer = ensure_consumer(&js, config).await?;

    let models_sub = client.subscribe(subjects::WORKER_MODELS).await.context("subscribing to rh.worker.models")?;
    let models_task = tokio::spawn(answer_models(client.clone(), models_sub, provider.clone()));
    let ctx = Arc::new(JobContext {
        client: client.clone(),
        js,
        publishing: publisher::Connection::new(
            config.nats_url.clone(),
            config.nats_auth.clone(),
            config.publish_ack_timeout(),
        ),
        stops,
        provider,
        metrics,
        ack_wait: config.ack_wait(),
        coalesce: config.coalesce,
    });
    // Make sure the server has our subscription before telling anyone we are here.
    client.flush().await.context("flushing to NATS")?;
    health.set_ready(true);
    rh_telemetry::announce("worker", ops_addr);
    tracing::info!(concurrency = config.concurrency(), ack_wait = ?config.ack_wait(), "pulling jobs");

    let slots = Arc::new(Semaphore::new(config.concurrency()));
    let abort = CancellationToken::new();
    let mut jobs = JoinSet::new();
    let mut failures = 0u32;
    let mut drain = None;
    'pull: while !shutdown.is_cancelled() {
        // Pull only as many jobs as there are free slots: a pulled job's ack_wait is ticking, so it must not
        // wait in a local buffer behind long generations.
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => p.context("semaphore closed")?,
            _ = shutdown.cancelled() => break 'pull,
        };
        let mut permits = vec![first];
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        while jobs.try_join_next().is_some() {}
        let pull_ends = tokio::time::Instant::now() + PULL_EXPIRES;
        let mut batch = match consumer.batch().max_messages(permits.len()).expires(PULL_EXPIRES).messages().await {
            Ok(b) => b,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "pull request failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                if failures >= 3 {
                    refresh_consumer(&mut consumer, &ctx.js, config).await;
                }
                continue;
            }
        };
        loop {
            tokio::select! {
                m = batch.next() => match m {
                    Some(Ok(msg)) => {
                        failures = 0;
                        let Some(permit) = permits.pop() else {
                            // More than asked for: should not happen; hand it back.
                            let _ = msg.ack_with(AckKind::Nak(None)).await;
                            continue;
                        };
                        let ctx = ctx.clone();
                        let abort = abort.clone();
                        jobs.spawn(async move {
                            job::run(ctx, msg, abort).await;
                            drop(permit);
                        });
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "pull error");
                        failures += 1;
                        if failures >= 3 {
                            refresh_consumer(&mut consumer, &ctx.js, config).await;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                    None => break,
                },
                _ = shutdown.cancelled() => {
                    // The pull request stays open at the server until it expires: whatever it still delivers goes
                    // straight back, while running jobs use their grace period.
                    drain = Some(tokio::spawn(async move {
                        let naks = async {
                            while let Some(Ok(msg)) = batch.next().await {
                                // Delayed past our own pull request, so that it goes to another worker.
                                let delay = pull_ends.saturating_duration_since(tokio::time::Instant::now());
                                let _ = msg.ack_with(AckKind::Nak(Some(delay + Duration::from_millis(200)))).await;
                            }
                        };
                        let _ = tokio::time::timeout(PULL_EXPIRES + Duration::from_secs(1), naks).await;
                    }));
                    break 'pull;
                }
            }
        }
    }

    tracing::info!(running = jobs.len(), grace = ?config.grace(), "stopped pulling; waiting for running jobs");
    health.set_ready(false);
    let drained = tokio::time::timeout(config.grace(), async { while jobs.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(running = jobs.len(), "grace period over; handing running jobs back");
        // Not while our last pull request is open: the handed-back jobs would be delivered right back to it.
        if let Some(drain) = drain.take() {
            let _ = drain.await;
        }
        abort.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), async { while jobs.join_next().await.is_some() {} }).await;
        jobs.abort_all();
    }
    if let Some(drain) = drain {
        let _ = drain.await;
    }
    models_task.abort();
    // Bounded: with the server already gone (e.g. the whole stack stopping at once) a flush would wait forever
    // for a reconnect, and the process would never exit.
    match tokio::time::timeout(Duration::from_secs(3), client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "final flush failed"),
        Err(_) => tracing::warn!("final flush timed out: NATS unreachable"),
    }
    tracing::info!("worker stopped");
    Ok(())
}

/// Answers `rh.worker.models`: every worker does (no queue group), and the api merges the lists, so workers
/// that serve different models are all seen.
async fn answer_models(client: async_nats::Client, mut sub: async_nats::Subscriber, provider: Arc<dyn Provider>) {
    let list = ModelList {
        models: provider
            .models()
            .into_iter()
            .map(|id| ModelInfo { id, provider: provider.kind().to_owned() })
            .collect(),
    };
    while let Some(msg) = sub.next().await {
        rh_bus::respond(&client, &msg, &Reply::Ok(list.clone())).await;
    }
}
