//! The real executor, group commit and driver registry under a seeded scheduler.
//!
//! `saga_model.rs` tests the state machine against a model of the executor; this test runs the
//! code that ships: two `Executor`s (two replicas) with their real `GroupCommit`, driver
//! registry, recovery claims and operator actions, over a log in memory with the real log's
//! fencing ([`SimStore`]) and four participants with the real idempotency and tombstone rules
//! ([`SimNet`]). Time is tokio's paused clock; one seed picks every fate: which call is answered,
//! lost, refused or left in flight (to land later), when time jumps, when recovery runs, when an
//! operator cancels or retries (through either replica), which log writes fail, lose their
//! acknowledgement, or stall past the lease (a process frozen past its lease). Then the faults
//! stop, everything settles, and the promises are checked:
//! - every saga ends; its timeline has exactly one ending since the last operator retry, and
//!   that ending is the saga's status;
//! - completed: all four effects live; compensated: none (after every late request landed);
//!   compensation newest first;
//! - one driver per saga: never two calls of one saga in flight from one process, never two
//!   saves of one saga in one group commit;
//! - every operator action is answered.
//!
//! Participants also go down for a while (refusing connections, failing their readiness probe):
//! their circuits open, calls wait without being sent, and give up when the step's 10 s retry
//! budget runs out; the tally checks the seeds reach both.
//!
//! It finds issue 16 on the code before the fix: `tests/flaws/issue16.patch` puts back what that
//! code did (an operator's action written beside the driver and a second driver spawned; recovery
//! claiming sagas its own process drives; group commit answering by saga, and the old statement
//! appending a fenced save's events), and then most seeds break a promise:
//! `git apply engine/tests/flaws/issue16.patch && cargo nextest run -p saga-engine
//! executor_sim` (then `git apply -R` it). docs/testing.md has the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, TimeZone, Utc};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use saga_engine::{
    circuits::CircuitConfig,
    config::OrchestratorConfig,
    definition::{ORDER_STEPS, Participant, SagaDefinition, StepDefinition},
    executor::{Executor, ExecutorConfig},
    log::{Claimed, Inserted, Lease, Save},
    machine::{Clock, NewEvent, OperatorAction, OperatorCommand},
    outcome::{CallFailure, CallOutcome, Inspection},
    participants::Participants,
    state::Saga,
    store::{SagaStore, Written},
};
use saga_shared::{
    api::{EventKind, EventOutcome, OrderRequest, SagaStatus},
    config::Env,
};
use serde_json::{Value, json};
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(10);

/// Virtual time (tokio's paused clock) as the machine's clock, and seeded jitter.
#[derive(Clone)]
struct SimClock {
    start: tokio::time::Instant,
    base: DateTime<Utc>,
    rng: Arc<Mutex<StdRng>>,
}

impl SimClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::Duration::from_std(self.start.elapsed()).unwrap()
    }

    fn clock(&self) -> Clock {
        Clock { now: self.now(), jitter: self.rng.lock().unwrap().random() }
    }
}

/// A row of `sagas`.
struct Row {
    saga: Saga,
    owner: Option<String>,
    lease_expires_at: DateTime<Utc>,
}

/// What the next log writes will suffer.
#[derive(Default)]
struct StoreFaults {
    /// Fail, writing nothing.
    fail: u32,
    /// Write, then fail (the acknowledgement is lost).
    lose_ack: u32,
    /// Every operation waits until then (the process is frozen).
    frozen_until: Option<tokio::time::Instant>,
}

#[derive(Default)]
struct Db {
    /// Saves fenced out (the run's variety, checked to be non-zero over all seeds).
    fenced: u64,
    rows: BTreeMap<Uuid, Row>,
    events: Vec<(Uuid, NewEvent)>,
    faults: StoreFaults,
    violations: Vec<String>,
}

/// The saga log in memory, with the fencing of `log.rs`.
#[derive(Clone)]
struct SimStore {
    db: Arc<Mutex<Db>>,
    clock: SimClock,
}

fn lost() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "simulated"))
}

