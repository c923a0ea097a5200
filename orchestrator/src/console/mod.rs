//! The saga console: a page at `GET /console` (plain HTML, CSS and JS embedded in the binary,
//! no build step) for watching the sagas and acting on them. Besides the order API and batch
//! operations it reads `/console/stream` (server-sent events: the figures, the services and the
//! chart, pushed) and `/console/counts` (sagas per status for its filter);
//! `/console/overview` and `/console/services` answer the stream's figures on request.
//!
//! Everything it shows is read from the database or probed, so every replica serves the same
//! console, except each participant's circuit, which is this replica's own.

mod counts;
mod history;
mod overview;
mod services;
mod stream;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use saga_shared::{Problem, api::SagaStatus};
use sqlx::PgPool;
use utoipa::OpenApi;

use saga_engine::circuits::Circuits;
use tokio_util::sync::CancellationToken;

pub use history::HistoryCache;
pub use services::Probes;

/// What the console's endpoints share.
#[derive(Debug, Clone)]
pub struct ConsoleState {
    /// The saga log.
    pub pool: PgPool,
    /// The saga's step names, in order (a saga's step index names one).
    pub step_names: Arc<[&'static str]>,
    /// `STUCK_AFTER_MS`: in flight without progress this long counts as stuck.
    pub stuck_after: Duration,
    /// Probes the participants' readiness.
    pub probes: Arc<Probes>,
    /// This instance's name (`ORCHESTRATOR_ID`), shown as the one that served the page.
    pub instance: String,
    /// This instance's participant circuits.
    pub circuits: Arc<Circuits>,
    /// The chart's settled buckets.
    pub history: Arc<HistoryCache>,
    /// Where the page links to.
    pub links: Links,
    /// Cancelled when the orchestrator stops: the event streams end.
    pub stopping: CancellationToken,
}

/// Other tools the page links to.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// `TRACE_UI_URL` (Jaeger or another UI serving `/trace/{trace_id}`).
    pub trace_ui: Option<String>,
    /// `GRAFANA_URL`.
    pub grafana: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    paths(overview::get_overview, services::get_services, counts::get_counts, stream::get_stream),
    components(schemas(
        overview::Overview, overview::Rates, overview::InFlightGroup, services::ServicesView,
        services::ServiceHealth, SagaStatus, Problem, counts::Counts, stream::Settings, stream::Live,
        stream::StreamProblem, history::History, history::Bucket
    )),
    tags((name = "console", description = "What the saga console (GET /console) reads"))
)]
struct ConsoleDoc;

/// The page and its assets, embedded in the binary: path, media type, content.
const ASSETS: [(&str, &str, &str); 7] = [
    ("/console", "text/html; charset=utf-8", include_str!("index.html")),
    ("/console/console.css", "text/css; charset=utf-8", include_str!("console.css")),
    ("/console/console.js", "text/javascript; charset=utf-8", include_str!("console.js")),
    ("/console/api.js", "text/javascript; charset=utf-8", include_str!("api.js")),
    ("/console/format.js", "text/javascript; charset=utf-8", include_str!("format.js")),
    ("/console/chart.js", "text/javascript; charset=utf-8", include_str!("chart.js")),
    ("/console/bulk.js", "text/javascript; charset=utf-8", include_str!("bulk.js")),
];

/// The console's routes: the page and its assets (left out of the OpenAPI document: they are
/// not an API) and the JSON endpoints.
pub fn router(state: ConsoleState) -> Router {
    let mut router = Router::new()
        // Whoever opens the orchestrator's address in a browser wants the console.
        .route("/", get(|| async { axum::response::Redirect::to("/console") }))
        .route("/console/overview", get(overview::get_overview))
        .route("/console/services", get(services::get_services))
        .route("/console/counts", get(counts::get_counts))
        .route("/console/stream", get(stream::get_stream));
    for (path, content_type, body) in ASSETS {
        router = router.route(path, get(move || async move { asset(content_type, body) }));
    }
    router.with_state(state)
}

/// The OpenAPI document of the console's JSON endpoints.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ConsoleDoc::openapi()
}

/// The page only loads its own script and stylesheet and only talks to this origin: the data it
/// shows (order ids, errors, operator reasons) can never become markup or script, even if the
/// page had a bug that put it there.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// An embedded file, with headers that keep the page to itself.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Revalidated on every load, so a new binary's page is never mixed with an old script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
