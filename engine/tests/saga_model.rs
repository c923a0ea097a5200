//! The saga state machine tested as a model: random runs of call outcomes, lost answers, late
//! deliveries, drivers that die or are paused, log writes that fail (or commit unacknowledged),
//! claims and operator actions, against four simulated participants that keep the real
//! idempotency and tombstone rules. After each run, once faults stop, the saga must end and the
//! promises of DESIGN.md §5 must hold:
//! - a completed saga has all four effects; a compensated one leaves none that any call may
//!   have made (requests still in flight land after the end, to try the tombstones);
//! - compensation runs newest first;
//! - the current owner never attempts a step after its tombstone;
//! - the timeline says completed exactly once, and never an action after its compensation.
//!
//! The simulation plays the executor's contract (`saga_engine::machine` docs): write before acting,
//! stop when a write fails or is fenced out, resume claimed sagas with `Input::Resumed`.
//! `Flaw::TrustTheLog` plays the executor as it was before issue 7 (a claim resumed with
//! `Input::Run`): the model must find the lost shipment of that issue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::{
    prelude::*,
    test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner},
};
use saga_engine::{
    config::OrchestratorConfig,
    definition::{ORDER_STEPS, SagaDefinition, StepKind},
    machine::{self, Clock, Command, Input, NewEvent, OperatorAction, OperatorCommand, Persist},
    outcome::{CallFailure, CallOutcome, Inspection},
    state::Saga,
};
use saga_shared::{
    api::{EventKind, EventOutcome, OrderRequest, SagaStatus},
    config::Env,
};
use serde_json::json;
use uuid::Uuid;

/// A participant's record of the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Absent,
    Done,
    /// Undone, or tombstoned before it ever ran.
    Undone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Put,
    Delete,
}

/// A request that left the orchestrator and has not landed yet.
#[derive(Debug, Clone, Copy)]
struct Request {
    step: usize,
    verb: Verb,
}

/// What happens to one call.
#[derive(Debug, Clone, Copy)]
enum CallFate {
    /// Delivered, answered.
    Answered,
    /// Connection refused: never delivered.
    NotDelivered,
    /// Timed out and never delivered.
    LostRequest,
    /// Delivered, the answer lost: a timeout.
    LostAnswer,
    /// Still in the network: it may land any time later (or never); a timeout now.
    Delayed,
    /// 503 before doing anything.
    ErrorBefore,
    /// Done, then 503.
    ErrorAfter,
    /// The driver dies right after sending; the request lands now, later or never.
    DriverDies(Landing),
}

#[derive(Debug, Clone, Copy)]
enum Landing {
    Now,
    Later,
    Never,
}

/// What happens to one write of the log.
#[derive(Debug, Clone, Copy)]
enum WriteFate {
    Ok,
    /// Nothing written; the driver stops.
    Fails,
    /// Written, but the driver never hears so and stops.
    CommitsUnacknowledged,
}

/// One thing that happens in a run.
#[derive(Debug, Clone)]
enum Chaos {
    /// A driver takes one turn: decide, write, act.
    Turn { driver: u8, write: WriteFate, call: CallFate },
    /// A driver dies between turns, with whatever outcome it had not written yet.
    Crash { driver: u8 },
    /// Recovery claims the saga (its owner's lease expired: dead, or merely paused).
    Claim,
    /// An operator cancels.
    Cancel,
    /// An operator retries.
    Retry,
    /// A request in flight lands.
    Deliver { request: u8 },
    /// Time passes.
    Advance { millis: u32 },
}

/// The executor before issue 7, to show the model finds what that code got wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    None,
    /// A claimed saga is driven as if its log knew of every call made.
    TrustTheLog,
}

/// A run's script and the participants' business answers.
#[derive(Debug, Clone)]
struct Scenario {
    /// Whether each participant refuses the order (402, 409, 422…).
    refuses: [bool; 4],
    /// Whether a step after the pivot is configured (send_confirmation retriable).
    pivot: bool,
    /// Whether requests still in flight at the end land (after the saga ended) or are lost.
    late_landing: bool,
    chaos: Vec<Chaos>,
}

#[derive(Debug)]
struct Driver {
    saga: Saga,
    input: Input,
}

