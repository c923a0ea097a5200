//! One test per transition of the state machine. The model test
//! (`engine/tests/saga_model.rs`) checks random runs of them against simulated participants.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use saga_shared::{
    api::{EventKind, EventOutcome, OrderRequest, SagaStatus, StepStatus},
    config::Env,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::{
    config::OrchestratorConfig,
    definition::{ORDER_STEPS, SagaDefinition},
    outcome::{CallFailure, CallOutcome, Inspection},
    state::Saga,
};

fn definition(env: &[(&str, &str)]) -> SagaDefinition {
    let config = OrchestratorConfig::from_env(&Env::from_pairs(env.iter().copied()), &ORDER_STEPS).unwrap();
    SagaDefinition::order_saga(&config).unwrap()
}

fn order() -> OrderRequest {
    serde_json::from_value(json!({
        "customer_id": "alice",
        "items": [{ "sku": "WIDGET-1", "quantity": 1 }],
        "shipping_address": { "name": "A", "line1": "B", "city": "C", "postal_code": "D", "country": "FR" }
    }))
    .unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

/// `seconds` after the saga was created, with a mid-range jitter.
fn at(seconds: f64) -> Clock {
    Clock { now: t0() + Duration::microseconds((seconds * 1e6).round() as i64), jitter: 0.5 }
}

fn new_saga(definition: &SagaDefinition) -> Saga {
    machine_start(definition).0
}

fn machine_start(definition: &SagaDefinition) -> (Saga, NewEvent) {
    start(definition, Uuid::nil(), order(), at(0.0))
}

fn done() -> CallOutcome {
    CallOutcome::Done(json!({ "total_cents": 1299 }))
}

fn refused() -> CallOutcome {
    CallOutcome::Refused { status: 402, detail: "402 declined".to_owned() }
}

fn failed(failure: CallFailure) -> CallOutcome {
    CallOutcome::Failed { failure, detail: format!("{failure:?}") }
}

/// The events as `(kind, step, outcome)`.
fn events(transition: &Transition) -> Vec<(EventKind, Option<&'static str>, EventOutcome)> {
    transition.events.iter().map(|e| (e.kind, e.step, e.outcome)).collect()
}

/// A saga whose first `steps` steps succeeded, at 1 s.
fn saga_at_step(definition: &SagaDefinition, steps: usize) -> Saga {
    let mut saga = new_saga(definition);
    apply(definition, &mut saga, Input::Run, at(1.0));
    for _ in 0..steps {
        apply(definition, &mut saga, Input::Acted(done()), at(1.0));
    }
    saga
}

#[test]
fn a_new_saga_is_started_with_its_event_and_attempts_its_first_step_without_another_write() {
    let definition = definition(&[]);
    let (mut saga, started) = machine_start(&definition);
    assert_eq!((started.kind, started.outcome), (EventKind::Saga, EventOutcome::Started));

    let transition = apply(&definition, &mut saga, Input::Run, at(0.0));

    assert_eq!(transition.persist, Persist::Nothing);
    assert!(matches!(transition.command, Command::Act { step: 0, attempt: 1, .. }), "{transition:?}");
    assert_eq!(apply(&definition, &mut saga, Input::Run, at(0.0)), transition, "deciding again changes nothing");
}

#[test]
fn a_success_is_written_with_the_move_to_the_next_step_whose_request_uses_its_output() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 0);

    let transition = apply(&definition, &mut saga, Input::Acted(done()), at(1.5));

    assert_eq!(events(&transition), [(EventKind::Action, Some("reserve_inventory"), EventOutcome::Ok)]);
    assert_eq!(transition.persist, Persist::Saga { progressed: true });
    let Command::Act { step: 1, attempt: 1, body } = transition.command else { panic!("{transition:?}") };
    assert_eq!(body["amount_cents"], 1299, "payment charges the reservation's total");
    assert_eq!((saga.status, saga.step_index), (SagaStatus::Running, 1));
    assert_eq!(saga.steps[0].status, StepStatus::Succeeded);
}

#[test]
fn the_last_success_completes_the_saga_in_the_same_write() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 3);

    let transition = apply(&definition, &mut saga, Input::Acted(done()), at(2.0));

    assert_eq!(
        events(&transition),
        [
            (EventKind::Action, Some("send_confirmation"), EventOutcome::Ok),
            (EventKind::Saga, None, EventOutcome::Completed)
        ]
    );
    assert_eq!((transition.finished, transition.command), (Some(SagaStatus::Completed), Command::Stop));
}

