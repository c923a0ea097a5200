//! The HTTP server of every service: the standard routes, the tower stack, graceful shutdown.
//!
//! A service hands over its business routes and OpenAPI document; this module adds `/healthz`,
//! `/readyz`, `/metrics`, `/openapi.json`, `/admin/faults` (when an admin token is set), wraps
//! everything in one middleware stack, binds the listener (port 0 picks a free one, which
//! [`Application::port`] reports) and serves until SIGTERM or Ctrl-C with a bounded drain, each
//! connection within the limits of the `serve` module.

use crate::ProblemType;
use std::{net::SocketAddr, time::Duration};

use axum::{
    BoxError, Json, Router,
    error_handling::HandleErrorLayer,
    extract::{DefaultBodyLimit, MatchedPath, State},
    http::{HeaderName, Request, header},
    middleware,
    response::IntoResponse,
    routing::get,
};
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};
use utoipa::{
    OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use crate::{
    config::{ConnectionLimits, ServiceConfig},
    error::Problem,
    faults, metrics as http_metrics,
    readiness::Readiness,
};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What a service contributes to the server.
pub struct ServiceSpec {
    /// The service in the suite's table: its name is the log field, metric label and OpenAPI
    /// title; a participant's routes must serve its resource.
    pub service: &'static crate::suite::Service,
    /// The business routes, state already applied. Faults apply to these only.
    pub routes: Router,
    /// The OpenAPI document of the business routes.
    pub openapi: utoipa::openapi::OpenApi,
}

impl std::fmt::Debug for ServiceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSpec").field("service", &self.service.name).finish_non_exhaustive()
    }
}

/// A bound, ready-to-run service.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// Watched while serving, for `database_up`.
    pool: PgPool,
    name: &'static str,
    shutdown_grace: Duration,
    limits: ConnectionLimits,
    /// Cancelled when the stop signal arrives, before the drain: responses that would otherwise
    /// never end (event streams) end on it, so they do not hold the drain for its whole grace.
    stopping: CancellationToken,
}

impl Application {
    /// Assembles the router and binds the listener, with faults from the config and no parts
    /// besides the database in `/readyz` (the orchestrator's way in).
    pub async fn build(
        config: &ServiceConfig,
        spec: ServiceSpec,
        pool: PgPool,
        metrics: PrometheusHandle,
    ) -> anyhow::Result<Self> {
        let faults = faults::Faults::new(config.faults.clone());
        Self::build_with(config, spec, pool, metrics, faults, Readiness::default()).await
    }

    /// Assembles the router and binds the listener. `faults` are the live fault settings (the
    /// service's routes may read them too) and `readiness` the parts `/readyz` reports on.
    pub async fn build_with(
        config: &ServiceConfig,
        spec: ServiceSpec,
        pool: PgPool,
        metrics: PrometheusHandle,
        faults: faults::Faults,
        readiness: Readiness,
    ) -> anyhow::Result<Self> {
        if config.faults.any_enabled() {
            tracing::warn!(faults = ?config.faults, "fault injection enabled at start-up");
        }
        let name = spec.service.name;
        serves_its_resource(spec.service, &spec.openapi)?;
        let mut openapi = spec.openapi;
        openapi.merge(ProbesDoc::openapi());
        let mut router = spec
            .routes
            .layer(middleware::from_fn_with_state(faults.clone(), faults::inject))
            .route("/healthz", get(healthz).with_state(name))
            .route("/readyz", get(readyz).with_state((pool.clone(), readiness)))
            .route("/metrics", get(render_metrics).with_state(metrics));
        if let Some(token) = &config.admin_token {
            router = router.merge(faults::admin_router(faults, token));
            openapi.merge(AdminDoc::openapi());
            let components = openapi.components.get_or_insert_with(Default::default);
            components.add_security_scheme("admin_token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        }
        openapi.info.title = format!("{name} service");
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let document = serde_json::to_value(&openapi)?;
        let router = router
            .route("/openapi.json", get(move || async move { Json(document) }))
            .fallback(crate::error::not_found_fallback)
            .method_not_allowed_fallback(crate::error::method_not_allowed_fallback)
            .layer(
                // Outermost first: request id → trace span → metrics → timeout → body limit.
                // Metrics sit outside the timeout so that timed-out requests are counted too.
                ServiceBuilder::new()
                    .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                    .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                    .layer(TraceLayer::new_for_http().make_span_with(request_span(name)).on_response(record_status))
                    .layer(middleware::from_fn_with_state(name, http_metrics::track_http))
                    .layer(HandleErrorLayer::new(|err: BoxError| async move { timeout_problem(&err) }))
                    .layer(tower::timeout::TimeoutLayer::new(config.request_timeout))
                    .layer(DefaultBodyLimit::max(config.body_limit_bytes)),
            );

        let address = SocketAddr::new(config.host, config.port);
        let listener =
            TcpListener::bind(address).await.map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        Ok(Self {
            listener,
            router,
            pool,
            name,
            shutdown_grace: config.shutdown_grace,
            limits: config.connections,
            stopping: CancellationToken::new(),
        })
    }

    /// Cancels `stopping` when the stop signal arrives, before in-flight requests are drained
    /// (for routes whose responses stream until it is cancelled).
    #[must_use]
    pub fn with_stopping(mut self, stopping: CancellationToken) -> Self {
        self.stopping = stopping;
        self
    }

    /// The port actually bound (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// Serves until SIGTERM/Ctrl-C, then drains in-flight requests for at most the grace period
    /// (each connection within the limits of the `serve` module).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let address = self.listener.local_addr()?;
        tracing::info!(service = self.name, %address, limits = ?self.limits, "listening");
        let watch = tokio::spawn(crate::db::watch(self.pool, crate::db::WATCH_INTERVAL));
        let stopping = self.stopping.clone();
        let stop = async move {
            shutdown_signal().await;
            stopping.cancel();
        };
        crate::serve::serve(self.listener, self.router, self.limits, self.name, stop, self.shutdown_grace).await;
        watch.abort();
        tracing::info!(service = self.name, "stopped");
        Ok(())
    }
}

/// The span every request is handled in: service, method, path and request id, named for the
/// route template (bounded, like the metrics' labels), and the order it is about. Its parent is
/// the caller's span when the request carries a W3C `traceparent`.
fn request_span<B>(service: &'static str) -> impl Fn(&Request<B>) -> tracing::Span + Clone {
    move |request: &Request<B>| {
        let request_id =
            request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or_default();
        let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
        let span = tracing::info_span!("request", service, method = %request.method(), uri = %request.uri(), request_id,
            order_id = order_id_in_path(route, request.uri().path()), otel.name = tracing::field::Empty, otel.kind = "server",
            http.response.status_code = tracing::field::Empty, otel.status_code = tracing::field::Empty);
        if crate::telemetry::enabled() {
            // Named for the exported trace only: no string is built for every request otherwise.
            span.record("otel.name", format!("{} {route}", request.method()));
            crate::telemetry::set_remote_parent(&span, request.headers());
        }
        span
    }
}

/// The `{order_id}` segment of a request's path, by its place in the route template. Routes
/// without one (`POST /orders`) record the order on the span themselves once it has an id.
fn order_id_in_path<'a>(route: &str, path: &'a str) -> Option<&'a str> {
    route.split('/').zip(path.split('/')).find_map(|(template, segment)| (template == "{order_id}").then_some(segment))
}