struct World {
    definition: SagaDefinition,
    flaw: Flaw,
    /// The log: the saga as last written, and its timeline.
    log: Saga,
    events: Vec<NewEvent>,
    effects: [Effect; 4],
    refuses: [bool; 4],
    /// Steps in the order their effect first became undone (or tombstoned).
    undone_order: Vec<usize>,
    in_flight: Vec<Request>,
    drivers: Vec<Driver>,
    now: DateTime<Utc>,
    violations: Vec<String>,
}

fn order() -> OrderRequest {
    serde_json::from_value(json!({
        "customer_id": "alice",
        "items": [{ "sku": "WIDGET-1", "quantity": 1 }],
        "shipping_address": { "name": "A", "line1": "B", "city": "C", "postal_code": "D", "country": "FR" }
    }))
    .unwrap()
}

fn definition(pivot: bool) -> SagaDefinition {
    // A retry budget of 5 s (about nine attempts at this jitter) so that runs give up on a step
    // by time as well as by refusal; no attempt cap, as by default.
    let mut env =
        vec![("SAGA_DEADLINE_MS", "30000"), ("COMPENSATION_BUDGET_MS", "60000"), ("STEP_RETRY_BUDGET_MS", "5000")];
    if pivot {
        env.push(("STEP_SEND_CONFIRMATION_KIND", "retriable"));
    }
    let config = OrchestratorConfig::from_env(&Env::from_pairs(env), &ORDER_STEPS).unwrap();
    SagaDefinition::order_saga(&config).unwrap()
}

impl World {
    /// `POST /orders` has written the saga and drives it at once.
    fn new(scenario: &Scenario, flaw: Flaw) -> Self {
        let definition = definition(scenario.pivot);
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let (log, started) = machine::start(&definition, Uuid::nil(), order(), Clock { now, jitter: 0.5 });
        let drivers = vec![Driver { saga: log.clone(), input: Input::Run }];
        Self {
            definition,
            flaw,
            log,
            events: vec![started],
            effects: [Effect::Absent; 4],
            refuses: scenario.refuses,
            undone_order: Vec::new(),
            in_flight: Vec::new(),
            drivers,
            now,
            violations: Vec::new(),
        }
    }

    fn clock(&self) -> Clock {
        Clock { now: self.now, jitter: 0.5 }
    }

    fn run(&mut self, chaos: &Chaos) {
        match *chaos {
            Chaos::Turn { driver, write, call } if !self.drivers.is_empty() => {
                let index = usize::from(driver) % self.drivers.len();
                self.turn(index, write, call);
            }
            Chaos::Crash { driver } if !self.drivers.is_empty() => {
                let index = usize::from(driver) % self.drivers.len();
                self.drivers.remove(index);
            }
            Chaos::Turn { .. } | Chaos::Crash { .. } => {}
            Chaos::Claim => self.claim(),
            Chaos::Cancel => self.operate(OperatorCommand::Cancel),
            Chaos::Retry => self.operate(OperatorCommand::Retry),
            Chaos::Deliver { request } if !self.in_flight.is_empty() => {
                let request = self.in_flight.remove(usize::from(request) % self.in_flight.len());
                self.land(request);
            }
            Chaos::Deliver { .. } => {}
            Chaos::Advance { millis } => self.now += Duration::milliseconds(i64::from(millis)),
        }
    }

