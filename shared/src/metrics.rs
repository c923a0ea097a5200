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

/// `step_batches_total{step,result}`: a participant's batched step transactions (`committed`,
/// or `failed` and then run one request at a time); `step` is the step's ledger table.
pub const STEP_BATCHES_TOTAL: &str = "step_batches_total";
/// `step_batched_requests_total{step}`: the requests answered by committed batches; divided by
/// the committed batches, the mean batch size.
pub const STEP_BATCHED_REQUESTS_TOTAL: &str = "step_batched_requests_total";
/// `step_requests_dropped_total{step,reason}`: step requests the batch writer never ran:
/// `queue_full` (answered 503 `overloaded`) or `caller_gone` (its caller hung up while it waited).
pub const STEP_REQUESTS_DROPPED_TOTAL: &str = "step_requests_dropped_total";
/// `step_writer_restarts_total{step}`: a step's batch writer panicked and was started again.
pub const STEP_WRITER_RESTARTS_TOTAL: &str = "step_writer_restarts_total";

/// `database_up`: 1 when the service's last database round trip worked, 0 while Postgres is
/// unreachable. Without it a dead database is silent: `/metrics` keeps answering.
pub const DATABASE_UP: &str = "database_up";

/// `http_connections_open{service}`: connections being served (at most `MAX_CONNECTIONS`).
pub const HTTP_CONNECTIONS_OPEN: &str = "http_connections_open";
/// `http_connections_closed_total{service,reason}`: connections the server closed because of a
/// limit: `header_timeout`, `idle_timeout`, or `evicted` (idle, to make room at the cap).
pub const HTTP_CONNECTIONS_CLOSED_TOTAL: &str = "http_connections_closed_total";

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
    metrics::describe_counter!(STEP_BATCHES_TOTAL, "Batched step transactions, committed or failed.");
    metrics::describe_counter!(STEP_BATCHED_REQUESTS_TOTAL, "Step requests answered by committed batches.");
    metrics::describe_counter!(STEP_REQUESTS_DROPPED_TOTAL, "Step requests never run: queue full, or caller gone.");
    metrics::describe_counter!(STEP_WRITER_RESTARTS_TOTAL, "Step batch writers restarted after a panic.");
    metrics::describe_gauge!(HTTP_CONNECTIONS_OPEN, "HTTP connections being served.");
    metrics::describe_gauge!(DATABASE_UP, "1 when the last database round trip worked, 0 while it is unreachable.");
    metrics::describe_counter!(HTTP_CONNECTIONS_CLOSED_TOTAL, "HTTP connections closed by a server limit, by reason.");
    Ok(handle)
}

/// The `status` label of a request whose caller hung up before it was answered (nginx's 499,
/// "client closed request"): a caller's own timeout against a hanging or slow service.
pub const STATUS_CLIENT_CLOSED: &str = "499";

/// Middleware recording the request counter and latency histogram for `service`. It sits
/// outside the request timeout, so requests the server times out are counted with the status
/// they were answered with, and a request dropped unanswered (its caller hung up) is counted as
/// [`STATUS_CLIENT_CLOSED`] when its future is dropped.
pub async fn track_http(State(service): State<&'static str>, request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut tracked =
        Tracked { service, method: request.method().as_str().to_owned(), route, started: Instant::now(), status: None };
    let response = next.run(request).await;
    tracked.status = Some(response.status().as_u16());
    response
}

/// One request being measured; recorded when dropped, answered or not.
struct Tracked {
    service: &'static str,
    method: String,
    route: String,
    started: Instant,
    /// The answer's status; `None` while unanswered.
    status: Option<u16>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let status = self.status.map_or_else(|| STATUS_CLIENT_CLOSED.to_owned(), |s| s.to_string());
        let (service, method, route) =
            (self.service, std::mem::take(&mut self.method), std::mem::take(&mut self.route));
        metrics::counter!(HTTP_REQUESTS_TOTAL, "service" => service, "method" => method.clone(),
            "route" => route.clone(), "status" => status)
        .increment(1);
        metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "service" => service, "method" => method,
            "route" => route)
        .record(self.started.elapsed().as_secs_f64());
    }
}