#[test]
fn a_refused_connection_is_retried_after_a_jittered_backoff_and_leaves_the_step_not_done() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 1);

    let transition = apply(&definition, &mut saga, Input::Acted(failed(CallFailure::NotDelivered)), at(2.0));

    assert_eq!(events(&transition), [(EventKind::Action, Some("process_payment"), EventOutcome::Transient)]);
    // Default backoff: initial 100 ms; jitter 0.5 of the cap.
    assert_eq!(transition.command, Command::Wait { until: at(2.05).now });
    assert_eq!(transition.persist, Persist::Saga { progressed: false });
    assert_eq!((saga.steps[1].status, saga.steps[1].ambiguous), (StepStatus::Retrying, false));
    let next = apply(&definition, &mut saga, Input::Run, at(2.05));
    assert!(matches!(next.command, Command::Act { step: 1, attempt: 2, .. }), "{next:?}");
}

#[test]
fn a_timeout_leaves_the_step_possibly_done_and_the_next_move_asks_the_participant() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 1);

    let transition = apply(&definition, &mut saga, Input::Acted(failed(CallFailure::TimedOut)), at(2.0));

    assert_eq!(events(&transition), [(EventKind::Action, Some("process_payment"), EventOutcome::Timeout)]);
    assert_eq!((saga.steps[1].status, saga.steps[1].ambiguous), (StepStatus::Unknown, true));
    assert_eq!(apply(&definition, &mut saga, Input::Run, at(3.0)).command, Command::Inspect { step: 1 });
}

#[test]
fn a_reconciliation_that_finds_the_step_done_moves_on_without_another_attempt() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 1);
    apply(&definition, &mut saga, Input::Acted(failed(CallFailure::TimedOut)), at(2.0));

    let found = Inspection::Happened(json!({ "status": "captured" }));
    let transition = apply(&definition, &mut saga, Input::Inspected(found), at(3.0));

    assert_eq!(events(&transition), [(EventKind::Reconcile, Some("process_payment"), EventOutcome::Happened)]);
    assert!(matches!(transition.command, Command::Act { step: 2, attempt: 1, .. }), "{transition:?}");
    assert_eq!(saga.steps[1].attempts, 1, "found by asking, not by trying again");
}

#[test]
fn a_reconciliation_that_finds_nothing_retries_yet_keeps_the_step_possibly_done() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 1);
    apply(&definition, &mut saga, Input::Acted(failed(CallFailure::TimedOut)), at(2.0));

    let transition = apply(&definition, &mut saga, Input::Inspected(Inspection::Absent), at(3.0));

    assert_eq!(events(&transition), [(EventKind::Reconcile, Some("process_payment"), EventOutcome::NotFound)]);
    assert!(matches!(transition.command, Command::Act { step: 1, attempt: 2, .. }), "{transition:?}");
    assert_eq!((saga.steps[1].status, saga.steps[1].ambiguous), (StepStatus::Retrying, true));
}

#[test]
fn an_unreachable_participant_is_attempted_right_after_the_reconciliation() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 1);
    apply(&definition, &mut saga, Input::Acted(failed(CallFailure::TimedOut)), at(2.0));

    let transition =
        apply(&definition, &mut saga, Input::Inspected(Inspection::Unreachable("down".to_owned())), at(3.0));

    assert_eq!(events(&transition), [(EventKind::Reconcile, Some("process_payment"), EventOutcome::Unreachable)]);
    assert!(matches!(transition.command, Command::Act { step: 1, attempt: 2, .. }), "{transition:?}");
}

#[test]
fn a_permanent_refusal_compensates_the_earlier_steps_newest_first_in_one_write_each() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 2);

    let refusal = apply(&definition, &mut saga, Input::Acted(refused()), at(2.0));
    assert_eq!(
        events(&refusal),
        [
            (EventKind::Action, Some("create_shipment"), EventOutcome::Permanent),
            (EventKind::Saga, None, EventOutcome::Compensating)
        ]
    );
    assert_eq!(refusal.command, Command::Compensate { step: 1, attempt: 1 }, "the refused step never happened");
    assert_eq!(saga.failure_reason.as_deref(), Some("create_shipment refused: 402 declined"));

    let payment = apply(&definition, &mut saga, Input::Compensated(done()), at(2.1));
    assert_eq!(payment.command, Command::Compensate { step: 0, attempt: 1 });
    let inventory = apply(&definition, &mut saga, Input::Compensated(done()), at(2.2));
    assert_eq!(
        events(&inventory),
        [
            (EventKind::Compensation, Some("reserve_inventory"), EventOutcome::Ok),
            (EventKind::Saga, None, EventOutcome::Compensated)
        ]
    );
    assert_eq!(inventory.finished, Some(SagaStatus::Compensated));
}