/// Puts the answer's status on the request span (a 5xx marks the span as an error).
fn record_status<B>(response: &axum::http::Response<B>, _latency: Duration, span: &tracing::Span) {
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

fn timeout_problem(err: &BoxError) -> Problem {
    if err.is::<tower::timeout::error::Elapsed>() {
        Problem::new(ProblemType::Timeout, Some("the server gave up on this request".to_owned()))
    } else {
        tracing::error!(error = %err, "middleware error");
        Problem::new(ProblemType::Internal, None)
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}

/// Liveness: answers as long as the process serves HTTP, saying which process it is (so a
/// launcher can tell its own child from another process that holds the port).
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "The process is alive", body = Health)))]
async fn healthz(State(service): State<&'static str>) -> Json<Health> {
    Json(Health { status: "ok".to_owned(), service: service.to_owned(), pid: std::process::id() })
}

/// Liveness answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// `ok`.
    status: String,
    /// The service's name.
    service: String,
    /// The process id of the server.
    pid: u32,
}

/// Readiness: the database answers (migrations ran before the listener opened) and every part
/// of the process works (a step's batch writer is not restarting after a panic).
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses(
        (status = 200, description = "Ready to serve", body = Status),
        (status = 503, description = "Database unreachable, or a part of the service restarting", body = Problem, content_type = "application/problem+json"),
    ))]
async fn readyz(State((pool, readiness)): State<(PgPool, Readiness)>) -> axum::response::Response {
    let mut not_ready = readiness.not_ready();
    if !crate::db::is_reachable(&pool, Duration::from_secs(2)).await {
        not_ready.insert(0, "database unreachable".to_owned());
    }
    if not_ready.is_empty() {
        Json(Status { status: "ready".to_owned() }).into_response()
    } else {
        Problem::new(ProblemType::NotReady, Some(not_ready.join("; "))).into_response()
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "Prometheus metrics", body = String, content_type = "text/plain")))]
async fn render_metrics(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
}

/// Probe answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Status {
    /// `ok` or `ready`.
    status: String,
}

#[derive(OpenApi)]
#[openapi(paths(healthz, readyz, render_metrics), components(schemas(Problem, Status, Health)))]
struct ProbesDoc;

#[derive(OpenApi)]
#[openapi(paths(faults::get_faults, faults::put_faults), components(schemas(faults::FaultConfig, faults::FaultScope)))]
struct AdminDoc;