    /// One turn of the executor's loop for driver `index`.
    fn turn(&mut self, index: usize, write: WriteFate, fate: CallFate) {
        let mut driver = self.drivers.remove(index);
        let input = std::mem::replace(&mut driver.input, Input::Run);
        let transition = machine::apply(&self.definition, &mut driver.saga, input, self.clock());
        match transition.persist {
            Persist::Nothing => {}
            Persist::Events => self.events.extend(transition.events.iter().cloned()),
            Persist::Saga { .. } => {
                let fenced = driver.saga.version != self.log.version;
                if fenced || matches!(write, WriteFate::Fails) {
                    return; // the driver stops; its saga is left to recovery
                }
                driver.saga.version += 1;
                self.log = driver.saga.clone();
                self.events.extend(transition.events.iter().cloned());
                if matches!(write, WriteFate::CommitsUnacknowledged) {
                    return;
                }
            }
        }
        let owner = driver.saga.version == self.log.version;
        let next = match transition.command {
            Command::Act { step, .. } => {
                if owner && self.effects[step] == Effect::Undone {
                    self.violation(format!("{} attempted after its tombstone", ORDER_STEPS[step]));
                }
                match self.call(Request { step, verb: Verb::Put }, fate) {
                    Some(outcome) => Input::Acted(outcome),
                    None => return,
                }
            }
            Command::Inspect { step } => match self.inspect(step, fate) {
                Some(inspection) => Input::Inspected(inspection),
                None => return,
            },
            Command::Compensate { step, .. } => {
                let newer_live = (step + 1..4).find(|&j| self.effects[j] == Effect::Done && self.compensatable(j));
                if let Some(newer) = newer_live {
                    self.violation(format!("compensating {} while {} is live", ORDER_STEPS[step], ORDER_STEPS[newer]));
                }
                match self.call(Request { step, verb: Verb::Delete }, fate) {
                    Some(outcome) => Input::Compensated(outcome),
                    None => return,
                }
            }
            Command::Wait { until } => {
                self.now = self.now.max(until);
                Input::Run
            }
            Command::Stop => return,
        };
        driver.input = next;
        self.drivers.insert(index, driver);
    }

    fn compensatable(&self, step: usize) -> bool {
        self.definition.steps[step].kind == StepKind::Compensatable
    }

    /// A call's outcome as the driver sees it; `None` if the driver died waiting for it.
    fn call(&mut self, request: Request, fate: CallFate) -> Option<CallOutcome> {
        let failed = |failure| CallOutcome::Failed { failure, detail: format!("{fate:?}") };
        Some(match fate {
            CallFate::Answered => self.land(request),
            CallFate::NotDelivered => failed(CallFailure::NotDelivered),
            CallFate::LostRequest => failed(CallFailure::TimedOut),
            CallFate::LostAnswer => {
                self.land(request);
                failed(CallFailure::TimedOut)
            }
            CallFate::Delayed => {
                self.in_flight.push(request);
                failed(CallFailure::TimedOut)
            }
            CallFate::ErrorBefore => failed(CallFailure::Unanswered),
            CallFate::ErrorAfter => {
                self.land(request);
                failed(CallFailure::Unanswered)
            }
            CallFate::DriverDies(landing) => {
                match landing {
                    Landing::Now => {
                        self.land(request);
                    }
                    Landing::Later => self.in_flight.push(request),
                    Landing::Never => {}
                }
                return None;
            }
        })
    }

    fn inspect(&mut self, step: usize, fate: CallFate) -> Option<Inspection> {
        Some(match fate {
            CallFate::Answered => match self.effects[step] {
                Effect::Absent => Inspection::Absent,
                Effect::Done => Inspection::Happened(record()),
                Effect::Undone => Inspection::Compensated,
            },
            CallFate::DriverDies(_) => return None,
            _ => Inspection::Unreachable(format!("{fate:?}")),
        })
    }

    /// The participant handles a request, with the real ledger's rules.
    fn land(&mut self, request: Request) -> CallOutcome {
        let step = request.step;
        let refused = |status: u16| CallOutcome::Refused { status, detail: format!("{status}") };
        match (request.verb, self.effects[step]) {
            (Verb::Put, Effect::Absent) if self.refuses[step] => refused(422),
            (Verb::Put, Effect::Absent) => {
                self.effects[step] = Effect::Done;
                CallOutcome::Done(record())
            }
            (Verb::Put, Effect::Done) => CallOutcome::Done(record()),
            (Verb::Put, Effect::Undone) => refused(409),
            (Verb::Delete, Effect::Absent | Effect::Done) => {
                self.effects[step] = Effect::Undone;
                self.undone_order.push(step);
                CallOutcome::Done(record())
            }
            (Verb::Delete, Effect::Undone) => CallOutcome::Done(record()),
        }
    }

    /// Recovery takes the saga over from the log (a version bump fences every other driver).
    fn claim(&mut self) {
        if self.log.status.is_terminal() {
            return;
        }
        self.log.version += 1;
        let input = match self.flaw {
            Flaw::None => Input::Resumed { previous_owner: Some("previous".to_owned()) },
            Flaw::TrustTheLog => Input::Run,
        };
        self.drivers.push(Driver { saga: self.log.clone(), input });
    }