#[test]
fn retries_exhausted_on_refused_connections_fail_the_step_without_compensating_it() {
    let definition = definition(&[("STEP_MAX_ATTEMPTS", "4")]);
    let mut saga = saga_at_step(&definition, 1);
    let mut last = None;
    for attempt in 1..=4 {
        apply(&definition, &mut saga, Input::Run, at(f64::from(attempt) * 10.0));
        last = Some(apply(
            &definition,
            &mut saga,
            Input::Acted(failed(CallFailure::NotDelivered)),
            at(10.0 * f64::from(attempt)),
        ));
    }
    let last = last.unwrap();
    assert_eq!(last.command, Command::Compensate { step: 0, attempt: 1 }, "no backoff after the last attempt");
    assert_eq!(saga.steps[1].status, StepStatus::Failed);
    assert!(saga.failure_reason.as_deref().unwrap().starts_with("process_payment failed after 4 attempts"));
}

#[test]
fn transient_failures_are_retried_until_the_budget_is_spent_however_many_attempts_that_takes() {
    let definition = definition(&[("STEP_RETRY_BUDGET_MS", "10000"), ("STEP_MAX_BACKOFF_MS", "2000")]);
    let mut saga = saga_at_step(&definition, 1); // process_payment's first attempt began at 1 s
    let mut now = 1.0;
    let mut attempts = 0;
    let give_up = loop {
        let outcome = apply(&definition, &mut saga, Input::Acted(failed(CallFailure::NotDelivered)), at(now));
        attempts += 1;
        if outcome.command != (Command::Wait { until: saga.next_run_at }) {
            break outcome;
        }
        assert!(saga.next_run_at <= at(11.0).now, "no retry is due after the budget's end");
        now = (saga.next_run_at - t0()).num_microseconds().unwrap() as f64 / 1e6;
        let run = apply(&definition, &mut saga, Input::Run, at(now));
        if !matches!(run.command, Command::Act { step: 1, .. }) {
            break run;
        }
    };
    assert!(attempts > 4, "a restart's worth of refused connections is ridden out: {attempts} attempts");
    assert!((10.0..=11.0).contains(&now), "gave up at the budget's end, not before: {now}");
    assert_eq!(give_up.command, Command::Compensate { step: 0, attempt: 1 });
    assert_eq!(saga.steps[1].status, StepStatus::Failed, "no call of it landed");
    let reason = saga.failure_reason.as_deref().unwrap();
    assert!(reason.starts_with(&format!("process_payment failed after {attempts} attempts in 10.0 s")), "{reason}");
}

#[test]
fn a_participant_back_within_the_budget_lets_the_saga_go_on() {
    let definition = definition(&[("STEP_RETRY_BUDGET_MS", "10000")]);
    let mut saga = saga_at_step(&definition, 1);
    for second in [1.0, 3.0, 6.0] {
        apply(&definition, &mut saga, Input::Acted(failed(CallFailure::NotDelivered)), at(second));
        let run = apply(&definition, &mut saga, Input::Run, at(second + 2.5));
        assert!(matches!(run.command, Command::Act { step: 1, .. }), "{run:?}");
    }
    let ok = apply(&definition, &mut saga, Input::Acted(done()), at(9.0));
    assert!(matches!(ok.command, Command::Act { step: 2, .. }), "{ok:?}");
    assert_eq!(saga.status, SagaStatus::Running);
}

