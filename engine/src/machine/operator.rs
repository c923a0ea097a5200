//! Operator actions: resume a dead-lettered saga, or cancel one going forward. Which action is
//! possible in which state is decided in [`super::operate`], beside every other transition;
//! here are the requests, the refusals and the moves themselves.

use saga_shared::api::{EventKind, EventOutcome, SagaStatus, StepStatus};

use super::{Actor, Command, Record, backward, mark_possibly_done};
use crate::{
    definition::{SagaDefinition, StepKind},
    state::Saga,
};

/// What an operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorCommand {
    /// Resume a `failed` saga: compensation gets a new budget, or a step past the pivot is
    /// tried again.
    Retry,
    /// Compensate a saga going forward, on purpose.
    Cancel,
}

/// An operator's request: what, who and why (the last two go into the timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAction {
    /// What is asked.
    pub command: OperatorCommand,
    /// Who asks.
    pub operator: String,
    /// Why, if given.
    pub reason: Option<String>,
}

/// Why an operator's action is not possible in the saga's state (answered as 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Only a failed saga can be retried.
    #[error("only a failed saga can be retried; this one is {0}")]
    NotFailed(SagaStatus),
    /// A completed order stays completed.
    #[error("the order is completed; it cannot be cancelled")]
    Completed,
    /// A failed saga is resumed, not cancelled.
    #[error("the saga failed; use POST /orders/{{id}}/retry")]
    Failed,
    /// Past the pivot the saga only goes forward.
    #[error("the saga is past its pivot step {0}; it can only go forward")]
    PastPivot(&'static str),
}

/// Puts the operator's request on the timeline.
pub(super) fn announce(action: &OperatorAction, record: &mut Record) {
    let outcome = match action.command {
        OperatorCommand::Retry => EventOutcome::Retry,
        OperatorCommand::Cancel => EventOutcome::Cancel,
    };
    let actor = Actor::Operator(action.operator.clone());
    record.push(EventKind::Operator, None, None, outcome, action.reason.clone(), actor);
}

/// A saga going forward is compensated on purpose, unless it is past its pivot.
pub(super) fn cancel(
    definition: &SagaDefinition,
    saga: &mut Saga,
    action: &OperatorAction,
    record: &mut Record,
) -> Result<Command, Refusal> {
    if let Some(step) = definition.steps.get(saga.step_index).filter(|s| s.kind == StepKind::Retriable) {
        return Err(Refusal::PastPivot(step.name));
    }
    announce(action, record);
    // The driver may be mid-call right now; its outcome will be fenced out.
    mark_possibly_done(saga);
    let reason = action.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    let why = format!("cancelled by {}{reason}", action.operator);
    Ok(backward::begin(definition, saga, why, Actor::Operator(action.operator.clone()), record))
}

/// A failed saga resumes where it stopped: a step past the pivot is tried again (reconciled
/// first if it may have happened), anything else compensates with a new budget.
pub(super) fn retry(definition: &SagaDefinition, saga: &mut Saga, record: &mut Record) {
    let index = saga.step_index.min(definition.steps.len().saturating_sub(1));
    let now = record.now();
    saga.dead_letter = None;
    saga.next_run_at = now;
    record.progressed = true;
    let stuck_forward = definition.steps.get(index).is_some_and(|s| s.kind == StepKind::Retriable)
        && saga.steps.get(index).is_some_and(|s| s.status != StepStatus::Succeeded);
    if stuck_forward {
        saga.status = SagaStatus::Running;
        let step = &mut saga.steps[index];
        step.status = if step.ambiguous { StepStatus::Unknown } else { StepStatus::Retrying };
        step.finished_at = None;
    } else {
        saga.status = SagaStatus::Compensating;
        saga.compensation_deadline_at = Some(definition.compensation_deadline_from(now));
    }
}
