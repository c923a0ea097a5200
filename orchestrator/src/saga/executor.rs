//! Drives sagas: the I/O around the state machine. Each turn applies one input to the machine,
//! writes what it says to write (before anything else), then makes the call it asks for and
//! feeds the outcome back. Every decision is the machine's ([`super::machine`]); this module
//! only calls, writes, sleeps and counts.

use std::{sync::Arc, time::Instant};

use chrono::Utc;
use saga_shared::telemetry;
use sqlx::PgPool;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument as _;

use super::{
    definition::{SagaDefinition, StepDefinition},
    group_commit::GroupCommit,
    log::{self, Lease},
    machine::{self, Clock, Command, Input, Persist, Transition},
    state::Saga,
    waiters::Waiters,
};
use crate::{clients::ParticipantClient, metric_definitions as m};

/// Runs sagas as tasks of this process.
#[derive(Debug)]
pub struct Executor {
    pool: PgPool,
    definition: SagaDefinition,
    client: ParticipantClient,
    instance: String,
    lease: std::time::Duration,
    tasks: TaskTracker,
    stopping: CancellationToken,
    waiters: Waiters,
    writer: GroupCommit,
}

/// Why a driver stops before its saga is terminal.
#[derive(Debug)]
enum Stop {
    /// Someone else wrote first (a claim, an operator): they drive it now.
    Fenced,
    /// The log could not be written: the lease expires and whoever resumes it reconciles.
    Database(sqlx::Error),
    /// This process is shutting down: the saga is released for another instance.
    ShuttingDown,
}

impl Executor {
    /// An executor writing to `pool` as `instance`.
    pub fn new(
        pool: PgPool,
        definition: SagaDefinition,
        client: ParticipantClient,
        instance: String,
        lease: std::time::Duration,
    ) -> Self {
        let writer = GroupCommit::start(pool.clone(), instance.clone(), lease);
        Self {
            pool,
            writer,
            definition,
            client,
            instance,
            lease,
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
            waiters: Waiters::default(),
        }
    }

    /// Requests waiting for sagas of this process to finish.
    pub fn waiters(&self) -> &Waiters {
        &self.waiters
    }

    /// This instance's name (owner of its leases, actor of its events).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The saga definition.
    pub fn definition(&self) -> &SagaDefinition {
        &self.definition
    }

