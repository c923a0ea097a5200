//! Logs and traces: one subscriber for every binary.
//!
//! - Logs: JSON or pretty, filtered by `RUST_LOG`, always on.
//! - Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set,
//!   every span is also exported over OTLP/HTTP (protobuf) in batches. W3C trace context
//!   (`traceparent`) links a saga's spans across processes: [`inject`] on the way out,
//!   [`set_remote_parent`] on the way in, [`traceparent`] / [`continue_trace`] to keep a saga's
//!   trace across a crash (the orchestrator stores it with the saga).
//!
//! Without an endpoint no OpenTelemetry layer is installed and [`enabled`] is false: the helpers
//! return at once, nothing is injected and nothing is stored.
//!
//! The exporter's own settings (`OTEL_EXPORTER_OTLP_*`, `OTEL_BSP_*`, `OTEL_SERVICE_NAME`) are
//! read by the OpenTelemetry SDK itself, as the specification says; only whether to export at
//! all is decided here.

use std::{
    io::IsTerminal,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_http::{Bytes, HeaderExtractor, HeaderInjector, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{filter::Targets, fmt, prelude::*};

use crate::config::{Env, LogFormat};

/// The variables that switch the export on (the SDK reads their values).
const ENDPOINT_VARS: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// How long an export may take; spans that cannot be sent in time are dropped, never waited for.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

static ENABLED: AtomicBool = AtomicBool::new(false);

/// What [`init`] installed; [`Telemetry::shutdown`] flushes the spans still buffered.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends what is buffered and stops the exporter (bounded by the export timeout).
    /// Call it outside the async runtime: it blocks.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown_with_timeout(EXPORT_TIMEOUT)
        {
            eprintln!("warning: could not flush the trace exporter: {err}");
        }
    }
}

/// Installs the global subscriber for `service`. Call once, before the async runtime starts
/// (the exporter's HTTP client is a blocking one, living on the exporter's own thread).
/// Returns an error (instead of panicking) if a subscriber is already installed.
pub fn init(service: &'static str, env: &Env) -> anyhow::Result<Telemetry> {
    let format = crate::config::log_format(env)?;
    let provider = if ENDPOINT_VARS.iter().any(|var| env.get(var).is_some()) { Some(provider(service)?) } else { None };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
    });
    let filter = log_filter(env)?;
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    let result = match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false))
            .try_init(),
        // Colours only on a terminal: log files stay plain text.
        LogFormat::Pretty => {
            registry.with(fmt::layer().compact().with_ansi(std::io::stdout().is_terminal())).try_init()
        }
    };
    result.map_err(|e| anyhow::anyhow!("could not install the log subscriber: {e}"))?;
    ENABLED.store(provider.is_some(), Ordering::Relaxed);
    Ok(Telemetry { provider })
}

/// The log (and span) filter: `RUST_LOG` as `target=level` directives, comma separated
/// (`info,sqlx=warn,orchestrator=debug`). A malformed one stops start-up with the reason.
fn log_filter(env: &Env) -> anyhow::Result<Targets> {
    let directives = env.get("RUST_LOG").unwrap_or(DEFAULT_LOG_FILTER);
    directives
        .parse()
        .map_err(|e| anyhow::anyhow!("RUST_LOG={directives:?} is not a list of target=level directives: {e}"))
}

/// What is logged without `RUST_LOG`.
const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,tower_http=info";

fn provider(service: &'static str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(BlockingClient::new()?)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the OTLP trace exporter: {e}"))?;
    let resource = Resource::builder().with_service_name(service).build();
    Ok(SdkTracerProvider::builder().with_resource(resource).with_batch_exporter(exporter).build())
}

/// Whether spans are exported (an OTLP endpoint is configured).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A span that exists only while traces are exported: `make` runs only then. For spans that add
/// detail to a trace (a participant call, a SQL phase) and would only cost time otherwise.
pub fn traced(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if enabled() { make() } else { tracing::Span::none() }
}

/// Adds the current span's W3C `traceparent` to an outgoing request's headers.
pub fn inject(headers: &mut http::HeaderMap) {
    if enabled() {
        let context = tracing::Span::current().context();
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }
}

/// Makes `span` a child of the trace context an incoming request carries (if any). Call it
/// before the span is entered.
pub fn set_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if enabled() {
        let context = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        if context.span().span_context().is_valid() {
            // Fails only for a span the filter disabled: then there is nothing to link.
            let _ = span.set_parent(context);
        }
    }
}

/// The current span's context as a `traceparent` value, to store and continue later.
pub fn traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let mut headers = http::HeaderMap::new();
    inject(&mut headers);
    headers.get("traceparent").and_then(|value| value.to_str().ok()).map(str::to_owned)
}

/// Makes `span` a child of a stored `traceparent` (see [`traceparent`]); a missing or malformed
/// one leaves it a root.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let (true, Some(value)) = (enabled(), traceparent) else { return };
    let Ok(value) = http::HeaderValue::from_str(value) else { return };
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", value);
    set_remote_parent(span, &headers);
}

/// The exporter's HTTP client: a blocking reqwest client, because the SDK's batch processor runs
/// exports on a thread of its own, outside any async runtime. (The exporter's bundled clients
/// would add a second reqwest major version to the build.)
#[derive(Debug)]
struct BlockingClient(reqwest::blocking::Client);

impl BlockingClient {
    fn new() -> anyhow::Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the OTLP HTTP client: {e}"))?;
        Ok(Self(client))
    }
}

#[async_trait::async_trait]
impl HttpClient for BlockingClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let response =
            self.0.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body.to_vec()).send()?;
        let mut answer = Response::builder().status(response.status());
        if let Some(headers) = answer.headers_mut() {
            *headers = response.headers().clone();
        }
        Ok(answer.body(response.bytes()?)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_is_parsed_as_target_directives_and_a_malformed_one_is_refused() {
        let filter = log_filter(&Env::from_pairs([("RUST_LOG", "warn,orchestrator=debug")])).unwrap();
        assert_eq!(filter.default_level(), Some(tracing::level_filters::LevelFilter::WARN));
        assert!(filter.would_enable("orchestrator::saga", &tracing::Level::DEBUG));
        assert!(!filter.would_enable("sqlx::query", &tracing::Level::INFO));
        assert!(log_filter(&Env::default()).unwrap().would_enable("payment", &tracing::Level::INFO));
        let err = log_filter(&Env::from_pairs([("RUST_LOG", "sqlx=loud")])).unwrap_err();
        assert!(err.to_string().contains("RUST_LOG"), "{err}");
    }

    #[test]
    fn without_an_endpoint_nothing_is_injected_or_stored() {
        // `init` is not called in unit tests: the export is off, as in a process without
        // `OTEL_EXPORTER_OTLP_ENDPOINT`.
        let mut headers = http::HeaderMap::new();
        inject(&mut headers);
        assert!(headers.is_empty());
        assert_eq!(traceparent(), None);
    }
}
