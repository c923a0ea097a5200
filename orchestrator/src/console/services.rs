//! `GET /console/services`: is each service up? The orchestrator asks every participant's
//! `/readyz` (it knows their URLs from its configuration) with a short timeout, and answers for
//! itself with its own readiness (its database).

use std::time::{Duration, Instant};

use axum::extract::State;
use chrono::{DateTime, Utc};
use saga_shared::{AppJson, Problem};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Mutex;
use utoipa::ToSchema;

use super::ConsoleState;
use saga_engine::config::ParticipantUrls;

/// A probe that gets no answer this quickly counts as down: a service too slow to say it is
/// ready is not serving anyone well either, and the console must not wait for it.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one round of probes is reused: however many consoles poll, each participant gets at
/// most about one probe per second from this replica.
const REUSE_FOR: Duration = Duration::from_secs(1);

/// Who is up, as this replica sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct ServicesView {
    /// The orchestrator instance that answered (`ORCHESTRATOR_ID`).
    instance: String,
    /// The orchestrator itself, then the participants in saga order.
    services: Vec<ServiceHealth>,
}

/// One service's readiness.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct ServiceHealth {
    /// `orchestrator`, `inventory`, `payment`, `shipping` or `notification`.
    name: String,
    /// Its base URL as the orchestrator reaches it (`null` for the orchestrator itself).
    url: Option<String>,
    /// Whether it answered `/readyz` with 200 within the probe timeout.
    up: bool,
    /// Why it is down: its answer's status, a timeout, a refused connection…
    detail: Option<String>,
    /// How long the probe took, in milliseconds.
    latency_ms: u64,
    /// Since when this orchestrator's circuit for the participant has been open (it kept
    /// failing; its calls wait until a probe finds it ready). `null` when closed, and for the
    /// orchestrator itself.
    circuit_open_since: Option<DateTime<Utc>>,
    /// Calls of this orchestrator's sagas waiting for the participant's circuit to close.
    waiting: usize,
}

/// Probes the participants, sharing each round between concurrent requests.
#[derive(Debug)]
pub struct Probes {
    http: reqwest::Client,
    participants: Vec<(&'static str, String)>,
    last: Mutex<Option<(Instant, Vec<ServiceHealth>)>>,
}

impl Probes {
    /// Probes for the participants at `urls`.
    pub fn new(urls: &ParticipantUrls) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().connect_timeout(PROBE_TIMEOUT).timeout(PROBE_TIMEOUT).build()?;
        let participants = urls.0.iter().map(|(service, url)| (service.name, url.clone())).collect();
        Ok(Self { http, participants, last: Mutex::new(None) })
    }

    /// The participants' readiness: the last round if it is recent, else a new one. The lock is
    /// held while probing, so concurrent requests wait for that round (at most the probe
    /// timeout) instead of starting their own.
    async fn participants(&self) -> Vec<ServiceHealth> {
        let mut last = self.last.lock().await;
        if let Some((at, round)) = last.as_ref()
            && at.elapsed() < REUSE_FOR
        {
            return round.clone();
        }
        let round = self.round().await;
        *last = Some((Instant::now(), round.clone()));
        round
    }

    /// Probes every participant at once, so a round takes one probe's time at most.
    async fn round(&self) -> Vec<ServiceHealth> {
        futures::future::join_all(self.participants.iter().map(|(name, url)| self.probe(name, url))).await
    }

    async fn probe(&self, name: &'static str, base_url: &str) -> ServiceHealth {
        let started = Instant::now();
        let outcome = self.http.get(format!("{base_url}/readyz")).send().await;
        let detail = match outcome {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("/readyz answered {}", response.status())),
            Err(err) if err.is_timeout() => Some(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
            Err(err) if err.is_connect() => Some("cannot connect".to_owned()),
            Err(_) => Some("request failed".to_owned()),
        };
        ServiceHealth {
            name: name.to_owned(),
            url: Some(base_url.to_owned()),
            up: detail.is_none(),
            detail,
            latency_ms: elapsed_ms(started),
            circuit_open_since: None,
            waiting: 0,
        }
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The orchestrator's own readiness, as its `/readyz` sees it: its database answers.
async fn orchestrator(pool: &PgPool) -> ServiceHealth {
    let started = Instant::now();
    let up = saga_shared::db::is_reachable(pool, PROBE_TIMEOUT).await;
    ServiceHealth {
        name: "orchestrator".to_owned(),
        url: None,
        up,
        detail: (!up).then(|| "its database does not answer".to_owned()),
        latency_ms: elapsed_ms(started),
        circuit_open_since: None,
        waiting: 0,
    }
}

/// Each service up or down: the participants' `/readyz` probed by this orchestrator (500 ms
/// timeout, one round a second at most), with this orchestrator's circuit for each (open since
/// when, how many calls wait for it), and the orchestrator's own database. Answers even when the
/// database is down.
#[utoipa::path(get, path = "/console/services", tag = "console",
    responses(
        (status = 200, description = "Each service's readiness", body = ServicesView),
        (status = 503, description = "Request timed out", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn get_services(State(console): State<ConsoleState>) -> AppJson<ServicesView> {
    AppJson(view(&console).await)
}

/// Each service up or down, as this replica sees it.
pub(super) async fn view(console: &ConsoleState) -> ServicesView {
    let (own, participants) = tokio::join!(orchestrator(&console.pool), console.probes.participants());
    let circuits = console.circuits.views();
    let services = std::iter::once(own)
        .chain(participants.into_iter().map(|mut health| {
            if let Some(circuit) = circuits.iter().find(|c| c.participant == health.name) {
                health.circuit_open_since = circuit.open_since;
                health.waiting = circuit.waiting;
            }
            health
        }))
        .collect();
    ServicesView { instance: console.instance.clone(), services }
}
