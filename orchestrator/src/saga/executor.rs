//! Drives sagas: one move at a time (an attempt, a reconciliation, a compensation), each move's
//! outcome written to the log before the next move is decided.
//!
//! A move that crashes half-way is simply repeated by whoever resumes the saga: participants are
//! idempotent, so repeating the current step's call is always safe.

use std::{sync::Arc, time::Instant};

use chrono::Utc;
use saga_shared::api::{SagaStatus, StepStatus};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    definition::{SagaDefinition, StepDefinition, StepKind},
    log::{self, Event, Lease},
    state::Saga,
    waiters::Waiters,
};
use crate::{
    clients::{CallOutcome, Inspection, ParticipantClient},
    metric_definitions as m,
};

/// Appended to a dead-lettered saga's reason (and removed again when an operator retries it).
pub const BUDGET_NOTE: &str = "; compensation budget exhausted at ";

/// Why a saga stopped being driven here.
#[derive(Debug)]
enum Stop {
    /// Someone else wrote first: they drive it now.
    Fenced,
    /// The log could not be written: leave it; the lease expires and the move is repeated.
    Database(sqlx::Error),
}

impl From<sqlx::Error> for Stop {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(err)
    }
}

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
        Self {
            pool,
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

    /// Starts driving `saga` (owned by this instance at `saga.version`) in a task of its own.
    pub fn spawn(self: &Arc<Self>, saga: Saga) {
        if self.stopping.is_cancelled() {
            return; // the lease expires and another instance resumes it
        }
        let executor = Arc::clone(self);
        self.tasks.spawn(async move { executor.drive(saga).await });
    }

    /// Stops taking moves: each saga finishes its current move, then is released.
    /// Waits at most `grace` for that.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.stopping.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!("sagas still mid-move at shutdown; their leases will expire");
        }
    }

    /// A token cancelled when the executor stops (for the background loops).
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    #[tracing::instrument(skip_all, fields(order_id = %saga.order_id, saga_id = %saga.order_id))]
    async fn drive(&self, mut saga: Saga) {
        while !saga.status.is_terminal() {
            let wait = (saga.next_run_at - Utc::now()).to_std().unwrap_or_default();
            if !wait.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = self.stopping.cancelled() => {}
                }
            }
            if self.stopping.is_cancelled() {
                if let Err(err) = log::release(&self.pool, &saga).await {
                    tracing::warn!(%err, "could not release the saga at shutdown");
                }
                return;
            }
            let moved = match saga.status {
                SagaStatus::Pending | SagaStatus::Running => self.forward(&mut saga).await,
                SagaStatus::Compensating => self.compensate(&mut saga).await,
                SagaStatus::Completed | SagaStatus::Compensated | SagaStatus::Failed => return,
            };
            match moved {
                Ok(()) => {}
                Err(Stop::Fenced) => {
                    metrics::counter!(m::FENCED_TOTAL).increment(1);
                    tracing::info!("fenced out: another instance or an operator moved this saga");
                    return;
                }
                Err(Stop::Database(err)) => {
                    tracing::warn!(%err, "cannot write the saga log; leaving the saga to recovery");
                    return;
                }
            }
        }
    }

    fn event(
        &self,
        kind: &'static str,
        step: Option<&str>,
        attempt: Option<u32>,
        outcome: &str,
        detail: Option<String>,
    ) -> Event {
        Event {
            kind,
            step: step.map(str::to_owned),
            attempt: attempt.and_then(|a| i32::try_from(a).ok()),
            outcome: outcome.to_owned(),
            detail,
            actor: self.instance.clone(),
        }
    }

    async fn save(&self, saga: &mut Saga, progressed: bool, events: &[Event]) -> Result<(), Stop> {
        if log::save(&self.pool, saga, self.lease(), progressed, events).await? {
            Ok(())
        } else {
            Err(Stop::Fenced)
        }
    }

    /// One forward move of the current step: reconcile an unknown outcome, else attempt.
    async fn forward(&self, saga: &mut Saga) -> Result<(), Stop> {
        let index = saga.step_index;
        let Some(step) = self.definition.steps.get(index) else {
            return self.finish(saga, SagaStatus::Completed, Vec::new()).await;
        };
        let now = Utc::now();
        if saga.status == SagaStatus::Pending {
            saga.status = SagaStatus::Running;
        }
        let mut events = Vec::new();
        if now > saga.deadline_at && step.kind == StepKind::Compensatable {
            return self.begin_compensation(saga, "saga deadline exceeded".to_owned(), events).await;
        }

        if saga.steps[index].status == StepStatus::Unknown {
            match self.client.inspect(step, saga.order_id).await {
                Inspection::Happened(record) => {
                    count_reconciliation(step, "happened");
                    events.push(self.event("reconcile", Some(step.name), None, "happened", None));
                    return self.step_succeeded(saga, record, events).await;
                }
                Inspection::Compensated => {
                    count_reconciliation(step, "compensated");
                    events.push(self.event("reconcile", Some(step.name), None, "compensated", None));
                    let reason = format!("{} was compensated outside this saga", step.name);
                    return self.begin_compensation(saga, reason, events).await;
                }
                Inspection::Absent => {
                    count_reconciliation(step, "absent");
                    events.push(self.event("reconcile", Some(step.name), None, "not_found", None));
                    saga.steps[index].status = StepStatus::Retrying;
                }
                Inspection::Unreachable(detail) => {
                    count_reconciliation(step, "unreachable");
                    events.push(self.event("reconcile", Some(step.name), None, "unreachable", Some(detail)));
                }
            }
        }

        let attempts = saga.steps[index].attempts;
        if !step.retry.may_retry(attempts) {
            let state = &mut saga.steps[index];
            // An attempt whose outcome was never learned may still land: the step stays
            // `unknown` (and is compensated); only a step known not to have happened is `failed`.
            state.status = if state.ambiguous { StepStatus::Unknown } else { StepStatus::Failed };
            state.finished_at = Some(now);
            let last = saga.steps[index].last_error.clone().unwrap_or_default();
            let reason = format!("{} failed after {attempts} attempts: {last}", step.name);
            return self.begin_compensation(saga, reason, events).await;
        }
        let body = match (step.request)(&saga.request, &saga.outputs) {
            Ok(body) => body,
            Err(err) => {
                saga.steps[index].status = StepStatus::Failed;
                let reason = format!("cannot build the {} request: {err}", step.name);
                return self.begin_compensation(saga, reason, events).await;
            }
        };

        let attempt = attempts + 1;
        saga.steps[index].attempts = attempt;
        saga.steps[index].started_at.get_or_insert(now);
        let started = Instant::now();
        let outcome = self.client.act(step, saga.order_id, &body).await;
        record_call(step, "action", outcome.label(), started);
        match outcome {
            CallOutcome::Done(record) => {
                events.push(self.event("action", Some(step.name), Some(attempt), "ok", None));
                self.step_succeeded(saga, record, events).await
            }
            CallOutcome::Refused { detail, .. } => {
                events.push(self.event("action", Some(step.name), Some(attempt), "permanent", Some(detail.clone())));
                let state = &mut saga.steps[index];
                state.status = StepStatus::Failed;
                state.last_error = Some(detail.clone());
                state.finished_at = Some(Utc::now());
                let reason = format!("{} refused: {detail}", step.name);
                if step.kind == StepKind::Retriable {
                    // Past the pivot there is nothing to undo: an operator must look.
                    return self.dead_letter(saga, reason, events).await;
                }
                self.begin_compensation(saga, reason, events).await
            }
            CallOutcome::Transient { ambiguous, label, detail } => {
                events.push(self.event("action", Some(step.name), Some(attempt), label, Some(detail.clone())));
                let state = &mut saga.steps[index];
                state.ambiguous |= ambiguous;
                state.status = if ambiguous { StepStatus::Unknown } else { StepStatus::Retrying };
                state.last_error = Some(detail);
                let delay = step.retry.backoff(attempt);
                saga.next_run_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                tracing::info!(step = step.name, attempt, ?delay, "attempt failed; retrying after backoff");
                self.save(saga, false, &events).await
            }
        }
    }

    async fn step_succeeded(&self, saga: &mut Saga, record: Value, mut events: Vec<Event>) -> Result<(), Stop> {
        let index = saga.step_index;
        let now = Utc::now();
        let state = &mut saga.steps[index];
        state.status = StepStatus::Succeeded;
        state.finished_at = Some(now);
        saga.outputs.insert(state.name.clone(), record);
        saga.step_index = index + 1;
        saga.next_run_at = now;
        if saga.step_index == self.definition.steps.len() {
            events.push(self.event("saga", None, None, "completed", None));
            return self.finish(saga, SagaStatus::Completed, events).await;
        }
        self.save(saga, true, &events).await
    }

    async fn begin_compensation(&self, saga: &mut Saga, reason: String, mut events: Vec<Event>) -> Result<(), Stop> {
        let now = Utc::now();
        tracing::info!(%reason, "compensating");
        events.push(self.event("saga", None, None, "compensating", Some(reason.clone())));
        saga.status = SagaStatus::Compensating;
        saga.failure_reason = Some(reason);
        saga.compensation_deadline_at = Some(self.definition.compensation_deadline_from(now));
        saga.next_run_at = now;
        self.save(saga, true, &events).await
    }

    /// One backward move: compensate the newest step that succeeded or may have.
    async fn compensate(&self, saga: &mut Saga) -> Result<(), Stop> {
        let pending = (0..=saga.step_index.min(saga.steps.len().saturating_sub(1)))
            .rev()
            .find(|&i| saga.steps[i].needs_compensation(self.definition.steps[i].kind));
        let Some(index) = pending else {
            let events = vec![self.event("saga", None, None, "compensated", None)];
            return self.finish(saga, SagaStatus::Compensated, events).await;
        };
        saga.step_index = index;
        let step: &StepDefinition = &self.definition.steps[index];
        let now = Utc::now();
        if saga.compensation_deadline_at.is_some_and(|deadline| now > deadline) {
            let reason =
                format!("{}{BUDGET_NOTE}{}", saga.failure_reason.as_deref().unwrap_or("compensating"), step.name);
            return self.dead_letter(saga, reason, Vec::new()).await;
        }

        let attempt = saga.steps[index].compensation_attempts + 1;
        saga.steps[index].compensation_attempts = attempt;
        let started = Instant::now();
        let outcome = self.client.compensate(step, saga.order_id).await;
        let label = outcome.label();
        record_call(step, "compensation", label, started);
        let state = &mut saga.steps[index];
        match outcome {
            CallOutcome::Done(_) => {
                state.status = StepStatus::Compensated;
                state.finished_at = Some(Utc::now());
                let events = vec![self.event("compensation", Some(step.name), Some(attempt), "ok", None)];
                saga.next_run_at = Utc::now();
                self.save(saga, true, &events).await
            }
            CallOutcome::Refused { detail, .. } | CallOutcome::Transient { detail, .. } => {
                // Compensation must succeed: retry with capped backoff until the budget runs out.
                state.status = StepStatus::Compensating;
                state.last_error = Some(detail.clone());
                let events = vec![self.event("compensation", Some(step.name), Some(attempt), label, Some(detail))];
                let delay = self.definition.compensation_retry.backoff(attempt);
                let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                // Wake at the budget's end at the latest, so dead-lettering is not late by a backoff.
                saga.next_run_at = saga.compensation_deadline_at.map_or(next, |deadline| next.min(deadline));
                tracing::warn!(step = step.name, attempt, ?delay, "compensation failed; retrying");
                self.save(saga, false, &events).await
            }
        }
    }

    async fn dead_letter(&self, saga: &mut Saga, reason: String, mut events: Vec<Event>) -> Result<(), Stop> {
        tracing::error!(%reason, "saga dead-lettered: an operator must act");
        events.push(self.event("saga", None, None, "failed", Some(reason.clone())));
        saga.failure_reason = Some(reason);
        self.finish(saga, SagaStatus::Failed, events).await?;
        metrics::counter!(m::DEAD_LETTERED_TOTAL).increment(1);
        Ok(())
    }

    async fn finish(&self, saga: &mut Saga, status: SagaStatus, events: Vec<Event>) -> Result<(), Stop> {
        saga.status = status;
        self.save(saga, true, &events).await?;
        self.waiters.finished(saga.order_id);
        let elapsed = (Utc::now() - saga.created_at).to_std().unwrap_or_default();
        metrics::counter!(m::FINISHED_TOTAL, "outcome" => status.as_str()).increment(1);
        metrics::histogram!(m::DURATION_SECONDS, "outcome" => status.as_str()).record(elapsed.as_secs_f64());
        tracing::info!(status = status.as_str(), ?elapsed, "saga finished");
        Ok(())
    }
}

fn record_call(step: &StepDefinition, kind: &'static str, result: &'static str, started: Instant) {
    metrics::counter!(m::STEP_ATTEMPTS_TOTAL, "step" => step.name, "kind" => kind, "result" => result).increment(1);
    metrics::histogram!(m::STEP_DURATION_SECONDS, "step" => step.name, "kind" => kind, "result" => result)
        .record(started.elapsed().as_secs_f64());
}

fn count_reconciliation(step: &StepDefinition, result: &'static str) {
    metrics::counter!(m::RECONCILIATIONS_TOTAL, "step" => step.name, "result" => result).increment(1);
}