#[test]
fn patience_ends_at_the_budget_or_the_deadline_and_never_past_the_pivot() {
    let deadline_first = definition(&[("STEP_RETRY_BUDGET_MS", "10000"), ("SAGA_DEADLINE_MS", "8000")]);
    let saga = saga_at_step(&deadline_first, 1);
    assert_eq!(patience_end(&deadline_first, &saga), Some(at(8.0).now), "the deadline comes first");
    let budget_first = definition(&[("STEP_RETRY_BUDGET_MS", "4000")]);
    let saga = saga_at_step(&budget_first, 1);
    assert_eq!(patience_end(&budget_first, &saga), Some(at(5.0).now), "the budget runs from the first attempt");
    let pivot = definition(&[("STEP_SEND_CONFIRMATION_KIND", "retriable")]);
    let saga = saga_at_step(&pivot, 3);
    assert_eq!(patience_end(&pivot, &saga), None, "past the pivot a step waits as long as it takes");
}

#[test]
fn retries_exhausted_after_one_timeout_compensate_the_step_too() {
    let definition = definition(&[("STEP_MAX_ATTEMPTS", "4")]);
    let mut saga = saga_at_step(&definition, 1);
    apply(&definition, &mut saga, Input::Acted(failed(CallFailure::TimedOut)), at(2.0));
    apply(&definition, &mut saga, Input::Inspected(Inspection::Absent), at(3.0));
    for attempt in 2..=4 {
        apply(&definition, &mut saga, Input::Run, at(f64::from(attempt) * 10.0));
        let outcome = apply(
            &definition,
            &mut saga,
            Input::Acted(failed(CallFailure::NotDelivered)),
            at(10.0 * f64::from(attempt)),
        );
        if attempt == 4 {
            assert_eq!(outcome.command, Command::Compensate { step: 1, attempt: 1 }, "{outcome:?}");
        }
    }
    assert_eq!(saga.steps[1].status, StepStatus::Unknown);
}

/// Issue 7's lost shipment: shipping committed, the orchestrator's write after it never
/// happened, and the saga is resumed from a log that says the step is pending.
#[test]
fn a_resumed_saga_reconciles_its_current_step_first_and_compensates_it_when_retries_run_out() {
    let definition = definition(&[("STEP_MAX_ATTEMPTS", "4")]);
    let mut saga = saga_at_step(&definition, 2);
    assert_eq!(saga.steps[2].status, StepStatus::Pending);

    let resumed = apply(&definition, &mut saga, Input::Resumed { previous_owner: Some("a".to_owned()) }, at(5.0));
    assert_eq!(events(&resumed), [(EventKind::Saga, None, EventOutcome::Claimed)]);
    assert_eq!(resumed.events[0].detail.as_deref(), Some("lease of a expired"));
    assert_eq!(resumed.persist, Persist::Saga { progressed: false });
    assert_eq!(resumed.command, Command::Inspect { step: 2 }, "asked before anything else");

    let unreachable =
        apply(&definition, &mut saga, Input::Inspected(Inspection::Unreachable("refused".to_owned())), at(5.0));
    assert!(matches!(unreachable.command, Command::Act { step: 2, attempt: 1, .. }));
    let mut last = apply(&definition, &mut saga, Input::Acted(failed(CallFailure::NotDelivered)), at(5.0));
    for attempt in 2..=4 {
        let run = apply(&definition, &mut saga, Input::Run, at(10.0 * f64::from(attempt)));
        assert!(matches!(run.command, Command::Act { step: 2, .. }), "{run:?}");
        last = apply(
            &definition,
            &mut saga,
            Input::Acted(failed(CallFailure::NotDelivered)),
            at(10.0 * f64::from(attempt)),
        );
    }
    assert_eq!(last.command, Command::Compensate { step: 2, attempt: 1 }, "the shipment that may exist is cancelled");
    assert_eq!(saga.steps[2].status, StepStatus::Unknown);
}

#[test]
fn a_saga_resumed_while_compensating_repeats_its_compensation_call() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 2);
    apply(&definition, &mut saga, Input::Acted(refused()), at(2.0));

    let resumed = apply(&definition, &mut saga, Input::Resumed { previous_owner: None }, at(9.0));

    assert_eq!(resumed.events[0].detail.as_deref(), Some("unowned saga resumed"));
    assert_eq!(resumed.command, Command::Compensate { step: 1, attempt: 1 });
}

