//! The load driver behind `sagactl load` and `sagactl bench`: places orders through the
//! orchestrator (or calls the participants directly, for the baseline) and measures each from its
//! `POST` to its saga's end.
//!
//! One loop serves both shapes of load. A semaphore bounds the orders in flight: in a closed loop
//! (`--concurrency N`) the next order goes out as soon as one of N ends; in an open loop
//! (`--rate R`) orders go out on a fixed schedule whatever the answers, and the semaphore is the
//! bound on outstanding orders that keeps an overloaded suite from exhausting the client.

pub mod direct;
pub mod mix;
pub mod outcome;
pub mod progress;
pub mod report;
mod saga;
mod tally;

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use indicatif::ProgressBar;
use serde::Serialize;
use tokio::{sync::Semaphore, task::JoinSet};

use saga_shared::suite;

pub use mix::{Intent, Keys, Mix};
pub use outcome::Outcome;
pub use report::LoadReport;
use saga_suite::state::SuiteState;
use {mix::PlannedOrder, outcome::OrderResult, tally::Tally};

/// Where the suite under load listens.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Orchestrator base URL.
    pub orchestrator: String,
    /// Participants' base URLs: inventory, payment, shipping, notification.
    pub participants: [String; 4],
}

impl Targets {
    /// The services of a suite started by `sagactl up`.
    pub fn from_state(state: &SuiteState) -> anyhow::Result<Self> {
        let url = |name: &str| {
            state.services.get(name).map(|svc| svc.url.clone()).with_context(|| format!("the suite has no {name}"))
        };
        let [inventory, payment, shipping, notification] = suite::PARTICIPANTS.map(|p| url(p.name));
        Ok(Self {
            orchestrator: url(suite::ORCHESTRATOR.name)?,
            participants: [inventory?, payment?, shipping?, notification?],
        })
    }
}

/// What each order goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A saga: `POST /orders` and a long-poll until it ends.
    Saga,
    /// The four participants' `PUT`s called by the client (no orchestrator).
    Direct,
}

/// When orders go out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Pacing {
    /// `concurrency` clients, each placing its next order when the last one ended.
    Closed {
        /// Orders in flight.
        concurrency: usize,
    },
    /// `rate` orders per second on a fixed schedule, at most `max_outstanding` in flight.
    Open {
        /// Orders per second.
        rate: f64,
        /// Bound on orders in flight; past it the schedule slips.
        max_outstanding: usize,
    },
}

impl Pacing {
    fn in_flight(self) -> usize {
        match self {
            Self::Closed { concurrency } => concurrency,
            Self::Open { max_outstanding, .. } => max_outstanding,
        }
    }
}

/// When the run stops placing orders (then it waits for those in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many orders.
    Orders(u64),
    /// After this long.
    Duration(Duration),
}

/// A load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Saga or direct chain.
    pub kind: Kind,
    /// Closed or open loop.
    pub pacing: Pacing,
    /// How long it places orders.
    pub stop: Stop,
    /// Orders placed this early are left out of latency and throughput (connections, caches).
    pub warmup: Duration,
    /// What the orders buy and how many fail.
    pub mix: Mix,
    /// How long after its `POST` a saga may take to end before it counts as not finished.
    pub saga_timeout: Duration,
    /// Timeout of each `POST` (and each direct `PUT`).
    pub request_timeout: Duration,
    /// How often a `POST` that failed with a transport error or 5xx is repeated (with an
    /// `Idempotency-Key`, so a repeat never places a second order).
    pub post_retries: u32,
}

/// Upper bound of `--concurrency` / `--max-outstanding`: far past what one machine serves, low
/// enough not to exhaust file descriptors.
pub const MAX_IN_FLIGHT: usize = 10_000;

impl LoadConfig {
    /// Refuses a configuration that cannot run or cannot end.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.mix.validate()?;
        let in_flight = self.pacing.in_flight();
        ensure!((1..=MAX_IN_FLIGHT).contains(&in_flight), "orders in flight must be 1 to {MAX_IN_FLIGHT}");
        if let Pacing::Open { rate, .. } = self.pacing {
            ensure!(rate.is_finite() && rate > 0.0, "the rate must be a positive number of orders per second");
        }
        match self.stop {
            Stop::Orders(n) => ensure!(n > 0, "the number of orders must be at least 1"),
            Stop::Duration(d) => ensure!(!d.is_zero(), "the duration must be positive"),
        }
        ensure!(!self.saga_timeout.is_zero(), "the saga timeout must be positive");
        ensure!(!self.request_timeout.is_zero(), "the request timeout must be positive");
        Ok(())
    }
}

/// Open loop: an order sent this much (or one interval, if longer) after its scheduled time
/// counts as late.
const LATE_TOLERANCE: Duration = Duration::from_millis(10);

/// What every order task shares.
#[derive(Debug)]
struct Worker {
    http: reqwest::Client,
    targets: Targets,
    kind: Kind,
    saga_timeout: Duration,
    request_timeout: Duration,
    post_retries: u32,
    /// Makes this run's idempotency keys its own.
    run_id: String,
}

