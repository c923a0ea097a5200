//! Compensation: undo, newest first, every step that succeeded or may have, retrying each until
//! it succeeds or the compensation budget runs out (then the saga is dead-lettered).

use saga_shared::api::{EventKind, EventOutcome, SagaStatus, StepStatus};

use super::{Actor, Command, Record, dead_letter, due_now, finish};
use crate::{
    definition::{SagaDefinition, StepKind},
    outcome::CallOutcome,
    state::{Saga, StepState},
};

/// Whether compensation must undo this step: it is compensatable, not undone yet, and it
/// succeeded or any call of it may have landed.
pub fn needs_compensation(state: &StepState, kind: StepKind) -> bool {
    kind == StepKind::Compensatable
        && state.status != StepStatus::Compensated
        && (state.ambiguous
            || matches!(state.status, StepStatus::Succeeded | StepStatus::Unknown | StepStatus::Compensating))
}

/// Stops going forward for `reason` and starts compensating, at once.
pub(super) fn begin(
    definition: &SagaDefinition,
    saga: &mut Saga,
    reason: String,
    actor: Actor,
    record: &mut Record,
) -> Command {
    record.saga(EventOutcome::Compensating, Some(reason.clone()), actor);
    saga.status = SagaStatus::Compensating;
    saga.failure_reason = Some(reason);
    saga.compensation_deadline_at = Some(definition.compensation_deadline_from(record.now()));
    due_now(saga, record.now());
    record.progressed = true;
    next(definition, saga, record)
}

/// The next backward move: compensate the newest step that needs it, wait for its retry, give
/// up when the budget is spent, or finish when nothing is left to undo.
pub(super) fn next(definition: &SagaDefinition, saga: &mut Saga, record: &mut Record) -> Command {
    let newest = saga.step_index.min(definition.steps.len().saturating_sub(1));
    let pending = (0..=newest).rev().find(|&i| needs_compensation(&saga.steps[i], definition.steps[i].kind));
    let Some(index) = pending else {
        finish(saga, SagaStatus::Compensated, None, record);
        return Command::Stop;
    };
    saga.step_index = index;
    // A step that succeeded is being undone from now on, whether or not its first `DELETE` has
    // gone out yet (it may wait for its participant's circuit): the log and the console say so.
    // An `unknown` step stays so until its `DELETE` is tried: it may not have happened at all.
    if saga.steps[index].status == StepStatus::Succeeded {
        saga.steps[index].status = StepStatus::Compensating;
    }
    if record.now() < saga.next_run_at {
        return Command::Wait { until: saga.next_run_at };
    }
    if saga.compensation_deadline_at.is_some_and(|deadline| record.now() > deadline) {
        let note = format!("compensation budget exhausted at {}", definition.steps[index].name);
        dead_letter(saga, note, record);
        return Command::Stop;
    }
    Command::Compensate { step: index, attempt: saga.steps[index].compensation_attempts + 1 }
}

/// The outcome of the current compensation attempt: the step is undone, or it is retried with
/// capped backoff (never later than the budget's end, so dead-lettering is not late).
pub(super) fn compensated(definition: &SagaDefinition, saga: &mut Saga, outcome: CallOutcome, record: &mut Record) {
    let index = saga.step_index;
    let Some(step) = definition.steps.get(index) else { return };
    let now = record.now();
    let state = &mut saga.steps[index];
    state.compensation_attempts += 1;
    let attempt = state.compensation_attempts;
    let event_outcome = outcome.event_outcome();
    match outcome {
        CallOutcome::Done(_) => {
            record.push(EventKind::Compensation, Some(step.name), Some(attempt), event_outcome, None, Actor::Instance);
            state.status = StepStatus::Compensated;
            state.finished_at = Some(now);
            due_now(saga, now);
            record.progressed = true;
        }
        CallOutcome::Refused { detail, .. } | CallOutcome::Failed { detail, .. } => {
            record.push(
                EventKind::Compensation,
                Some(step.name),
                Some(attempt),
                event_outcome,
                Some(detail.clone()),
                Actor::Instance,
            );
            state.status = StepStatus::Compensating;
            state.last_error = Some(detail);
            let retry_at = record.after(definition.compensation_retry.backoff(attempt, record.clock.jitter));
            saga.next_run_at = saga.compensation_deadline_at.map_or(retry_at, |deadline| retry_at.min(deadline));
        }
    }
}
