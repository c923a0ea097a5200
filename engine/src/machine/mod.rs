//! The saga state machine: every decision about a saga, and nothing else.
//!
//! [`apply`] takes a saga's state, one [`Input`] (the outcome of the call the machine asked for
//! last, a resume after a claim, or just "run") and a [`Clock`], updates the state and returns a
//! [`Transition`]: the timeline events to append, how to write the log, and the [`Command`] to
//! carry out next. [`operate`] does the same for an operator's retry or cancel. Nothing here does
//! I/O: the executor makes the calls and the writes around it. The whole table of transitions
//! is dispatched here — [`apply`] (state × input), [`next_move`] (state) and [`operate`]
//! (command × state) — to the moves beside it: forward in [`forward`], compensation in
//! [`backward`], operator actions in [`operator`]. It is tested per transition (`tests.rs`) and
//! as a model (`engine/tests/saga_model.rs`).
//!
//! **A call that may have left may have landed.** Until the log records a call's outcome, its
//! step is possibly done, whatever later attempts say. The executor keeps this contract:
//! 1. when a transition has events, it writes them and the saga (fenced on the version) before
//!    anything else, and stops driving the saga if that write fails or is fenced out;
//! 2. only then it carries out the command, and feeds the outcome back as the next input.
//!
//! So every call is made for the step the log points at, and the only calls whose outcome the
//! log can miss are those in flight when a driver died, was fenced out (a claim, a cancel) or
//! failed to write. Whoever takes the saga over next resumes it with [`Input::Resumed`] (or the
//! cancel itself), which marks exactly that step possibly done: it is reconciled before anything
//! else and compensated unless it is known to have succeeded and then undone.

mod backward;
mod forward;
mod operator;

#[cfg(test)]
mod tests;

use chrono::{DateTime, SubsecRound, Utc};
use saga_shared::api::{EventKind, EventOutcome, OrderRequest, SagaStatus, StepStatus};
use serde_json::Value;
use uuid::Uuid;

pub use backward::needs_compensation;
pub use operator::{OperatorAction, OperatorCommand, Refusal};

use super::{
    definition::{SagaDefinition, later},
    outcome::{CallOutcome, Inspection},
    state::Saga,
};

/// The time and the randomness a decision may use, supplied by the caller so decisions stay
/// pure functions of their inputs.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Now.
    pub now: DateTime<Utc>,
    /// A uniform draw from `[0, 1]`: the jitter of any backoff decided in this transition.
    pub jitter: f64,
}

impl Clock {
    /// The system clock and a fresh random jitter.
    pub fn system() -> Self {
        Self { now: Utc::now(), jitter: rand::random() }
    }
}

/// What happened that the machine must decide on.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Decide from the state alone: a new saga, or a saga whose wait is over.
    Run,
    /// This instance claimed the saga from the log: its lease expired (`previous_owner`), or it
    /// was released on shutdown (`None`). Whatever call its previous driver had in flight may
    /// have landed.
    Resumed {
        /// Whose lease expired, if any.
        previous_owner: Option<String>,
    },
    /// The outcome of the `Act` command.
    Acted(CallOutcome),
    /// The outcome of the `Inspect` command.
    Inspected(Inspection),
    /// The outcome of the `Compensate` command.
    Compensated(CallOutcome),
}

/// What the executor must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `PUT` the step with `body`; feed the outcome back as [`Input::Acted`].
    Act {
        /// The step's index.
        step: usize,
        /// The attempt's number (1 for the first).
        attempt: u32,
        /// The request body.
        body: Value,
    },
    /// `GET` the step's record; feed the answer back as [`Input::Inspected`].
    Inspect {
        /// The step's index.
        step: usize,
    },
    /// `DELETE` the step; feed the outcome back as [`Input::Compensated`].
    Compensate {
        /// The step's index.
        step: usize,
        /// The compensation attempt's number (1 for the first).
        attempt: u32,
    },
    /// Nothing to do before `until`; then [`Input::Run`].
    Wait {
        /// When the next move is due.
        until: DateTime<Utc>,
    },
    /// Nothing more to do: the saga is terminal (or an operator's no-op needs no driver).
    Stop,
}

