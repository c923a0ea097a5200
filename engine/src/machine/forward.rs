//! Going forward: the next attempt of the current step, reconciliation of a step that may have
//! happened, and the decisions that end the forward run (deadline, retries exhausted, a
//! permanent refusal).

use std::time::Duration;

use chrono::{DateTime, Utc};
use saga_shared::api::{EventKind, SagaStatus, StepStatus};
use serde_json::Value;

use super::{Actor, Command, Record, backward, dead_letter, due_now, finish};
use crate::{
    definition::{SagaDefinition, StepKind, later},
    outcome::{CallOutcome, Inspection},
    state::Saga,
};

/// The next forward move: wait, give up at the deadline, reconcile, or attempt.
pub(super) fn next(definition: &SagaDefinition, saga: &mut Saga, record: &mut Record) -> Command {
    let index = saga.step_index;
    let Some(step) = definition.steps.get(index) else {
        // Only a log written under a definition with more steps lands here: nothing is left.
        finish(saga, SagaStatus::Completed, None, record);
        return Command::Stop;
    };
    if record.now() < saga.next_run_at {
        return Command::Wait { until: saga.next_run_at };
    }
    if record.now() > saga.deadline_at && step.kind == StepKind::Compensatable {
        return backward::begin(definition, saga, "saga deadline exceeded".to_owned(), Actor::Instance, record);
    }
    if saga.steps[index].status == StepStatus::Unknown {
        return Command::Inspect { step: index };
    }
    attempt_or_give_up(definition, saga, record)
}

/// Another attempt if the retry policy allows one (in attempts and in time), else the step
/// fails.
fn attempt_or_give_up(definition: &SagaDefinition, saga: &mut Saga, record: &mut Record) -> Command {
    let index = saga.step_index;
    let step = &definition.steps[index];
    let state = &saga.steps[index];
    let elapsed = state.started_at.map_or(Duration::ZERO, |started| elapsed_since(started, record.now()));
    if !step.retry.may_retry(state.attempts, elapsed) {
        let last = state.last_error.as_deref().unwrap_or("no error recorded");
        let reason =
            format!("{} failed after {} attempts in {:.1} s: {last}", step.name, state.attempts, elapsed.as_secs_f64());
        return give_up(definition, saga, reason, record);
    }
    match (step.request)(&saga.request, &saga.outputs) {
        Ok(body) => {
            let attempt = state.attempts + 1;
            // In memory until the outcome is written with them.
            saga.steps[index].started_at.get_or_insert(record.now());
            if saga.status == SagaStatus::Pending {
                saga.status = SagaStatus::Running;
            }
            Command::Act { step: index, attempt, body }
        }
        Err(err) => give_up(definition, saga, format!("cannot build the {} request: {err}", step.name), record),
    }
}

/// The current step will not succeed: it ends `failed`, or `unknown` if any call of it may have
/// landed, and the saga compensates; past the pivot there is nothing to undo and an operator
/// must look.
fn give_up(definition: &SagaDefinition, saga: &mut Saga, reason: String, record: &mut Record) -> Command {
    let index = saga.step_index;
    let state = &mut saga.steps[index];
    state.status = if state.ambiguous { StepStatus::Unknown } else { StepStatus::Failed };
    state.finished_at = Some(record.now());
    if definition.steps[index].kind == StepKind::Retriable {
        saga.failure_reason = Some(reason);
        dead_letter(saga, format!("{} is past the pivot: an operator must act", definition.steps[index].name), record);
        return Command::Stop;
    }
    backward::begin(definition, saga, reason, Actor::Instance, record)
}

