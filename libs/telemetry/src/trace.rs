//! Traces across processes: the W3C trace context (`traceparent`, `tracestate`) rides in NATS message headers
//! and HTTP requests, and each hop opens a span that continues it (`tracing` spans, made OpenTelemetry spans by
//! `tracing-opentelemetry`). One answer is one trace: the api's HTTP request (or the edge's socket command and
//! the api's `rh.api.*` answer) → the job → the worker → each event → every edge that delivers it to sockets.
//!
//! **Off by default, and then free**: no OpenTelemetry layer is installed, [`enabled`] is one relaxed atomic load,
//! and the hot paths (a delta's publish, its delivery) neither add nor read headers. Two switches turn it on
//! ([`TraceArgs`]): `--otlp-endpoint` exports spans to an OpenTelemetry collector over OTLP/HTTP (batched, on a
//! thread of its own), `--trace-log` writes each span's close, with its `trace_id`, to the log (no collector
//! needed; the e2e test follows one answer through the binaries' logs this way). Either way log lines inside a
//! hop carry its `trace_id`.
//!
//! The helpers every binary uses the same way: [`hop_span!`](crate::hop_span) opens a hop's span (a disabled one
//! when tracing is off), [`follow_nats`] / [`follow_http`] / [`start`] give it its parent and record its trace
//! id, [`inject_nats`] writes the current span's context into an outgoing message's headers (`rh_bus` does it for
//! every publish and request).

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Tracing flags, flattened into every binary's configuration.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TraceArgs {
    /// Export spans by OTLP/HTTP to this OpenTelemetry collector, e.g. `http://otel-collector:4318`
    /// (`/v1/traces` is added). Turns tracing on: trace context is carried across NATS and HTTP.
    #[arg(long, env = "RH_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Follow traces in the log: carry trace context and log each span as it closes, with its `trace_id` and
    /// timings. Needs no collector; meant for debugging (a line per event per edge).
    #[arg(long, env = "RH_TRACE_LOG")]
    pub trace_log: bool,

    /// Share of new traces that are recorded (0 to 1); a hop always follows its caller's choice.
    #[arg(long, env = "RH_TRACE_SAMPLE_RATIO", default_value_t = 1.0)]
    pub trace_sample_ratio: f64,
}

impl TraceArgs {
    fn on(&self) -> bool {
        self.otlp_endpoint.is_some() || self.trace_log
    }
}

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Keeps the span exporter of the process; dropping it sends what is still buffered (at most a few seconds).
#[must_use = "dropping it stops exporting spans"]
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("flushing spans at exit failed: {e}");
        }
    }
}

/// Sets up logging (`tracing` to stderr, filtered by `RUST_LOG`, default `info`) and, when `args` turn it on,
/// spans with trace context for `service`. Call once, first thing in `main`.
pub fn init(service: &'static str, args: &TraceArgs) -> Result<Tracing, TraceError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let spans = if args.trace_log { FmtSpan::CLOSE } else { FmtSpan::NONE };
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).with_span_events(spans);
    let provider = if args.on() { Some(provider(service, args)?) } else { None };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer().with_tracer(p.tracer(service)).with_tracked_inactivity(false).with_threads(false)
    });
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init();
    ENABLED.store(provider.is_some(), Ordering::Relaxed);
    Ok(Tracing { provider })
}

/// The tracer provider: sampled by ratio at the root, parent-based after; exporting only with an endpoint.
fn provider(service: &'static str, args: &TraceArgs) -> Result<SdkTracerProvider, TraceError> {
    let ratio = args.trace_sample_ratio.clamp(0.0, 1.0);
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service).build();
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))))
        .with_resource(resource);
    if let Some(endpoint) = &args.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        // An https collector needs a TLS provider; reqwest is built without a default one (as in rh-llm).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let endpoint = endpoint.trim_end_matches('/');
        let url = if endpoint.ends_with("/v1/traces") { endpoint.to_owned() } else { format!("{endpoint}/v1/traces") };
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().with_endpoint(url).build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// Whether trace context is carried: one relaxed load, for hot paths to skip all of it when off.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Opens a hop's `tracing` span at INFO with an empty `trace_id` field (filled by [`follow_nats`],
/// [`follow_http`] or [`start`]) and the given fields; a disabled span, which costs nothing, when tracing is off.
#[macro_export]
macro_rules! hop_span {
    ($name:literal $(, $($fields:tt)*)?) => {
        if $crate::trace::enabled() {
            $crate::__tracing::info_span!($name, trace_id = $crate::__tracing::field::Empty $(, $($fields)*)?)
        } else {
            $crate::__tracing::Span::none()
        }
    };
}