/// How the log must be written before the command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// Nothing changed that the log must know.
    Nothing,
    /// Append the events; the saga itself is unchanged (an operator's no-op is still recorded).
    Events,
    /// Write the saga, fenced on its version, with the events.
    Saga {
        /// Whether a step (or the saga) moved on: what "stuck" is measured from.
        progressed: bool,
    },
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The orchestrator instance driving the saga.
    Instance,
    /// The operator named in the request.
    Operator(String),
}

/// One timeline entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// What it is about.
    pub kind: EventKind,
    /// The step concerned.
    pub step: Option<&'static str>,
    /// The attempt number, for calls.
    pub attempt: Option<u32>,
    /// What came of it.
    pub outcome: EventOutcome,
    /// The error, the reason, …
    pub detail: Option<String>,
    /// Who caused it.
    pub actor: Actor,
}

/// What one decision produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Timeline entries to append, in order.
    pub events: Vec<NewEvent>,
    /// How to write the log before `command` runs.
    pub persist: Persist,
    /// The terminal status the saga reached in this transition, if it did.
    pub finished: Option<SagaStatus>,
    /// What to do next.
    pub command: Command,
}

/// A new saga for `request`, and its `started` event.
pub fn start(definition: &SagaDefinition, order_id: Uuid, request: OrderRequest, clock: Clock) -> (Saga, NewEvent) {
    let saga = Saga::new(order_id, request, definition, clock.now);
    let started = NewEvent {
        kind: EventKind::Saga,
        step: None,
        attempt: None,
        outcome: EventOutcome::Started,
        detail: None,
        actor: Actor::Instance,
    };
    (saga, started)
}

/// Decides on `input`: updates `saga` and says what to write and do next.
pub fn apply(definition: &SagaDefinition, saga: &mut Saga, input: Input, clock: Clock) -> Transition {
    let mut record = Record::new(clock);
    let forward = saga.status.is_forward();
    let decided = match input {
        Input::Run => None,
        Input::Resumed { previous_owner } => {
            resumed(saga, previous_owner, &mut record);
            None
        }
        Input::Acted(outcome) if forward => forward::acted(definition, saga, outcome, &mut record),
        Input::Inspected(inspection) if forward => forward::inspected(definition, saga, inspection, &mut record),
        Input::Compensated(outcome) if saga.status == SagaStatus::Compensating => {
            backward::compensated(definition, saga, outcome, &mut record);
            None
        }
        // An answer to a command this state would not have given (the driver's copy is stale):
        // it says nothing the log can use, so decide from the state alone.
        Input::Acted(_) | Input::Inspected(_) | Input::Compensated(_) => None,
    };
    let command = decided.unwrap_or_else(|| next_move(definition, saga, &mut record));
    record.into_transition(command)
}

/// Decides on an operator's action. A refusal leaves `saga` unchanged.
pub fn operate(
    definition: &SagaDefinition,
    saga: &mut Saga,
    action: &OperatorAction,
    clock: Clock,
) -> Result<Transition, Refusal> {
    let mut record = Record::new(clock);
    let command = match (action.command, saga.status) {
        (OperatorCommand::Retry, SagaStatus::Failed) => {
            operator::announce(action, &mut record);
            operator::retry(definition, saga, &mut record);
            next_move(definition, saga, &mut record)
        }
        (OperatorCommand::Retry, status) => return Err(Refusal::NotFailed(status)),
        (OperatorCommand::Cancel, SagaStatus::Completed) => return Err(Refusal::Completed),
        (OperatorCommand::Cancel, SagaStatus::Failed) => return Err(Refusal::Failed),
        (OperatorCommand::Cancel, SagaStatus::Compensating | SagaStatus::Compensated) => {
            // Already undoing (or undone): nothing changes, but the request is on record.
            operator::announce(action, &mut record);
            record.append_only = true;
            Command::Stop
        }
        (OperatorCommand::Cancel, SagaStatus::Pending | SagaStatus::Running) => {
            operator::cancel(definition, saga, action, &mut record)?
        }
    };
    Ok(record.into_transition(command))
}

/// How long the current call may wait for its participant (while its circuit is open) before
/// the executor gives it to the machine as not sent: the step's retry budget or the saga's
/// deadline going forward, the compensation budget going backward; `None`: no limit.
pub fn patience_end(definition: &SagaDefinition, saga: &Saga) -> Option<DateTime<Utc>> {
    match saga.status {
        SagaStatus::Pending | SagaStatus::Running => forward::patience_end(definition, saga),
        SagaStatus::Compensating => saga.compensation_deadline_at,
        SagaStatus::Completed | SagaStatus::Compensated | SagaStatus::Failed => None,
    }
}