    /// An operator's request, as the route handles it: decided on the log, written, driven.
    fn operate(&mut self, command: OperatorCommand) {
        let mut saga = self.log.clone();
        let action = OperatorAction { command, operator: "ops".to_owned(), reason: None };
        let Ok(transition) = machine::operate(&self.definition, &mut saga, &action, self.clock()) else { return };
        match transition.persist {
            Persist::Nothing => {}
            Persist::Events => self.events.extend(transition.events),
            Persist::Saga { .. } => {
                saga.version += 1;
                self.log = saga.clone();
                self.events.extend(transition.events);
                self.drivers.push(Driver { saga, input: Input::Run });
            }
        }
    }

    /// Faults stop: drivers run undisturbed, recovery claims what nobody drives, an operator
    /// mends and retries what failed. Requests still in flight land at the very end, if they land.
    fn settle(&mut self, late_landing: bool) {
        for _ in 0..10_000 {
            if !self.drivers.is_empty() {
                self.turn(0, WriteFate::Ok, CallFate::Answered);
            } else if !self.log.status.is_terminal() {
                self.claim();
            } else if self.log.status == SagaStatus::Failed {
                // The operator mends what made it fail (a refusal past the pivot), then retries.
                self.refuses = [false; 4];
                self.operate(OperatorCommand::Retry);
            } else {
                if late_landing {
                    for request in std::mem::take(&mut self.in_flight) {
                        self.land(request);
                    }
                }
                return;
            }
        }
        self.violation(format!("the saga never ended: {:?}", self.log.view()));
    }

    fn violation(&mut self, what: String) {
        if !self.violations.contains(&what) {
            self.violations.push(what);
        }
    }

    /// Everything that must hold once the run is over; empty when all does.
    fn audit(&self) -> Vec<String> {
        let mut broken = self.violations.clone();
        let live: Vec<&str> = (0..4).filter(|&i| self.effects[i] == Effect::Done).map(|i| ORDER_STEPS[i]).collect();
        match self.log.status {
            SagaStatus::Completed if live.len() != 4 => {
                broken.push(format!("completed saga without all four effects (live: {live:?})"));
            }
            SagaStatus::Compensated if !live.is_empty() => {
                broken.push(format!("compensated saga with a live effect: {live:?}"));
            }
            SagaStatus::Completed | SagaStatus::Compensated => {}
            other => broken.push(format!("saga ended {other}")),
        }
        if self.undone_order.windows(2).any(|w| w[0] <= w[1]) {
            broken.push(format!("compensation not newest first: {:?}", self.undone_order));
        }
        let saga_events =
            |outcome| self.events.iter().filter(|e| e.kind == EventKind::Saga && e.outcome == outcome).count();
        if self.log.status == SagaStatus::Completed && saga_events(EventOutcome::Completed) != 1 {
            broken.push("the timeline does not say completed exactly once".to_owned());
        }
        let mut compensated_steps = Vec::new();
        for event in &self.events {
            match (event.kind, event.step) {
                (EventKind::Compensation, Some(step)) => compensated_steps.push(step),
                (EventKind::Action, Some(step)) if compensated_steps.contains(&step) => {
                    broken.push(format!("the timeline has an action of {step} after its compensation"));
                }
                _ => {}
            }
        }
        broken
    }
}

fn record() -> serde_json::Value {
    json!({ "total_cents": 1299 })
}

/// Plays `scenario` to the end and returns what broke.
fn play(scenario: &Scenario, flaw: Flaw) -> (Vec<String>, World) {
    let mut world = World::new(scenario, flaw);
    for chaos in &scenario.chaos {
        world.run(chaos);
    }
    world.settle(scenario.late_landing);
    (world.audit(), world)
}

fn call_fate() -> impl Strategy<Value = CallFate> {
    prop_oneof![
        12 => Just(CallFate::Answered),
        3 => Just(CallFate::NotDelivered),
        1 => Just(CallFate::LostRequest),
        1 => Just(CallFate::LostAnswer),
        1 => Just(CallFate::Delayed),
        1 => Just(CallFate::ErrorBefore),
        1 => Just(CallFate::ErrorAfter),
        1 => Just(CallFate::DriverDies(Landing::Now)),
        1 => Just(CallFate::DriverDies(Landing::Later)),
        1 => Just(CallFate::DriverDies(Landing::Never)),
    ]
}