impl Worker {
    async fn run(&self, order: &PlannedOrder) -> OrderResult {
        match self.kind {
            Kind::Saga => saga::place_and_wait(self, order).await,
            Kind::Direct => direct::run_chain(self, order).await,
        }
    }
}

/// Runs the load against `targets` and reports; `progress` (possibly hidden) follows the run.
pub async fn run(targets: &Targets, config: &LoadConfig, progress: &ProgressBar) -> anyhow::Result<LoadReport> {
    config.validate()?;
    let in_flight = config.pacing.in_flight();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        // Each request sets its own timeout; this bounds any that would not.
        .timeout(config.request_timeout)
        .pool_max_idle_per_host(in_flight * 2)
        .tcp_nodelay(true)
        .build()
        .context("cannot build the HTTP client")?;
    let worker = Arc::new(Worker {
        http,
        targets: targets.clone(),
        kind: config.kind,
        saga_timeout: config.saga_timeout,
        request_timeout: config.request_timeout,
        post_retries: config.post_retries,
        run_id: uuid::Uuid::new_v4().simple().to_string(),
    });
    let permits = Arc::new(Semaphore::new(in_flight));
    let started = Instant::now();
    let stop_at = match config.stop {
        Stop::Duration(duration) => Some(started + duration),
        Stop::Orders(_) => None,
    };
    // With a warm-up (bench), throughput is measured over the steady window up to the end of
    // placing; without one, over everything up to the last saga's end, since a run that
    // overloads the suite ends most of its sagas after it stopped placing them.
    let measure_until = stop_at.filter(|_| !config.warmup.is_zero());
    let mut run = Running::new(Tally::new(started, config.warmup, measure_until)?, progress, config.stop, started);
    let mut planner = mix::Planner::new(&config.mix);
    let mut index = 0u64;
    loop {
        if matches!(config.stop, Stop::Orders(n) if index >= n) {
            break;
        }
        // Open loop: the schedule, not the answers, says when the next order goes out; a loop
        // that fell behind catches up at once rather than thinning the load.
        let due = match config.pacing {
            Pacing::Open { rate, .. } => Some((started + Duration::from_secs_f64(index as f64 / rate), rate)),
            Pacing::Closed { .. } => None,
        };
        if let Some((due, _)) = due {
            if stop_at.is_some_and(|stop| due >= stop) {
                break;
            }
            run.reap_until(tokio::time::sleep_until(due.into())).await?;
        }
        let permit =
            run.reap_until(Arc::clone(&permits).acquire_owned()).await?.context("the in-flight bound closed")?;
        if stop_at.is_some_and(|stop| Instant::now() >= stop) {
            break;
        }
        if let Some((due, rate)) = due {
            let tolerance = Duration::from_secs_f64(1.0 / rate).max(LATE_TOLERANCE);
            run.tally.late += u64::from(Instant::now().saturating_duration_since(due) > tolerance);
        }
        let order = planner.plan(index);
        let worker = Arc::clone(&worker);
        run.tasks.spawn(async move {
            let _permit = permit;
            worker.run(&order).await
        });
        index += 1;
        run.placed = index;
        run.draw(false);
    }
    while let Some(joined) = run.tasks.join_next().await {
        run.tally.add(joined.context("an order task panicked")?)?;
        run.draw(false);
    }
    run.draw(true);
    Ok(run.tally.report(config))
}

/// The orders in flight, the totals of those done, and the progress bar.
struct Running<'a> {
    tasks: JoinSet<OrderResult>,
    tally: Tally,
    progress: &'a ProgressBar,
    stop: Stop,
    started: Instant,
    placed: u64,
    last_draw: Option<Instant>,
}

impl<'a> Running<'a> {
    fn new(tally: Tally, progress: &'a ProgressBar, stop: Stop, started: Instant) -> Self {
        Self { tasks: JoinSet::new(), tally, progress, stop, started, placed: 0, last_draw: None }
    }

    /// Waits for `future`, counting the orders that end meanwhile.
    async fn reap_until<F: Future>(&mut self, future: F) -> anyhow::Result<F::Output> {
        tokio::pin!(future);
        loop {
            tokio::select! {
                biased;
                output = &mut future => return Ok(output),
                // Disabled while no task runs (`join_next` is then `None`).
                Some(joined) = self.tasks.join_next() => {
                    self.tally.add(joined.context("an order task panicked")?)?;
                    self.draw(false);
                }
            }
        }
    }

    /// Updates the bar, at most ten times a second unless `force`.
    fn draw(&mut self, force: bool) {
        let now = Instant::now();
        if !force && self.last_draw.is_some_and(|last| now.duration_since(last) < Duration::from_millis(100)) {
            return;
        }
        self.last_draw = Some(now);
        let done = self.tally.done();
        match self.stop {
            Stop::Orders(_) => self.progress.set_position(done),
            Stop::Duration(d) => self.progress.set_position(now.duration_since(self.started).min(d).as_secs()),
        }
        let placed = self.placed;
        self.progress.set_message(format!("placed {placed}, in flight {}, ended {done}", placed.saturating_sub(done)));
    }
}