/// The next move from the state alone.
fn next_move(definition: &SagaDefinition, saga: &mut Saga, record: &mut Record) -> Command {
    match saga.status {
        SagaStatus::Pending | SagaStatus::Running => forward::next(definition, saga, record),
        SagaStatus::Compensating => backward::next(definition, saga, record),
        SagaStatus::Completed | SagaStatus::Compensated | SagaStatus::Failed => Command::Stop,
    }
}

/// A claim: the previous driver may have had a call of the current step in flight, so going
/// forward that step is possibly done and is reconciled first. A compensation call in flight
/// needs nothing: repeating a `DELETE` is harmless.
fn resumed(saga: &mut Saga, previous_owner: Option<String>, record: &mut Record) {
    let detail = match previous_owner {
        Some(owner) => format!("lease of {owner} expired"),
        None => "unowned saga resumed".to_owned(),
    };
    record.saga(EventOutcome::Claimed, Some(detail), Actor::Instance);
    if saga.status.is_forward() {
        mark_possibly_done(saga);
    }
}

/// The current step may have happened through a call whose outcome the log never saw.
fn mark_possibly_done(saga: &mut Saga) {
    if let Some(step) = saga.steps.get_mut(saga.step_index)
        && step.status != StepStatus::Succeeded
    {
        step.ambiguous = true;
        step.status = StepStatus::Unknown;
    }
}

/// The saga is due at once. A next run time already in the past says the same and is kept, so
/// the indexed `next_run_at` column keeps its value: Postgres can then update the saga's row in
/// place without touching any index (a HOT update), as most writes of a happy saga are.
fn due_now(saga: &mut Saga, now: DateTime<Utc>) {
    saga.next_run_at = saga.next_run_at.min(now);
}

/// The saga reached a terminal status.
fn finish(saga: &mut Saga, status: SagaStatus, detail: Option<String>, record: &mut Record) {
    saga.status = status;
    record.finished = Some(status);
    record.progressed = true;
    let outcome = match status {
        SagaStatus::Completed => EventOutcome::Completed,
        SagaStatus::Compensated => EventOutcome::Compensated,
        SagaStatus::Failed => EventOutcome::Failed,
        SagaStatus::Pending | SagaStatus::Running | SagaStatus::Compensating => return,
    };
    record.saga(outcome, detail, Actor::Instance);
}

/// The saga cannot go on by itself: it becomes `failed` until an operator retries it.
fn dead_letter(saga: &mut Saga, note: String, record: &mut Record) {
    saga.dead_letter = Some(note);
    let summary = saga.failure_summary();
    finish(saga, SagaStatus::Failed, summary, record);
}

/// The transition being built: its events and flags.
#[derive(Debug)]
struct Record {
    clock: Clock,
    events: Vec<NewEvent>,
    progressed: bool,
    finished: Option<SagaStatus>,
    /// Only events to append: the saga itself did not change.
    append_only: bool,
}

impl Record {
    fn new(clock: Clock) -> Self {
        Self { clock, events: Vec::new(), progressed: false, finished: None, append_only: false }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now
    }

    /// When a retry after `delay` is due.
    fn after(&self, delay: std::time::Duration) -> DateTime<Utc> {
        later(self.clock.now, delay).trunc_subsecs(6)
    }

    fn push(
        &mut self,
        kind: EventKind,
        step: Option<&'static str>,
        attempt: Option<u32>,
        outcome: EventOutcome,
        detail: Option<String>,
        actor: Actor,
    ) {
        self.events.push(NewEvent { kind, step, attempt, outcome, detail, actor });
    }

    fn saga(&mut self, outcome: EventOutcome, detail: Option<String>, actor: Actor) {
        self.push(EventKind::Saga, None, None, outcome, detail, actor);
    }

    fn into_transition(self, command: Command) -> Transition {
        let persist = if self.events.is_empty() {
            Persist::Nothing
        } else if self.append_only {
            Persist::Events
        } else {
            Persist::Saga { progressed: self.progressed }
        };
        Transition { events: self.events, persist, finished: self.finished, command }
    }
}