/// Runs a process's whole life: telemetry, then `process` on a multi-threaded runtime, then the
/// last spans flushed. Returns the exit code.
///
/// Each binary's `main.rs` is a plain `fn main` calling its library's `main()`, which calls this.
/// An `async fn main` (`#[tokio::main]`) in `main.rs` makes the compiler generate the code of the
/// service's whole future a second time in the binary crate: measured on payment, a release rebuild
/// took 24 s with it and 15 s without, the binary itself 12 s and 0.5 s. Six binaries pay for it
/// in every cold build.
pub fn block_on_main(
    service: &'static str,
    process: impl std::future::Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    let telemetry = match crate::telemetry::init(service, &crate::config::Env::from_process()) {
        Ok(telemetry) => telemetry,
        Err(err) => return exit_code(Err(err)),
    };
    let result = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(process),
        Err(err) => Err(anyhow::Error::new(err).context("starting the tokio runtime")),
    };
    let code = exit_code(result);
    telemetry.shutdown();
    code
}

/// Logs a start-up failure and turns the outcome into the process exit code.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = ?err, "exiting on error");
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What a service's route builder gets at start-up.
#[derive(Debug)]
pub struct Boot {
    /// The service in the suite's table (a participant's step is served at its resource).
    pub service: &'static crate::suite::Service,
    /// The process environment (for service-specific settings).
    pub env: crate::config::Env,
    /// The common settings.
    pub config: ServiceConfig,
    /// The migrated pool of the service's schema.
    pub pool: PgPool,
    /// The live fault settings (`/admin/faults` changes them; a step's writer reads them).
    pub faults: faults::Faults,
    /// The parts `/readyz` reports on besides the database (each step's batch writer).
    pub readiness: Readiness,
}

/// A participant must serve `/{resource}/{order_id}`, where the orchestrator calls it (both
/// read the suite's table): a route that drifted from it would fail every saga, so it fails
/// the start instead.
fn serves_its_resource(service: &crate::suite::Service, openapi: &utoipa::openapi::OpenApi) -> anyhow::Result<()> {
    let Some(resource) = service.resource() else { return Ok(()) };
    let path = format!("/{resource}/{{order_id}}");
    if !openapi.paths.paths.contains_key(&path) {
        anyhow::bail!("{} serves no {path}, which the suite's table (saga_shared::suite) says it does", service.name);
    }
    Ok(())
}

/// A participant's whole process, what its `main` returns: [`block_on_main`] around `run`.
/// A participant supplies only what differs: its place in the suite's table, its migrations and
/// its routes (its step's, through [`crate::step::spec`], and any others).
pub fn participant_main(
    service: &'static crate::suite::Service,
    migrator: &'static sqlx::migrate::Migrator,
    routes: impl FnOnce(&Boot) -> anyhow::Result<ServiceSpec>,
) -> std::process::ExitCode {
    block_on_main(service.name, run(service, migrator, routes))
}

/// The whole life of a participant (telemetry is [`block_on_main`]'s): config → pool and migrations → routes → serve.
async fn run(
    service: &'static crate::suite::Service,
    migrator: &'static sqlx::migrate::Migrator,
    routes: impl FnOnce(&Boot) -> anyhow::Result<ServiceSpec>,
) -> anyhow::Result<()> {
    let env = crate::config::Env::from_process();
    let metrics = http_metrics::install_recorder()?;
    let config = ServiceConfig::from_env(&env, service)?;
    let pool = crate::db::pool(&config)?;
    crate::db::migrate(&pool, migrator, config.db_startup_timeout).await?;
    let faults = faults::Faults::new(config.faults.clone());
    let boot = Boot { service, env, config, pool, faults, readiness: Readiness::default() };
    let spec = routes(&boot)?;
    Application::build_with(&boot.config, spec, boot.pool, metrics, boot.faults, boot.readiness)
        .await?
        .run_until_stopped()
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{order_id_in_path, serves_its_resource};
    use crate::suite;
    use utoipa::openapi::{HttpMethod, OpenApiBuilder, PathsBuilder, path::PathItem};

    #[test]
    fn a_participant_must_serve_the_resource_of_the_suites_table() {
        let serving = |path: &str| {
            let paths = PathsBuilder::new()
                .path(path, PathItem::new(HttpMethod::Put, utoipa::openapi::path::Operation::default()));
            OpenApiBuilder::new().paths(paths).build()
        };
        assert!(serves_its_resource(&suite::PAYMENT, &serving("/payments/{order_id}")).is_ok());
        let err = serves_its_resource(&suite::PAYMENT, &serving("/charges/{order_id}")).unwrap_err();
        assert!(err.to_string().contains("payment serves no /payments/{order_id}"), "{err}");
        assert!(serves_its_resource(&suite::ORCHESTRATOR, &serving("/orders")).is_ok(), "no resource to serve");
    }

    #[test]
    fn the_order_id_is_read_from_its_place_in_the_route_template() {
        let id = "01a23bf0-3706-7304-91cd-89b7c8fedf76";
        assert_eq!(order_id_in_path("/reservations/{order_id}", &format!("/reservations/{id}")), Some(id));
        assert_eq!(order_id_in_path("/orders/{order_id}/retry", &format!("/orders/{id}/retry")), Some(id));
        assert_eq!(order_id_in_path("/orders", "/orders"), None);
        assert_eq!(order_id_in_path("unmatched", "/nowhere/at/all"), None);
    }
}
