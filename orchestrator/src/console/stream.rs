//! `GET /console/stream`: what the console shows live, pushed as server-sent events, so an open
//! page makes one request that stays open instead of polling.
//!
//! Events: `settings` once (links and limits), `overview` every second (the figures and the
//! services), `history` at once and every 10 s (the chart), and `problem` when a read failed
//! (the page keeps the last figures, dimmed, and shows why). The stream ends when the
//! orchestrator stops, and the browser's `EventSource` reconnects by itself, to this replica once
//! it is back or to another behind a load balancer.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use saga_shared::{AppError, AppQuery};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    ConsoleState,
    history::BUCKET_SECONDS,
    overview::{self, Overview, OverviewQuery},
    services::{self, ServicesView},
};

/// How often the figures are pushed.
const EVERY: Duration = Duration::from_secs(1);
/// How often the chart is pushed, in pushes of the figures: once per bucket.
const HISTORY_EVERY: u64 = BUCKET_SECONDS.unsigned_abs();
/// How long the browser waits before reconnecting a stream that ended.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// The `settings` event.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Settings {
    /// The instance that serves this stream (`ORCHESTRATOR_ID`).
    instance: String,
    /// `TRACE_UI_URL`: a saga's trace is at `{trace_ui_url}/trace/{trace_id}` (`null`: no link).
    trace_ui_url: Option<String>,
    /// `GRAFANA_URL`: the dashboard is at `{grafana_url}/d/saga-suite` (`null`: no link).
    grafana_url: Option<String>,
    /// `STUCK_AFTER_MS`.
    stuck_after_ms: u64,
    /// The saga's steps, in order (what the step filter offers).
    steps: Vec<&'static str>,
}

/// The `overview` event.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Live {
    overview: Overview,
    services: ServicesView,
}

/// The `problem` event: a read that failed, and why.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StreamProblem {
    /// `overview` or `history`: what could not be read.
    area: &'static str,
    /// Why.
    detail: String,
}

/// The console's live feed as server-sent events (`text/event-stream`): `settings` once,
/// `overview` (figures and services) every second, `history` (the chart's buckets) at once and
/// every 10 s, `problem` when a read failed. Ends when the orchestrator stops.
#[utoipa::path(get, path = "/console/stream", tag = "console", params(OverviewQuery),
    responses(
        (status = 200, description = "Server-sent events: settings, overview (Live), history, problem", content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid query", body = saga_shared::Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn get_stream(
    State(console): State<ConsoleState>,
    AppQuery(query): AppQuery<OverviewQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let window_s = overview::window(query.window_s)?;
    let settings = Settings {
        instance: console.instance.clone(),
        trace_ui_url: console.links.trace_ui.clone(),
        grafana_url: console.links.grafana.clone(),
        stuck_after_ms: u64::try_from(console.stuck_after.as_millis()).unwrap_or(u64::MAX),
        steps: console.step_names.to_vec(),
    };
    let first = json_event("settings", &settings).retry(RECONNECT_AFTER);
    let ticks = futures::stream::unfold((console, 0_u64), move |(console, tick)| async move {
        if tick > 0 {
            tokio::select! {
                () = console.stopping.cancelled() => return None,
                () = tokio::time::sleep(EVERY) => {}
            }
        }
        let events = next_events(&console, window_s, tick).await;
        Some((futures::stream::iter(events.into_iter().map(Ok)), (console, tick + 1)))
    });
    let stream = futures::stream::StreamExt::flatten(ticks);
    let stream = futures::stream::StreamExt::chain(futures::stream::once(async { Ok(first) }), stream);
    // A comment every 15 s while nothing else is sent keeps proxies from closing the stream.
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// What one tick pushes.
async fn next_events(console: &ConsoleState, window_s: u32, tick: u64) -> Vec<Event> {
    let mut events = Vec::with_capacity(2);
    let (figures, services) = tokio::join!(overview::figures(console, window_s), services::view(console));
    events.push(match figures {
        Ok(overview) => json_event("overview", &Live { overview, services }),
        Err(err) => problem("overview", &err),
    });
    if tick.is_multiple_of(HISTORY_EVERY) {
        events.push(match console.history.read(&console.pool).await {
            Ok(history) => json_event("history", &history),
            Err(err) => problem("history", &err),
        });
    }
    events
}

fn problem(area: &'static str, err: &sqlx::Error) -> Event {
    tracing::warn!(area, error = %err, "the console's stream could not read the saga log");
    json_event("problem", &StreamProblem { area, detail: format!("the saga log cannot be read: {err}") })
}

fn json_event<T: Serialize>(name: &str, data: &T) -> Event {
    // Our own types always serialize; if one did not, the page hears of it rather than nothing.
    Event::default().event(name).json_data(data).unwrap_or_else(|err| {
        let detail = format!("cannot encode the {name} event: {err}");
        Event::default().event("problem").data(serde_json::json!({ "area": name, "detail": detail }).to_string())
    })
}