/// The outcome of the current attempt.
pub(super) fn acted(
    definition: &SagaDefinition,
    saga: &mut Saga,
    outcome: CallOutcome,
    record: &mut Record,
) -> Option<Command> {
    let index = saga.step_index;
    let step = definition.steps.get(index)?;
    let now = record.now();
    if saga.status == SagaStatus::Pending {
        saga.status = SagaStatus::Running;
    }
    let state = &mut saga.steps[index];
    state.attempts += 1;
    state.started_at.get_or_insert(now);
    let attempt = state.attempts;
    let event_outcome = outcome.event_outcome();
    match outcome {
        CallOutcome::Done(output) => {
            record.push(EventKind::Action, Some(step.name), Some(attempt), event_outcome, None, Actor::Instance);
            succeeded(definition, saga, output, record);
            None
        }
        CallOutcome::Refused { detail, .. } => {
            record.push(
                EventKind::Action,
                Some(step.name),
                Some(attempt),
                event_outcome,
                Some(detail.clone()),
                Actor::Instance,
            );
            saga.steps[index].last_error = Some(detail.clone());
            Some(give_up(definition, saga, format!("{} refused: {detail}", step.name), record))
        }
        CallOutcome::Failed { failure, detail } => {
            record.push(
                EventKind::Action,
                Some(step.name),
                Some(attempt),
                event_outcome,
                Some(detail.clone()),
                Actor::Instance,
            );
            let landed = failure.may_have_landed();
            state.ambiguous |= landed;
            state.status = if landed { StepStatus::Unknown } else { StepStatus::Retrying };
            state.last_error = Some(detail);
            // The last allowed attempt needs no backoff: what follows is a reconciliation or
            // the compensation, which should not wait. Nor does a retry wait past the budget's
            // end, so giving up is not late.
            let started = state.started_at.unwrap_or(now);
            saga.next_run_at = if step.retry.may_retry(attempt, elapsed_since(started, now)) {
                let retry_at = record.after(step.retry.backoff(attempt, record.clock.jitter));
                step.retry.budget.map_or(retry_at, |budget| retry_at.min(later(started, budget)))
            } else {
                now
            };
            None
        }
    }
}

/// The participant's answer to "did it happen?".
pub(super) fn inspected(
    definition: &SagaDefinition,
    saga: &mut Saga,
    inspection: Inspection,
    record: &mut Record,
) -> Option<Command> {
    let index = saga.step_index;
    let step = definition.steps.get(index)?;
    let outcome = inspection.event_outcome();
    let push = |record: &mut Record, detail| {
        record.push(EventKind::Reconcile, Some(step.name), None, outcome, detail, Actor::Instance);
    };
    match inspection {
        Inspection::Happened(output) => {
            push(record, None);
            succeeded(definition, saga, output, record);
            None
        }
        Inspection::Compensated => {
            push(record, None);
            let state = &mut saga.steps[index];
            state.status = StepStatus::Compensated;
            state.finished_at = Some(record.now());
            let reason = format!("{} was compensated outside this saga", step.name);
            if step.kind == StepKind::Retriable {
                saga.failure_reason = Some(reason);
                dead_letter(saga, format!("{} is past the pivot: an operator must act", step.name), record);
                return Some(Command::Stop);
            }
            Some(backward::begin(definition, saga, reason, Actor::Instance, record))
        }
        Inspection::Absent => {
            // Not so far; a call still in flight may land later, so the step stays possibly
            // done (`ambiguous`) and is compensated if it ends without succeeding.
            push(record, None);
            saga.steps[index].status = StepStatus::Retrying;
            None
        }
        Inspection::Unreachable(detail) => {
            // It cannot be asked: retry the step itself (a replay is harmless if it happened).
            saga.steps[index].last_error = Some(detail.clone());
            push(record, Some(detail));
            Some(attempt_or_give_up(definition, saga, record))
        }
    }
}

/// When the current step stops waiting for its participant: the end of its retry budget or,
/// for a compensatable step, the saga's deadline, whichever comes first (`None`: never, a step
/// past the pivot).
pub(super) fn patience_end(definition: &SagaDefinition, saga: &Saga) -> Option<DateTime<Utc>> {
    let step = definition.steps.get(saga.step_index)?;
    let state = saga.steps.get(saga.step_index)?;
    let budget_end = step.retry.budget.zip(state.started_at).map(|(budget, started)| later(started, budget));
    let deadline = (step.kind == StepKind::Compensatable).then_some(saga.deadline_at);
    budget_end.into_iter().chain(deadline).min()
}

fn elapsed_since(start: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - start).to_std().unwrap_or_default()
}

/// The current step happened (`answer`: the participant's record): keep its output and move to
/// the next one (or finish).
fn succeeded(definition: &SagaDefinition, saga: &mut Saga, answer: Value, record: &mut Record) {
    let index = saga.step_index;
    let state = &mut saga.steps[index];
    state.status = StepStatus::Succeeded;
    state.finished_at = Some(record.now());
    if let Some(output) = definition.steps[index].output_of(&answer) {
        saga.outputs.insert(state.name.clone(), output);
    }
    saga.step_index = index + 1;
    due_now(saga, record.now());
    record.progressed = true;
    if saga.step_index == definition.steps.len() {
        finish(saga, SagaStatus::Completed, None, record);
    }
}