    /// The lease this instance takes on the sagas it drives.
    pub fn lease(&self) -> Lease<'_> {
        Lease { owner: &self.instance, duration: self.lease }
    }

    /// Starts driving `saga` (owned by this instance at `saga.version`) in a task of its own,
    /// beginning with `input`: `Run` for a saga this instance wrote, `Resumed` for a claimed one.
    pub fn spawn(self: &Arc<Self>, saga: Saga, input: Input) {
        if self.stopping.is_cancelled() {
            return; // the lease expires and another instance resumes it
        }
        // One span per run of the saga, in the trace of the request that started it (stored with
        // the saga, so a run after a crash or by another instance joins the same trace). Not a
        // child of the current span in-process: a parent stays open until its children close,
        // and the request that started the saga must end (and be exported) when it answers.
        let span = tracing::info_span!(parent: None, "saga", order_id = %saga.order_id, saga_id = %saga.order_id);
        telemetry::continue_trace(&span, saga.trace_context.as_deref());
        let executor = Arc::clone(self);
        let order_id = saga.order_id;
        self.waiters.driving(order_id);
        self.tasks.spawn(
            async move {
                executor.drive(saga, input).await;
                executor.waiters.stopped_driving(order_id);
            }
            .instrument(span),
        );
    }

    /// Stops taking moves: each saga finishes its current call and writes its outcome, then is
    /// released. Waits at most `grace` for that.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.stopping.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!("sagas still mid-call at shutdown; their leases will expire");
        }
    }

    /// A token cancelled when the executor stops (for the background loops).
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// Reports a saga's terminal transition (written by whoever wrote it: a driver or a route).
    pub fn finished(&self, saga: &Saga, transition: &Transition) {
        let Some(status) = transition.finished else { return };
        self.waiters.finished(saga.order_id, || saga.view());
        let elapsed = (Utc::now() - saga.created_at).to_std().unwrap_or_default();
        metrics::counter!(m::FINISHED_TOTAL, "outcome" => status.as_str()).increment(1);
        metrics::histogram!(m::DURATION_SECONDS, "outcome" => status.as_str()).record(elapsed.as_secs_f64());
        if status == saga_shared::api::SagaStatus::Failed {
            metrics::counter!(m::DEAD_LETTERED_TOTAL).increment(1);
            tracing::error!(reason = ?saga.failure_summary(), "saga dead-lettered: an operator must act");
        } else {
            tracing::info!(status = status.as_str(), ?elapsed, "saga finished");
        }
    }

    async fn drive(&self, mut saga: Saga, mut input: Input) {
        let stop = loop {
            let transition = machine::apply(&self.definition, &mut saga, input, Clock::system());
            if let Err(stop) = self.write(&mut saga, &transition).await {
                break stop;
            }
            self.finished(&saga, &transition);
            input = match self.execute(&saga, transition.command).await {
                Ok(Some(next)) => next,
                Ok(None) => return,
                Err(stop) => break stop,
            };
        };
        match stop {
            Stop::Fenced => {
                metrics::counter!(m::FENCED_TOTAL).increment(1);
                tracing::info!("fenced out: another instance or an operator moved this saga");
            }
            Stop::Database(err) => tracing::warn!(%err, "cannot write the saga log; leaving the saga to recovery"),
            Stop::ShuttingDown => {
                if let Err(err) = log::release(&self.pool, &saga).await {
                    tracing::warn!(%err, "could not release the saga at shutdown");
                }
            }
        }
    }

    /// Writes what the transition says, before its command runs.
    async fn write(&self, saga: &mut Saga, transition: &Transition) -> Result<(), Stop> {
        let span = telemetry::traced(|| {
            tracing::info_span!("sql", otel.name = "write saga log", db.system.name = "postgresql",
                db.collection.name = "sagas", order_id = %saga.order_id)
        });
        async {
            match transition.persist {
                Persist::Nothing => Ok(()),
                Persist::Events => log::append(&self.pool, saga.order_id, &transition.events, &self.instance)
                    .await
                    .map_err(Stop::Database),
                Persist::Saga { progressed } => match self.writer.save(saga, progressed, &transition.events).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(Stop::Fenced),
                    Err(err) => Err(Stop::Database(err)),
                },
            }
        }
        .instrument(span)
        .await
    }

    /// Carries out one command; `Ok(None)` when there is nothing more to do.
    async fn execute(&self, saga: &Saga, command: Command) -> Result<Option<Input>, Stop> {
        if self.stopping.is_cancelled() && !matches!(command, Command::Stop) {
            // Between calls the log holds everything: release the saga instead of going on.
            return Err(Stop::ShuttingDown);
        }
        let order_id = saga.order_id;
        Ok(Some(match command {
            Command::Act { step, attempt, body } => {
                let step = self.step(step);
                tracing::debug!(step = step.name, attempt, "action");
                let started = Instant::now();
                let outcome = self
                    .client
                    .act(step, order_id, &body)
                    .instrument(call_span("action", step, attempt, order_id))
                    .await;
                record_call(step, "action", outcome.event_outcome().as_str(), started);
                Input::Acted(outcome)
            }
            Command::Inspect { step } => {
                let step = self.step(step);
                let inspection =
                    self.client.inspect(step, order_id).instrument(call_span("inspection", step, 0, order_id)).await;
                metrics::counter!(m::RECONCILIATIONS_TOTAL, "step" => step.name,
                    "result" => inspection.event_outcome().as_str())
                .increment(1);
                Input::Inspected(inspection)
            }
            Command::Compensate { step, attempt } => {
                let step = self.step(step);
                tracing::debug!(step = step.name, attempt, "compensation");
                let started = Instant::now();
                let outcome = self
                    .client
                    .compensate(step, order_id)
                    .instrument(call_span("compensation", step, attempt, order_id))
                    .await;
                record_call(step, "compensation", outcome.event_outcome().as_str(), started);
                Input::Compensated(outcome)
            }
            Command::Wait { until } => {
                let wait = (until - Utc::now()).to_std().unwrap_or_default();
                tokio::select! {
                    () = tokio::time::sleep(wait) => Input::Run,
                    () = self.stopping.cancelled() => return Err(Stop::ShuttingDown),
                }
            }
            Command::Stop => return Ok(None),
        }))
    }

    fn step(&self, index: usize) -> &StepDefinition {
        // The machine only names steps of this definition.
        &self.definition.steps[index]
    }
}

/// The client span of one participant call (only while traces are exported); the participant's
/// request span becomes its child through the `traceparent` header.
fn call_span(kind: &'static str, step: &StepDefinition, attempt: u32, order_id: uuid::Uuid) -> tracing::Span {
    telemetry::traced(|| {
        tracing::info_span!("call", otel.name = format!("{kind} {}", step.name), otel.kind = "client",
            step = step.name, kind, attempt, order_id = %order_id)
    })
}

fn record_call(step: &StepDefinition, kind: &'static str, result: &'static str, started: Instant) {
    metrics::counter!(m::STEP_ATTEMPTS_TOTAL, "step" => step.name, "kind" => kind, "result" => result).increment(1);
    metrics::histogram!(m::STEP_DURATION_SECONDS, "step" => step.name, "kind" => kind, "result" => result)
        .record(started.elapsed().as_secs_f64());
}