#[test]
fn the_deadline_compensates_a_saga_going_forward_but_not_one_past_its_pivot() {
    let definition = definition(&[("SAGA_DEADLINE_MS", "1000")]);
    let mut saga = saga_at_step(&definition, 1);
    apply(&definition, &mut saga, Input::Acted(failed(CallFailure::NotDelivered)), at(0.5));

    let transition = apply(&definition, &mut saga, Input::Run, at(1.5));

    assert_eq!(events(&transition), [(EventKind::Saga, None, EventOutcome::Compensating)]);
    assert_eq!(saga.failure_reason.as_deref(), Some("saga deadline exceeded"));
    assert_eq!(transition.command, Command::Compensate { step: 0, attempt: 1 });

    let definition = definition_with_pivot(&[("SAGA_DEADLINE_MS", "1000")]);
    let mut saga = saga_at_step(&definition, 3);
    apply(&definition, &mut saga, Input::Acted(failed(CallFailure::NotDelivered)), at(0.5));
    let transition = apply(&definition, &mut saga, Input::Run, at(30.0));
    assert!(matches!(transition.command, Command::Act { step: 3, .. }), "past the pivot: {transition:?}");
}

fn definition_with_pivot(env: &[(&str, &str)]) -> SagaDefinition {
    let mut env = env.to_vec();
    env.push(("STEP_SEND_CONFIRMATION_KIND", "retriable"));
    definition(&env)
}

#[test]
fn compensation_failures_are_retried_with_backoff_no_later_than_the_end_of_the_budget() {
    let definition = definition(&[("COMPENSATION_BUDGET_MS", "150")]);
    let mut saga = saga_at_step(&definition, 2);
    apply(&definition, &mut saga, Input::Acted(refused()), at(2.0));

    let first = apply(&definition, &mut saga, Input::Compensated(failed(CallFailure::NotDelivered)), at(2.0));
    assert_eq!(first.command, Command::Wait { until: at(2.1).now }, "half of the 200 ms cap");
    let second = apply(&definition, &mut saga, Input::Compensated(failed(CallFailure::NotDelivered)), at(2.1));
    assert_eq!(second.command, Command::Wait { until: at(2.15).now }, "the budget ends before the backoff");
    assert_eq!(saga.steps[1].status, StepStatus::Compensating);
}

#[test]
fn an_exhausted_budget_dead_letters_the_saga_and_a_retry_gives_compensation_a_new_one() {
    let definition = definition(&[("COMPENSATION_BUDGET_MS", "1000")]);
    let mut saga = saga_at_step(&definition, 2);
    apply(&definition, &mut saga, Input::Acted(refused()), at(2.0));
    apply(&definition, &mut saga, Input::Compensated(failed(CallFailure::NotDelivered)), at(2.5));

    let failed_run = apply(&definition, &mut saga, Input::Run, at(3.5));
    assert_eq!(events(&failed_run), [(EventKind::Saga, None, EventOutcome::Failed)]);
    assert_eq!((failed_run.finished, failed_run.command.clone()), (Some(SagaStatus::Failed), Command::Stop));
    let reason = "create_shipment refused: 402 declined; compensation budget exhausted at process_payment";
    assert_eq!(saga.view().failure_reason.as_deref(), Some(reason));

    let retry =
        OperatorAction { command: OperatorCommand::Retry, operator: "ops".to_owned(), reason: Some("back".to_owned()) };
    let resumed = operate(&definition, &mut saga, &retry, at(60.0)).unwrap();
    assert_eq!(events(&resumed), [(EventKind::Operator, None, EventOutcome::Retry)]);
    assert_eq!(resumed.events[0].actor, Actor::Operator("ops".to_owned()));
    assert_eq!(resumed.command, Command::Compensate { step: 1, attempt: 2 });
    assert_eq!(saga.status, SagaStatus::Compensating);
    assert_eq!(saga.view().failure_reason.as_deref(), Some("create_shipment refused: 402 declined"));
    assert_eq!(saga.compensation_deadline_at, Some(at(61.0).now), "a new budget");
}

#[test]
fn a_cancel_undoes_the_step_that_may_be_in_flight_and_records_who_and_why() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 2);
    let cancel = OperatorAction {
        command: OperatorCommand::Cancel,
        operator: "support-bob".to_owned(),
        reason: Some("changed their mind".to_owned()),
    };

    let transition = operate(&definition, &mut saga, &cancel, at(3.0)).unwrap();

    assert_eq!(
        events(&transition),
        [(EventKind::Operator, None, EventOutcome::Cancel), (EventKind::Saga, None, EventOutcome::Compensating)]
    );
    assert!(transition.events.iter().all(|e| e.actor == Actor::Operator("support-bob".to_owned())));
    assert_eq!(transition.command, Command::Compensate { step: 2, attempt: 1 }, "the shipment call may be in flight");
    assert_eq!(saga.failure_reason.as_deref(), Some("cancelled by support-bob: changed their mind"));
}