/// Makes `span` continue the trace whose context `headers` carry (a new trace when they carry none).
pub fn follow_nats(span: &Span, headers: Option<&async_nats::HeaderMap>) {
    if enabled() {
        let cx = headers.map(|h| TraceContextPropagator::new().extract(&NatsHeaders(h)));
        adopt(span, cx);
    }
}

/// Makes `span` continue the trace of an HTTP request's `traceparent` (a new trace without one).
pub fn follow_http(span: &Span, headers: &axum::http::HeaderMap) {
    if enabled() {
        adopt(span, Some(TraceContextPropagator::new().extract(&HttpHeaders(headers))));
    }
}

/// Records the trace id of `span`, which continues the current span's trace (or starts one).
pub fn start(span: &Span) {
    if enabled() {
        adopt(span, None);
    }
}

fn adopt(span: &Span, parent: Option<opentelemetry::Context>) {
    if let Some(cx) = parent.filter(|cx| cx.span().span_context().is_valid()) {
        let _ = span.set_parent(cx);
    }
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// Adds the current span's trace context to `headers` of an outgoing NATS message; nothing when tracing is off
/// or there is no span.
pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    if enabled() {
        let cx = Span::current().context();
        TraceContextPropagator::new().inject_context(&cx, &mut NatsHeadersMut(headers));
    }
}

/// The trace id of the current span, as written in `traceparent` (for tests and log correlation).
pub fn current_trace_id() -> Option<String> {
    let trace_id = Span::current().context().span().span_context().trace_id();
    (trace_id != opentelemetry::TraceId::INVALID).then(|| trace_id.to_string())
}

struct NatsHeaders<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

struct NatsHeadersMut<'a>(&'a mut async_nats::HeaderMap);

impl Injector for NatsHeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HttpHeaders<'a>(&'a axum::http::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    use std::sync::{Arc, Mutex};

    /// An in-process exporter (the SDK's own sits behind a feature that would rebuild it for tests only).
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collect {
        async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.lock().expect("not poisoned").extend(batch);
            Ok(())
        }
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// Off: no span, no header. On: a hop continues the trace its message's headers carry and passes it on in the
    /// next message's headers, as checked on what an in-process exporter receives.
    #[test]
    fn a_hop_continues_the_trace_in_the_headers_and_passes_it_on() {
        let exporter = Collect::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let mut incoming = async_nats::HeaderMap::new();
        incoming.insert("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01").as_str());
        let mut outgoing = async_nats::HeaderMap::new();
        tracing::subscriber::with_default(subscriber, || {
            let span = crate::hop_span!("off");
            follow_nats(&span, Some(&incoming));
            let _in = span.enter();
            inject_nats(&mut outgoing);
            assert!(span.is_disabled());
            assert!(outgoing.get("traceparent").is_none());
            drop(_in);

            ENABLED.store(true, Ordering::Relaxed);
            let worker = crate::hop_span!("job");
            follow_nats(&worker, Some(&incoming));
            worker.in_scope(|| {
                assert_eq!(current_trace_id().as_deref(), Some(TRACE));
                inject_nats(&mut outgoing);
            });
            drop(worker);
            let edge = crate::hop_span!("deliver");
            follow_nats(&edge, Some(&outgoing));
            drop(edge);
        });
        let spans = exporter.0.lock().expect("not poisoned").clone();
        let find = |name: &str| spans.iter().find(|s| s.name == name).expect(name);
        let (worker, edge) = (find("job"), find("deliver"));
        assert_eq!(worker.span_context.trace_id().to_string(), TRACE);
        assert_eq!(worker.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(edge.span_context.trace_id().to_string(), TRACE);
        assert_eq!(edge.parent_span_id, worker.span_context.span_id());
        let recorded = edge.attributes.iter().find(|kv| kv.key.as_str() == "trace_id").map(|kv| kv.value.to_string());
        assert_eq!(recorded.as_deref(), Some(TRACE), "the span's trace_id field (what the logs show)");
    }
}