impl SimStore {
    /// Every operation takes a moment (so saves queue into batches), and waits out a freeze.
    async fn round_trip(&self) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        loop {
            let frozen = self.db.lock().unwrap().faults.frozen_until;
            match frozen {
                Some(until) if until > tokio::time::Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    fn lease_from(&self, saga: &Saga) -> DateTime<Utc> {
        saga.next_run_at.max(self.clock.now()) + chrono::Duration::from_std(LEASE).unwrap()
    }
}

impl SagaStore for SimStore {
    async fn insert(
        &self,
        saga: &Saga,
        started: &NewEvent,
        _key: Option<&str>,
        owner: &str,
        lease: Duration,
    ) -> Result<Inserted, sqlx::Error> {
        self.round_trip().await;
        let mut db = self.db.lock().unwrap();
        let lease_expires_at = self.clock.now() + chrono::Duration::from_std(lease).unwrap();
        db.rows.insert(saga.order_id, Row { saga: saga.clone(), owner: Some(owner.to_owned()), lease_expires_at });
        db.events.push((saga.order_id, started.clone()));
        Ok(Inserted::Created)
    }

    async fn save_all(&self, batch: &[Save<'_>], lease: Lease<'_>) -> Result<Vec<Option<Written>>, sqlx::Error> {
        let batch: Vec<(Saga, Vec<NewEvent>)> = batch.iter().map(|(s, _, e)| ((*s).clone(), e.to_vec())).collect();
        self.round_trip().await;
        let mut db = self.db.lock().unwrap();
        if db.faults.fail > 0 {
            db.faults.fail -= 1;
            return Err(lost());
        }
        let mut seen = Vec::new();
        let mut answers = Vec::new();
        let now = self.clock.now();
        for (saga, events) in batch {
            if seen.contains(&saga.order_id) {
                db.violations.push(format!("two saves of saga {} in one group commit", saga.order_id));
            }
            seen.push(saga.order_id);
            let lease_expires_at = self.lease_from(&saga);
            let Some(row) = db.rows.get_mut(&saga.order_id).filter(|row| row.saga.version == saga.version) else {
                db.fenced += 1;
                answers.push(None);
                continue;
            };
            let terminal = saga.status.is_terminal();
            row.saga = saga.clone();
            row.saga.version += 1;
            row.saga.updated_at = now;
            row.owner = (!terminal).then(|| lease.owner.to_owned());
            row.lease_expires_at = lease_expires_at;
            answers.push(Some((row.saga.version, now)));
            db.events.extend(events.into_iter().map(|e| (saga.order_id, e)));
        }
        if db.faults.lose_ack > 0 {
            db.faults.lose_ack -= 1;
            return Err(lost());
        }
        Ok(answers)
    }

    async fn append(&self, order_id: Uuid, events: &[NewEvent], _instance: &str) -> Result<(), sqlx::Error> {
        self.round_trip().await;
        let mut db = self.db.lock().unwrap();
        if db.rows.contains_key(&order_id) {
            db.events.extend(events.iter().map(|e| (order_id, e.clone())));
        }
        Ok(())
    }

    async fn load(&self, order_id: Uuid) -> Result<Option<Saga>, sqlx::Error> {
        self.round_trip().await;
        Ok(self.db.lock().unwrap().rows.get(&order_id).map(|row| row.saga.clone()))
    }

    async fn claim_due(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
        driven_here: &[Uuid],
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        self.round_trip().await;
        let now = self.clock.now();
        let mut db = self.db.lock().unwrap();
        let mut due: Vec<(&Uuid, &mut Row)> = db
            .rows
            .iter_mut()
            .filter(|(id, row)| {
                !row.saga.status.is_terminal()
                    && row.saga.next_run_at <= now
                    && (row.owner.is_none() || row.lease_expires_at < now)
                    && !driven_here.contains(id)
            })
            .collect();
        due.sort_by_key(|(_, row)| row.saga.next_run_at);
        Ok(due
            .into_iter()
            .take(usize::try_from(limit).unwrap())
            .map(|(_, row)| {
                let previous_owner = row.owner.replace(owner.to_owned());
                row.lease_expires_at = now + chrono::Duration::from_std(lease).unwrap();
                row.saga.version += 1;
                Claimed { saga: row.saga.clone(), previous_owner }
            })
            .collect())
    }

    async fn renew(&self, order_id: Uuid, version: i64, lease: Lease<'_>) -> Result<bool, sqlx::Error> {
        self.round_trip().await;
        let until = self.clock.now() + chrono::Duration::from_std(lease.duration).unwrap();
        let mut db = self.db.lock().unwrap();
        let held = db
            .rows
            .get_mut(&order_id)
            .filter(|row| row.saga.version == version && row.owner.as_deref() == Some(lease.owner));
        Ok(held.map(|row| row.lease_expires_at = row.lease_expires_at.max(until)).is_some())
    }

    async fn release(&self, saga: &Saga) -> Result<bool, sqlx::Error> {
        self.round_trip().await;
        let mut db = self.db.lock().unwrap();
        Ok(match db.rows.get_mut(&saga.order_id).filter(|row| row.saga.version == saga.version) {
            Some(row) => {
                row.owner = None;
                row.saga.version += 1;
                true
            }
            None => false,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Done,
    /// Undone, or tombstoned before it ever ran.
    Undone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Put,
    Delete,
    Get,
}

enum Reply {
    Call(tokio::sync::oneshot::Sender<CallOutcome>),
    Inspection(tokio::sync::oneshot::Sender<Inspection>),
}

/// A request that left an orchestrator and has not landed.
struct Request {
    order_id: Uuid,
    step: usize,
    verb: Verb,
    reply: Reply,
}

/// What the scheduler does with a request.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Answered,
    /// Lands; the answer is lost (the connection drops).
    AnswerLost,
    /// Never reaches the participant.
    Refused,
    /// 503 before doing anything.
    ErrorBefore,
}

#[derive(Default)]
struct Net {
    requests: Vec<Request>,
    effects: BTreeMap<(Uuid, usize), Effect>,
    refuses: BTreeMap<Uuid, [bool; 4]>,
    undone_order: BTreeMap<Uuid, Vec<usize>>,
    /// Calls whose caller is still waiting, per (process, saga).
    active: BTreeMap<(String, Uuid), u32>,
    /// Participants (by step) that are down: they refuse connections and fail their probe.
    down: BTreeSet<usize>,
    violations: Vec<String>,
}

/// The four participants as one network; each orchestrator gets a handle naming it.
#[derive(Clone)]
struct SimNet {
    instance: String,
    net: Arc<Mutex<Net>>,
}

/// A call whose caller waits; dropped when the caller stops waiting (answered, timed out, or the
/// call abandoned).
struct Active {
    net: Arc<Mutex<Net>>,
    key: (String, Uuid),
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(count) = self.net.lock().unwrap().active.get_mut(&self.key) {
            *count -= 1;
        }
    }
}

fn record() -> Value {
    json!({ "total_cents": 1299 })
}

impl SimNet {
    fn send(&self, order_id: Uuid, step: &StepDefinition, verb: Verb, reply: Reply) -> Active {
        let step = ORDER_STEPS.iter().position(|s| *s == step.name).unwrap();
        let mut net = self.net.lock().unwrap();
        let key = (self.instance.clone(), order_id);
        let count = net.active.entry(key.clone()).or_default();
        *count += 1;
        if *count > 1 {
            let what = format!("two calls of saga {order_id} in flight from {} at once", self.instance);
            net.violations.push(what);
        }
        net.requests.push(Request { order_id, step, verb, reply });
        Active { net: Arc::clone(&self.net), key }
    }

    fn is_down(&self, step: &StepDefinition) -> bool {
        let index = ORDER_STEPS.iter().position(|s| *s == step.name).unwrap();
        self.net.lock().unwrap().down.contains(&index)
    }

    async fn call(&self, step: &StepDefinition, order_id: Uuid, verb: Verb) -> CallOutcome {
        if self.is_down(step) {
            return CallOutcome::Failed { failure: CallFailure::NotDelivered, detail: "connection refused".into() };
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let _active = self.send(order_id, step, verb, Reply::Call(reply));
        match tokio::time::timeout(step.timeout, answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => CallOutcome::Failed { failure: CallFailure::Unanswered, detail: "connection lost".into() },
            Err(_) => CallOutcome::Failed { failure: CallFailure::TimedOut, detail: "timed out".into() },
        }
    }
}

impl Participants for SimNet {
    async fn act(&self, step: &StepDefinition, order_id: Uuid, _body: &Value) -> CallOutcome {
        self.call(step, order_id, Verb::Put).await
    }

    async fn compensate(&self, step: &StepDefinition, order_id: Uuid) -> CallOutcome {
        self.call(step, order_id, Verb::Delete).await
    }

    async fn inspect(&self, step: &StepDefinition, order_id: Uuid) -> Inspection {
        if self.is_down(step) {
            return Inspection::Unreachable("connection refused".into());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let _active = self.send(order_id, step, Verb::Get, Reply::Inspection(reply));
        match tokio::time::timeout(step.timeout, answer).await {
            Ok(Ok(inspection)) => inspection,
            Ok(Err(_)) => Inspection::Unreachable("connection lost".into()),
            Err(_) => Inspection::Unreachable("timed out".into()),
        }
    }

    async fn probe(&self, participant: &Participant) -> bool {
        let index = saga_shared::suite::PARTICIPANTS.iter().position(|p| p.name == participant.name).unwrap();
        !self.net.lock().unwrap().down.contains(&index)
    }
}

impl Net {
    /// The participant handles a request, with the real ledger's rules.
    fn land(&mut self, order_id: Uuid, step: usize, verb: Verb) -> (CallOutcome, Inspection) {
        let key = (order_id, step);
        let refused = |status: u16| CallOutcome::Refused { status, detail: status.to_string() };
        let effect = self.effects.get(&key).copied();
        let outcome = match (verb, effect) {
            (Verb::Put, None) if self.refuses.get(&order_id).is_some_and(|r| r[step]) => refused(422),
            (Verb::Put, None) => {
                self.effects.insert(key, Effect::Done);
                CallOutcome::Done(record())
            }
            (Verb::Put, Some(Effect::Done)) => CallOutcome::Done(record()),
            (Verb::Put, Some(Effect::Undone)) => refused(409),
            (Verb::Delete, None | Some(Effect::Done)) => {
                if let Some(newer) = (step + 1..4).find(|&j| self.effects.get(&(order_id, j)) == Some(&Effect::Done)) {
                    let what =
                        format!("saga {order_id}: {} undone while {} is live", ORDER_STEPS[step], ORDER_STEPS[newer]);
                    self.violations.push(what);
                }
                self.effects.insert(key, Effect::Undone);
                self.undone_order.entry(order_id).or_default().push(step);
                CallOutcome::Done(record())
            }
            (Verb::Delete, Some(Effect::Undone)) | (Verb::Get, _) => CallOutcome::Done(record()),
        };
        let inspection = match effect {
            None => Inspection::Absent,
            Some(Effect::Done) => Inspection::Happened(record()),
            Some(Effect::Undone) => Inspection::Compensated,
        };
        (outcome, inspection)
    }

    /// Deals with the request at `index` as `fate` says.
    fn deliver(&mut self, index: usize, fate: Fate) {
        let request = self.requests.remove(index);
        let landed = matches!(fate, Fate::Answered | Fate::AnswerLost)
            .then(|| self.land(request.order_id, request.step, request.verb));
        let failed = |failure, detail: &str| CallOutcome::Failed { failure, detail: detail.into() };
        match (fate, request.reply, landed) {
            (Fate::AnswerLost, _, _) => {}
            (_, Reply::Call(reply), Some((outcome, _))) => drop(reply.send(outcome)),
            (_, Reply::Inspection(reply), Some((_, inspection))) => drop(reply.send(inspection)),
            (Fate::Refused, Reply::Call(reply), None) => drop(reply.send(failed(CallFailure::NotDelivered, "refused"))),
            (_, Reply::Call(reply), None) => drop(reply.send(failed(CallFailure::Unanswered, "503"))),
            (_, Reply::Inspection(reply), None) => drop(reply.send(Inspection::Unreachable("503".into()))),
        }
    }
}

type SimExecutor = Executor<SimStore, SimNet>;

fn definition() -> SagaDefinition {
    // A 10 s retry budget, so participants down for a while make steps give up in some runs.
    let env = Env::from_pairs([
        ("SAGA_DEADLINE_MS", "60000"),
        ("COMPENSATION_BUDGET_MS", "60000"),
        ("STEP_RETRY_BUDGET_MS", "10000"),
    ]);
    let config = OrchestratorConfig::from_env(&env, &ORDER_STEPS).unwrap();
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

/// What a run went through: the test checks the seeds covered every kind of event.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    completed: u64,
    compensated: u64,
    claims: u64,
    cancels: u64,
    retries: u64,
    fenced: u64,
    /// Cancels written while the saga was going forward (its call in flight abandoned).
    cancels_going_forward: u64,
    /// Calls held back by an open circuit until their patience ran out (never sent).
    held_until_patience_ran_out: u64,
    /// Steps given up when their retry budget was spent.
    budgets_spent: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.completed += other.completed;
        self.compensated += other.compensated;
        self.claims += other.claims;
        self.cancels += other.cancels;
        self.retries += other.retries;
        self.fenced += other.fenced;
        self.cancels_going_forward += other.cancels_going_forward;
        self.held_until_patience_ran_out += other.held_until_patience_ran_out;
        self.budgets_spent += other.budgets_spent;
    }
}

/// One seeded run: its violations (empty when every promise held) and what it went through.
fn play(seed: u64) -> (Vec<String>, Tally) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    runtime.block_on(run(seed))
}

async fn run(seed: u64) -> (Vec<String>, Tally) {
    let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
    let clock = SimClock {
        start: tokio::time::Instant::now(),
        base: Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap(),
        rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed))),
    };
    let store = Arc::new(SimStore { db: Arc::default(), clock: clock.clone() });
    let net = Arc::new(Mutex::new(Net::default()));
    let replicas: Vec<Arc<SimExecutor>> = ["orchestrator-a", "orchestrator-b"]
        .into_iter()
        .map(|instance| {
            let clock = clock.clone();
            Arc::new(Executor::new(
                Arc::clone(&store),
                definition(),
                SimNet { instance: instance.to_owned(), net: Arc::clone(&net) },
                ExecutorConfig {
                    instance: instance.to_owned(),
                    lease: LEASE,
                    max_in_flight: None,
                    circuits: CircuitConfig {
                        open_after: 2,
                        probe_interval: Duration::from_millis(500),
                        resume_per_sec: 20,
                    },
                },
                Arc::new(move || clock.clock()),
            ))
        })
        .collect();
    let random = |range: std::ops::Range<usize>| rng.lock().unwrap().random_range(range);
    let chance = |p: f64| rng.lock().unwrap().random_bool(p);

    let mut orders = Vec::new();
    for i in 0..6 {
        let order_id = Uuid::from_u128(rng.lock().unwrap().random());
        let refuses = [chance(0.1), chance(0.1), chance(0.1), false];
        net.lock().unwrap().refuses.insert(order_id, refuses);
        replicas[i % 2].place(order_id, order(), None, None).await.unwrap();
        orders.push(order_id);
    }
    let mut operators = Vec::new();
    let operate = |replica: &Arc<SimExecutor>, order_id, command| {
        let replica = Arc::clone(replica);
        let action = OperatorAction { command, operator: "sim".into(), reason: None };
        tokio::spawn(async move { replica.operate(order_id, action).await })
    };

    for _ in 0..400 {
        let replica = &replicas[random(0..2)];
        match random(0..100) {
            0..50 => {
                let pending = net.lock().unwrap().requests.len();
                if pending > 0 {
                    let fate = match random(0..10) {
                        0..6 => Fate::Answered,
                        6 => Fate::AnswerLost,
                        7 => Fate::Refused,
                        _ => Fate::ErrorBefore,
                    };
                    let index = random(0..pending);
                    net.lock().unwrap().deliver(index, fate);
                }
            }
            50..60 => tokio::time::sleep(Duration::from_millis(random(10..3000) as u64)).await,
            60..63 => {
                // The process freezes past its lease: nothing it does reaches the log meanwhile.
                let until = tokio::time::Instant::now() + LEASE + Duration::from_secs(1);
                store.db.lock().unwrap().faults.frozen_until = Some(until);
                let recover = Arc::clone(replica);
                tokio::spawn(async move { recover.recover(100).await });
            }
            63..71 => {
                let recover = Arc::clone(replica);
                tokio::spawn(async move { recover.recover(100).await });
            }
            71..73 => operators.push(operate(replica, orders[random(0..orders.len())], OperatorCommand::Cancel)),
            73 => operators.push(operate(replica, orders[random(0..orders.len())], OperatorCommand::Retry)),
            74..78 => store.db.lock().unwrap().faults.fail += 1,
            78..82 => store.db.lock().unwrap().faults.lose_ack += 1,
            82..84 => {
                // A participant goes down (refusing connections, failing its probe) or comes back.
                let step = random(0..4);
                let mut net = net.lock().unwrap();
                if !net.down.remove(&step) {
                    net.down.insert(step);
                }
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // Faults stop: every request is answered (late ones land), recovery claims what nobody
    // drives, an operator retries what failed.
    store.db.lock().unwrap().faults = StoreFaults::default();
    net.lock().unwrap().down.clear();
    let mut violations = Vec::new();
    let mut settled = false;
    for _ in 0..3000 {
        while !net.lock().unwrap().requests.is_empty() {
            net.lock().unwrap().deliver(0, Fate::Answered);
        }
        let statuses: Vec<(Uuid, SagaStatus)> =
            store.db.lock().unwrap().rows.iter().map(|(id, row)| (*id, row.saga.status)).collect();
        let idle = replicas.iter().all(|r| r.in_flight() == 0);
        if idle && statuses.iter().all(|(_, s)| matches!(s, SagaStatus::Completed | SagaStatus::Compensated)) {
            settled = true;
            break;
        }
        for (order_id, status) in statuses {
            if status == SagaStatus::Failed && idle {
                net.lock().unwrap().refuses.insert(order_id, [false; 4]);
                operators.push(operate(&replicas[0], order_id, OperatorCommand::Retry));
            }
        }
        for replica in &replicas {
            let _ = replica.recover(100).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !settled {
        violations.push("the sagas never all ended".to_owned());
    }
    for operator in operators {
        if !operator.is_finished() {
            violations.push("an operator action was never answered".to_owned());
        }
    }
    let db = store.db.lock().unwrap();
    audit(&db, &net.lock().unwrap(), &mut violations);
    (violations, tally(&db))
}

fn tally(db: &Db) -> Tally {
    let mut tally = Tally { fenced: db.fenced, ..Tally::default() };
    for (_, event) in &db.events {
        match (event.kind, event.outcome) {
            (EventKind::Saga, EventOutcome::Completed) => tally.completed += 1,
            (EventKind::Saga, EventOutcome::Compensated) => tally.compensated += 1,
            (EventKind::Saga, EventOutcome::Claimed) => tally.claims += 1,
            (EventKind::Operator, EventOutcome::Cancel) => tally.cancels += 1,
            (EventKind::Operator, EventOutcome::Retry) => tally.retries += 1,
            (EventKind::Saga, EventOutcome::Compensating)
                if event.detail.as_deref().is_some_and(|d| d.contains(" failed after ")) =>
            {
                tally.budgets_spent += 1;
            }
            _ => {}
        }
        if event.detail.as_deref().is_some_and(|d| d.contains("(circuit open); not sent")) {
            tally.held_until_patience_ran_out += 1;
        }
    }
    // A cancel of a saga going forward is followed at once by its `compensating` event.
    for pair in db.events.windows(2) {
        if pair[0].1.outcome == EventOutcome::Cancel && pair[1].1.outcome == EventOutcome::Compensating {
            tally.cancels_going_forward += 1;
        }
    }
    tally
}

fn audit(db: &Db, net: &Net, violations: &mut Vec<String>) {
    violations.extend(db.violations.iter().cloned());
    violations.extend(net.violations.iter().cloned());
    for (order_id, row) in &db.rows {
        let live: Vec<&str> = (0..4)
            .filter(|&i| net.effects.get(&(*order_id, i)) == Some(&Effect::Done))
            .map(|i| ORDER_STEPS[i])
            .collect();
        match row.saga.status {
            SagaStatus::Completed if live.len() != 4 => {
                violations.push(format!("saga {order_id} completed without all four effects (live: {live:?})"));
            }
            SagaStatus::Compensated if !live.is_empty() => {
                violations.push(format!("saga {order_id} compensated with live effects: {live:?}"));
            }
            _ => {}
        }
        if let Some(order) = net.undone_order.get(order_id)
            && order.windows(2).any(|w| w[0] <= w[1])
        {
            violations.push(format!("saga {order_id} compensated out of order: {order:?}"));
        }
        let mut endings = Vec::new();
        for (_, event) in db.events.iter().filter(|(id, _)| id == order_id) {
            match (event.kind, event.outcome) {
                (EventKind::Operator, EventOutcome::Retry) => endings.clear(),
                (EventKind::Saga, EventOutcome::Completed | EventOutcome::Compensated | EventOutcome::Failed) => {
                    endings.push(event.outcome);
                }
                _ => {}
            }
        }
        let status = match row.saga.status {
            SagaStatus::Completed => Some(EventOutcome::Completed),
            SagaStatus::Compensated => Some(EventOutcome::Compensated),
            SagaStatus::Failed => Some(EventOutcome::Failed),
            _ => None,
        };
        if endings.len() != 1 || Some(endings[0]) != status {
            violations.push(format!("saga {order_id} is {} with endings {endings:?}", row.saga.status));
        }
    }
    violations.sort();
    violations.dedup();
}

/// How many seeds broke each kind of promise (ids taken out).
fn kinds(failures: &[(u64, Vec<String>)]) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for (_, violations) in failures {
        let mut seen: Vec<String> = violations
            .iter()
            .map(|v| {
                v.split_whitespace()
                    .filter(|w| Uuid::parse_str(w.trim_end_matches(':')).is_err())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        seen.sort();
        seen.dedup();
        for kind in seen {
            *kinds.entry(kind).or_default() += 1;
        }
    }
    kinds
}

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(300)
}

#[test]
fn every_seeded_run_of_the_real_executor_keeps_the_promises() {
    let mut failures = Vec::new();
    let mut total = Tally::default();
    for seed in 0..seeds() {
        let (violations, tally) = play(seed);
        total.add(tally);
        if !violations.is_empty() {
            failures.push((seed, violations));
        }
    }
    eprintln!("{total:?}");
    assert!(
        failures.is_empty(),
        "{} of {} seeds broke a promise; by kind: {:#?}\nfirst: {:#?}",
        failures.len(),
        seeds(),
        kinds(&failures),
        failures.first()
    );
    let Tally {
        completed,
        compensated,
        claims,
        cancels,
        retries,
        fenced,
        cancels_going_forward,
        held_until_patience_ran_out,
        budgets_spent,
    } = total;
    for (what, count) in [
        ("completed", completed),
        ("compensated", compensated),
        ("claims", claims),
        ("cancels", cancels),
        ("retries", retries),
        ("fenced saves", fenced),
        ("cancels going forward", cancels_going_forward),
        ("calls held by an open circuit until their patience ran out", held_until_patience_ran_out),
        ("retry budgets spent", budgets_spent),
    ] {
        assert!(count > 0, "no run had any {what}: the scheduler does not exercise it ({total:?})");
    }
}