#[test]
fn operator_actions_the_state_does_not_allow_are_refused_and_change_nothing() {
    let definition = definition(&[]);
    let retry = OperatorAction { command: OperatorCommand::Retry, operator: "ops".to_owned(), reason: None };
    let cancel = OperatorAction { command: OperatorCommand::Cancel, ..retry.clone() };

    let mut running = saga_at_step(&definition, 1);
    let before = running.clone().view();
    assert_eq!(operate(&definition, &mut running, &retry, at(2.0)), Err(Refusal::NotFailed(SagaStatus::Running)));
    assert_eq!(running.view(), before);

    let mut completed = saga_at_step(&definition, 4);
    assert_eq!(operate(&definition, &mut completed, &cancel, at(2.0)), Err(Refusal::Completed));

    let pivot = definition_with_pivot(&[]);
    let mut past_pivot = saga_at_step(&pivot, 3);
    assert_eq!(operate(&pivot, &mut past_pivot, &cancel, at(2.0)), Err(Refusal::PastPivot("send_confirmation")));

    let mut compensating = saga_at_step(&definition, 2);
    apply(&definition, &mut compensating, Input::Acted(refused()), at(2.0));
    let before = compensating.clone().view();
    let recorded = operate(&definition, &mut compensating, &cancel, at(3.0)).unwrap();
    assert_eq!((recorded.persist, recorded.command), (Persist::Events, Command::Stop), "recorded, nothing changed");
    assert_eq!(compensating.view(), before);
}

#[test]
fn a_step_refused_past_the_pivot_waits_for_an_operator_whose_retry_tries_it_again() {
    let definition = definition_with_pivot(&[]);
    let mut saga = saga_at_step(&definition, 3);
    apply(&definition, &mut saga, Input::Acted(failed(CallFailure::TimedOut)), at(2.0));
    apply(&definition, &mut saga, Input::Inspected(Inspection::Absent), at(3.0));

    let refusal = apply(&definition, &mut saga, Input::Acted(refused()), at(3.0));
    assert_eq!(refusal.finished, Some(SagaStatus::Failed));
    assert_eq!(saga.steps[0].status, StepStatus::Succeeded, "nothing before the pivot is undone");

    let retry = OperatorAction { command: OperatorCommand::Retry, operator: "ops".to_owned(), reason: None };
    let resumed = operate(&definition, &mut saga, &retry, at(9.0)).unwrap();
    assert_eq!(saga.status, SagaStatus::Running);
    assert_eq!(resumed.command, Command::Inspect { step: 3 }, "an earlier attempt may have landed");
}

#[test]
fn a_request_that_cannot_be_built_compensates_what_came_before() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 0);
    let without_total = CallOutcome::Done(json!({ "status": "reserved" }));

    let transition = apply(&definition, &mut saga, Input::Acted(without_total), at(1.0));

    assert_eq!(transition.command, Command::Compensate { step: 0, attempt: 1 });
    assert!(saga.failure_reason.as_deref().unwrap().starts_with("cannot build the process_payment request"));
}

#[test]
fn an_answer_the_state_did_not_ask_for_is_ignored() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 2);
    apply(&definition, &mut saga, Input::Acted(refused()), at(2.0));
    let before = saga.clone().view();

    let transition = apply(&definition, &mut saga, Input::Acted(done()), at(2.0));

    assert!(transition.events.is_empty());
    assert_eq!(transition.command, Command::Compensate { step: 1, attempt: 1 });
    assert_eq!(saga.view(), before);
}

#[test]
fn the_output_of_a_reconciled_step_feeds_the_next_request_like_an_answer_would() {
    let definition = definition(&[]);
    let mut saga = saga_at_step(&definition, 0);
    apply(&definition, &mut saga, Input::Acted(failed(CallFailure::TimedOut)), at(1.0));

    let found = Inspection::Happened(json!({ "total_cents": 777 }));
    let transition = apply(&definition, &mut saga, Input::Inspected(found), at(2.0));

    let Command::Act { body, .. } = transition.command else { panic!("{transition:?}") };
    assert_eq!(body["amount_cents"], Value::from(777));
}