fn write_fate() -> impl Strategy<Value = WriteFate> {
    prop_oneof![12 => Just(WriteFate::Ok), 1 => Just(WriteFate::Fails), 1 => Just(WriteFate::CommitsUnacknowledged)]
}

fn chaos() -> impl Strategy<Value = Chaos> {
    prop_oneof![
        16 => (any::<u8>(), write_fate(), call_fate()).prop_map(|(driver, write, call)| Chaos::Turn { driver, write, call }),
        1 => any::<u8>().prop_map(|driver| Chaos::Crash { driver }),
        2 => Just(Chaos::Claim),
        1 => Just(Chaos::Cancel),
        1 => Just(Chaos::Retry),
        2 => any::<u8>().prop_map(|request| Chaos::Deliver { request }),
        1 => (0u32..40_000).prop_map(|millis| Chaos::Advance { millis }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let refusal = prop_oneof![6 => Just(false), 1 => Just(true)];
    (
        [refusal.clone(), refusal.clone(), refusal.clone(), refusal],
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(chaos(), 0..80),
    )
        .prop_map(|(refuses, pivot, late_landing, chaos)| Scenario { refuses, pivot, late_landing, chaos })
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(4000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn every_run_ends_with_the_promises_kept(scenario in scenario()) {
        let (broken, world) = play(&scenario, Flaw::None);
        prop_assert!(broken.is_empty(), "{broken:#?}\nfinal saga: {:#?}\neffects: {:?}", world.log.view(), world.effects);
    }
}

/// Issue 7's case, as it happened: shipping commits, the write of its outcome fails, the saga
/// is claimed, and shipping refuses connections until the retry budget runs out.
fn lost_shipment() -> Scenario {
    let turn = |write, call| Chaos::Turn { driver: 0, write, call };
    let mut chaos = vec![
        turn(WriteFate::Ok, CallFate::Answered),    // reserve_inventory
        turn(WriteFate::Ok, CallFate::Answered),    // process_payment
        turn(WriteFate::Ok, CallFate::Answered),    // create_shipment: shipping commits
        turn(WriteFate::Fails, CallFate::Answered), // its outcome is never written
        Chaos::Claim,
    ];
    chaos.extend(std::iter::repeat_n(turn(WriteFate::Ok, CallFate::NotDelivered), 40));
    Scenario { refuses: [false; 4], pivot: false, late_landing: false, chaos }
}

#[test]
fn issue_7s_lost_shipment_is_cancelled() {
    let (broken, world) = play(&lost_shipment(), Flaw::None);
    assert!(broken.is_empty(), "{broken:#?}");
    assert_eq!(world.log.status, SagaStatus::Compensated);
    assert_eq!(world.effects, [Effect::Undone, Effect::Undone, Effect::Undone, Effect::Absent]);
}

#[test]
fn issue_7s_lost_shipment_is_what_a_resume_that_trusts_its_log_leaves_behind() {
    let (broken, world) = play(&lost_shipment(), Flaw::TrustTheLog);
    assert_eq!(world.log.status, SagaStatus::Compensated);
    assert_eq!(
        broken,
        [
            "compensating process_payment while create_shipment is live",
            "compensating reserve_inventory while create_shipment is live",
            "compensated saga with a live effect: [\"create_shipment\"]"
        ]
    );
}

/// The property test is not vacuous: run against the executor as it was before issue 7, a
/// search from a fixed seed finds a saga compensated with a live effect.
#[test]
fn the_model_search_finds_issue_7s_bug_in_the_code_before_the_fix() {
    let config = Config { cases: 20_000, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = runner.run(&scenario(), |scenario| {
        let (broken, _) = play(&scenario, Flaw::TrustTheLog);
        prop_assert!(broken.is_empty(), "{broken:?}");
        Ok(())
    });
    match result {
        Err(TestError::Fail(reason, minimal)) => {
            assert!(reason.message().contains("compensated saga with a live effect"), "{reason}\n{minimal:#?}");
        }
        other => panic!("the flawed executor passed the model: {other:?}"),
    }
}
