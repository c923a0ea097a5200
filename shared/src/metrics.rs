//! The Prometheus recorder and the HTTP metrics every service exports.
//!
//! Metric names are constants (shared by code, alert rules, dashboard and tests) and are described
//! once. Labels are bounded: the route template from `MatchedPath`, never a raw path or an id.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// `http_requests_total{service,method,route,status}`
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// `http_request_duration_seconds{service,method,route}` (histogram)
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";

/// Latency buckets (seconds): fine below 100 ms where a healthy step lives, coarse above.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Installs the process-wide Prometheus recorder and describes the HTTP metrics.
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
        .map_err(|e| anyhow::anyhow!("invalid histogram buckets: {e}"))?
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("could not install the metrics recorder: {e}"))?;
    metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests answered, by route template and status.");
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request latency, by route template."
    );
    Ok(handle)
}

/// Middleware recording the request counter and latency histogram for `service`.
pub async fn track_http(State(service): State<&'static str>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS_TOTAL, "service" => service, "method" => method.clone(),
        "route" => route.clone(), "status" => status)
    .increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "service" => service, "method" => method,
        "route" => route)
    .record(started.elapsed().as_secs_f64());
    response
}
