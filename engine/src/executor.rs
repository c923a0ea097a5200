//! Drives sagas: the I/O around the state machine. Each turn applies one input to the machine,
//! writes what it says to write (before anything else), then makes the call it asks for and
//! feeds the outcome back. Every decision is the machine's ([`super::machine`]); this module
//! only calls, writes, sleeps and counts.
//!
//! **One driver per saga** ([`super::drivers`]): a saga driven here has one task, and everything
//! else for it (an operator's action, a recovery claim) is handed to that task's mailbox. The
//! driver reads its mailbox while a call or a backoff is under way: an operator's cancel takes
//! effect at once (the call in flight is abandoned, its step marked possibly done by the
//! machine, and compensation begins), and nothing else ever writes the saga from this process.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use chrono::{DateTime, Utc};
use saga_shared::{api::OrderRequest, api::OrderView, telemetry};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument as _;
use uuid::Uuid;

use super::{
    circuits::{CircuitConfig, Circuits, Health},
    definition::{Participant, SagaDefinition, StepDefinition},
    drivers::{Drivers, Mailbox, Message, OperateError, OperateReply},
    group_commit::GroupCommit,
    log::{Inserted, Lease},
    machine::{self, Clock, Command, Input, OperatorAction, Persist, Transition},
    outcome::{CallFailure, CallOutcome, Inspection},
    participants::Participants,
    state::Saga,
    store::SagaStore,
    waiters::Waiters,
};
use crate::metric_definitions as m;

/// Where the executor's decisions get the time and their jitter ([`Clock::system`] in the
/// service; a seeded, simulated clock in the executor simulation).
pub type ClockSource = Arc<dyn Fn() -> Clock + Send + Sync>;

/// How an executor runs.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// This instance's name (owner of its leases, actor of its events).
    pub instance: String,
    /// The lease it takes on the sagas it drives.
    pub lease: std::time::Duration,
    /// Admission limit: sagas driven here at once (`None`: no limit). Recovery claims respect
    /// it too.
    pub max_in_flight: Option<usize>,
    /// How the participants' circuits open, probe and let held calls go.
    pub circuits: CircuitConfig,
}

/// Runs sagas as tasks of this process.
pub struct Executor<S, P> {
    store: Arc<S>,
    definition: SagaDefinition,
    participants: Arc<P>,
    circuits: Arc<Circuits>,
    config: ExecutorConfig,
    clock: ClockSource,
    tasks: TaskTracker,
    stopping: CancellationToken,
    waiters: Waiters,
    drivers: Drivers,
    /// Orders admitted and still being written: they count against the admission limit until
    /// their driver does (see [`Executor::admit`]).
    placing: AtomicUsize,
    writer: GroupCommit,
}

/// An order's place under the admission limit while it is written; dropped once its driver
/// counts it (or it was refused or replayed).
#[derive(Debug)]
pub struct Admission<'a> {
    placing: &'a AtomicUsize,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.placing.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `POST /orders` past the admission limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded {
    /// Sagas driven here, and orders being written.
    pub in_flight: usize,
    /// `MAX_IN_FLIGHT_SAGAS`.
    pub limit: usize,
}

impl<S, P> std::fmt::Debug for Executor<S, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Why a driver stops before its saga is terminal.
#[derive(Debug)]
enum Stop {
    /// Someone else wrote first (another instance's claim or operator): they drive it now.
    Fenced,
    /// The log could not be written: the lease expires and whoever resumes it reconciles.
    Database(sqlx::Error),
    /// This process is shutting down: the saga is released for another instance.
    ShuttingDown,
}

impl Stop {
    /// What an operator whose action could not be written is told.
    fn into_operate_error(self) -> OperateError {
        match self {
            Stop::Database(err) => OperateError::Database(err),
            Stop::Fenced | Stop::ShuttingDown => OperateError::ShuttingDown,
        }
    }

    /// [`Self::into_operate_error`] for a stop the driver still needs.
    fn clone_for_operator(&self) -> OperateError {
        let copy = match self {
            Stop::Database(err) => Stop::Database(clone_error(err)),
            Stop::Fenced => Stop::Fenced,
            Stop::ShuttingDown => Stop::ShuttingDown,
        };
        copy.into_operate_error()
    }
}

/// What a driver does next: decide on an input, or carry out a command already decided (and
/// written).
enum Next {
    Decide(Input),
    Carry(Command),
}

/// A new order's fate.
#[derive(Debug)]
pub enum Placed {
    /// Written and driven here; its first view.
    Created(OrderView),
    /// Its idempotency key placed this same order before: that order's view.
    Replayed(OrderView),
    /// Its idempotency key placed another order (this id) with another body.
    KeyReused(Uuid),
}

impl<S: SagaStore, P: Participants> Executor<S, P> {
    /// An executor writing to `store`, calling `participants`.
    pub fn new(
        store: Arc<S>,
        definition: SagaDefinition,
        participants: P,
        config: ExecutorConfig,
        clock: ClockSource,
    ) -> Self {
        let writer = GroupCommit::start(Arc::clone(&store), config.instance.clone(), config.lease);
        let circuits = Arc::new(Circuits::new(
            config.circuits,
            definition.steps.iter().map(|step| (step.participant.name, step.name)),
        ));
        let participants = Arc::new(participants);
        let stopping = CancellationToken::new();
        let mut probed: Vec<Participant> = Vec::new();
        for step in &definition.steps {
            if !probed.iter().any(|p| p.name == step.participant.name) {
                probed.push(step.participant.clone());
            }
        }
        tokio::spawn(probe_open_circuits(Arc::clone(&circuits), Arc::clone(&participants), probed, stopping.clone()));
        Self {
            store,
            writer,
            definition,
            participants,
            circuits,
            config,
            clock,
            tasks: TaskTracker::new(),
            stopping,
            waiters: Waiters::default(),
            drivers: Drivers::default(),
            placing: AtomicUsize::new(0),
        }
    }

    /// Requests waiting for sagas of this process to finish.
    pub fn waiters(&self) -> &Waiters {
        &self.waiters
    }

    /// This instance's name (owner of its leases, actor of its events).
    pub fn instance(&self) -> &str {
        &self.config.instance
    }

    /// The saga definition.
    pub fn definition(&self) -> &SagaDefinition {
        &self.definition
    }

    /// The lease this instance takes on the sagas it drives.
    pub fn lease(&self) -> Lease<'_> {
        Lease { owner: &self.config.instance, duration: self.config.lease }
    }

    /// The participants' circuits as this process sees them.
    pub fn circuits(&self) -> Arc<Circuits> {
        Arc::clone(&self.circuits)
    }

    /// How many sagas have a driver here.
    pub fn in_flight(&self) -> usize {
        self.drivers.count()
    }

    /// Takes a place for a new order under the admission limit, to hold until [`Self::place`]
    /// returns. Checking the count and placing are apart (the insert waits for a commit), so
    /// concurrent orders reserve first: otherwise every `POST` arriving during one commit
    /// would see the same count and all be admitted. The compare-and-swap admits one order per
    /// free place however many race for it.
    pub fn admit(&self) -> Result<Admission<'_>, Overloaded> {
        let mut placing = self.placing.load(Ordering::SeqCst);
        loop {
            if let Some(limit) = self.config.max_in_flight {
                let in_flight = self.drivers.count() + placing;
                if in_flight >= limit {
                    return Err(Overloaded { in_flight, limit });
                }
            }
            match self.placing.compare_exchange(placing, placing + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Ok(Admission { placing: &self.placing }),
                Err(now) => placing = now,
            }
        }
    }

    fn clock(&self) -> Clock {
        (self.clock)()
    }

    /// Writes a new saga for `request` (id `order_id`, unless `idempotency_key` placed one
    /// before) and drives it here at once.
    pub async fn place(
        self: &Arc<Self>,
        order_id: Uuid,
        request: OrderRequest,
        idempotency_key: Option<&str>,
        trace_context: Option<String>,
    ) -> Result<Placed, sqlx::Error> {
        let (mut saga, started) = machine::start(&self.definition, order_id, request, self.clock());
        saga.trace_context = trace_context;
        self.note_held(&mut saga);
        let inserted =
            self.store.insert(&saga, &started, idempotency_key, &self.config.instance, self.config.lease).await?;
        Ok(match inserted {
            Inserted::Created => {
                metrics::counter!(m::STARTED_TOTAL).increment(1);
                tracing::info!(%order_id, saga_id = %order_id, "order accepted");
                let view = saga.view();
                self.hand(order_id, Message::Drive { saga: Box::new(saga), input: Input::Run });
                Placed::Created(view)
            }
            Inserted::Existing(existing) if existing.request == saga.request => Placed::Replayed(existing.view()),
            Inserted::Existing(existing) => Placed::KeyReused(existing.order_id),
        })
    }

    /// Carries out an operator's action: handed to the saga's driver here if it has one (which
    /// decides it on the saga as it holds it, abandoning a call in flight if the saga must turn
    /// back), otherwise decided on the log by a driver started for it. The answer is the saga's
    /// view once the action is written.
    pub async fn operate(self: &Arc<Self>, order_id: Uuid, action: OperatorAction) -> Result<OrderView, OperateError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.hand(order_id, Message::Operate { action, reply });
        answer.await.unwrap_or(Err(OperateError::ShuttingDown))
    }

    /// Claims up to `batch` due sagas that nobody drives (within the admission limit), never
    /// one driven here, and drives them. Returns how many were claimed.
    pub async fn recover(self: &Arc<Self>, batch: i64) -> Result<usize, sqlx::Error> {
        let room = match self.config.max_in_flight {
            Some(max) => {
                let taken = self.drivers.count() + self.placing.load(Ordering::SeqCst);
                i64::try_from(max.saturating_sub(taken)).unwrap_or(i64::MAX).min(batch)
            }
            None => batch,
        };
        if room <= 0 {
            return Ok(0);
        }
        let driven = self.drivers.driven();
        let claimed = self.store.claim_due(&self.config.instance, self.config.lease, room, &driven).await?;
        let count = claimed.len();
        for claim in claimed {
            let input = Input::Resumed { previous_owner: claim.previous_owner };
            self.hand(claim.saga.order_id, Message::Drive { saga: Box::new(claim.saga), input });
        }
        Ok(count)
    }

    /// Hands `message` to the saga's driver, starting one when there is none.
    fn hand(self: &Arc<Self>, order_id: Uuid, message: Message) {
        let Some((first, mailbox)) = self.drivers.hand(order_id, message) else { return };
        self.waiters.driving(order_id);
        let executor = Arc::clone(self);
        self.tasks.spawn(async move {
            executor.run_slot(order_id, first, mailbox).await;
            executor.waiters.stopped_driving(order_id);
        });
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

    /// Reports a saga's terminal transition, once it is written.
    fn finished(&self, saga: &Saga, transition: &Transition) {
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

    /// The life of one slot: its messages in turn, until none is left. `held` is the saga as
    /// this slot last wrote it, while nobody else can have written since (a run that finished
    /// it): an operator's action on it then needs no read of the log.
    async fn run_slot(&self, order_id: Uuid, first: Message, mut mailbox: Mailbox) {
        let mut next = Some(first);
        let mut deferred = VecDeque::new();
        let mut held: Option<Saga> = None;
        loop {
            let message = match next.take().or_else(|| deferred.pop_front()) {
                Some(message) => message,
                None => match self.drivers.leave(order_id, &mut mailbox) {
                    Some(message) => message,
                    None => return,
                },
            };
            held = match message {
                Message::Drive { saga, input } => {
                    self.run(*saga, Next::Decide(input), &mut mailbox, &mut deferred).await
                }
                Message::Operate { action, reply } => {
                    let span = tracing::info_span!("operator action", order_id = %order_id, saga_id = %order_id);
                    let decided = self.operate_on_log(order_id, held.take(), &action).instrument(span).await;
                    match decided {
                        Ok((saga, transition)) => {
                            let _ = reply.send(Ok(saga.view()));
                            match (transition.persist, transition.command) {
                                (Persist::Saga { .. }, Command::Stop) => Some(saga),
                                (Persist::Saga { .. }, command) => {
                                    self.run(saga, Next::Carry(command), &mut mailbox, &mut deferred).await
                                }
                                // The saga itself was not written: whoever drives it goes on.
                                (Persist::Nothing | Persist::Events, _) => None,
                            }
                        }
                        Err(err) => {
                            let _ = reply.send(Err(err));
                            None
                        }
                    }
                }
            };
        }
    }

    /// An operator's action on a saga that has no driver here: decided on the log (or on the
    /// saga this slot holds) and written, fenced; read again if another instance wrote first.
    async fn operate_on_log(
        &self,
        order_id: Uuid,
        mut held: Option<Saga>,
        action: &OperatorAction,
    ) -> Result<(Saga, Transition), OperateError> {
        if self.stopping.is_cancelled() {
            return Err(OperateError::ShuttingDown);
        }
        for _ in 0..5 {
            let mut saga = match held.take() {
                Some(saga) => saga,
                None => self.store.load(order_id).await?.ok_or(OperateError::NotFound(order_id))?,
            };
            let transition = machine::operate(&self.definition, &mut saga, action, self.clock())?;
            match self.commit(&mut saga, &transition).await {
                Ok(()) => {
                    if matches!(transition.persist, Persist::Saga { .. }) {
                        tracing::info!(operator = %action.operator, command = ?action.command, "operator action");
                    }
                    return Ok((saga, transition));
                }
                // Another instance wrote first: decide again on what it wrote.
                Err(Stop::Fenced) => {}
                Err(stop) => return Err(stop.into_operate_error()),
            }
        }
        Err(OperateError::Busy(order_id))
    }

    /// One run of a driver: from `next` until the saga is terminal (the saga as written is
    /// returned) or the driver must stop (`None`).
    async fn run(
        &self,
        saga: Saga,
        next: Next,
        mailbox: &mut Mailbox,
        deferred: &mut VecDeque<Message>,
    ) -> Option<Saga> {
        // One span per run of the saga, in the trace of the request that started it (stored with
        // the saga, so a run after a crash or by another instance joins the same trace). Not a
        // child of the current span in-process: a parent stays open until its children close,
        // and the request that started the saga must end (and be exported) when it answers.
        let span = tracing::info_span!(parent: None, "saga", order_id = %saga.order_id, saga_id = %saga.order_id);
        telemetry::continue_trace(&span, saga.trace_context.as_deref());
        let mut saga = saga;
        if self.stopping.is_cancelled() {
            // A claim that came in as this process stops: give it back at once.
            self.stopped(&saga, Stop::ShuttingDown).instrument(span).await;
            return None;
        }
        match self.drive(&mut saga, next, mailbox, deferred).instrument(span.clone()).await {
            Ok(()) => Some(saga),
            Err(stop) => {
                self.stopped(&saga, stop).instrument(span).await;
                None
            }
        }
    }

    async fn stopped(&self, saga: &Saga, stop: Stop) {
        match stop {
            Stop::Fenced => {
                metrics::counter!(m::FENCED_TOTAL).increment(1);
                tracing::info!("fenced out: another instance or an operator moved this saga");
            }
            Stop::Database(err) => tracing::warn!(%err, "cannot write the saga log; leaving the saga to recovery"),
            Stop::ShuttingDown => {
                if let Err(err) = self.store.release(saga).await {
                    tracing::warn!(%err, "could not release the saga at shutdown");
                }
            }
        }
    }

    async fn drive(
        &self,
        saga: &mut Saga,
        mut next: Next,
        mailbox: &mut Mailbox,
        deferred: &mut VecDeque<Message>,
    ) -> Result<(), Stop> {
        loop {
            let command = match next {
                Next::Decide(input) => {
                    let transition = machine::apply(&self.definition, saga, input, self.clock());
                    self.commit(saga, &transition).await?;
                    transition.command
                }
                Next::Carry(command) => command,
            };
            if command == Command::Stop {
                return Ok(());
            }
            if self.stopping.is_cancelled() {
                // Between calls the log holds everything: release the saga instead of going on.
                return Err(Stop::ShuttingDown);
            }
            next = self.carry_out(saga, command, mailbox, deferred).await?;
        }
    }

    /// Carries out `command` while reading the mailbox: what an operator decides meanwhile is
    /// written at once and may replace the command (the call in flight is then abandoned).
    async fn carry_out(
        &self,
        saga: &mut Saga,
        command: Command,
        mailbox: &mut Mailbox,
        deferred: &mut VecDeque<Message>,
    ) -> Result<Next, Stop> {
        let patience = machine::patience_end(&self.definition, saga);
        let call = self.execute(Holder { order_id: saga.order_id, version: saga.version }, patience, command);
        tokio::pin!(call);
        loop {
            tokio::select! {
                biased;
                input = &mut call => return input.map(Next::Decide),
                message = mailbox.recv() => match message {
                    Some(Message::Operate { action, reply }) => {
                        if let Some(next) = self.interrupt(saga, action, reply, deferred).await? {
                            return Ok(next);
                        }
                    }
                    Some(Message::Drive { saga: claimed, input: Input::Resumed { .. } })
                        if claimed.version == saga.version + 1 =>
                    {
                        // This process's own recovery claimed the saga from the version this
                        // driver wrote last (the process was paused past the lease, and the
                        // claim raced the check that leaves driven sagas alone): nobody else
                        // wrote in between, so this driver, which knows its call in flight,
                        // simply holds the claim's version.
                        saga.version = claimed.version;
                    }
                    // Anything else waits until this run ends (a stale claim is fenced then).
                    Some(other) => deferred.push_back(other),
                    // Cannot happen while the slot holds the sender; the call goes on alone.
                    None => return call.await.map(Next::Decide),
                },
            }
        }
    }

    /// An operator's action that reaches the driver while a command is under way. `Some(next)`
    /// when the saga changed course (written; the call in flight is to be abandoned).
    async fn interrupt(
        &self,
        saga: &mut Saga,
        action: OperatorAction,
        reply: OperateReply,
        deferred: &mut VecDeque<Message>,
    ) -> Result<Option<Next>, Stop> {
        let mut changed = saga.clone();
        let transition = match machine::operate(&self.definition, &mut changed, &action, self.clock()) {
            Ok(transition) => transition,
            Err(refusal) => {
                let _ = reply.send(Err(refusal.into()));
                return Ok(None);
            }
        };
        if !matches!(transition.persist, Persist::Saga { .. }) {
            // Recorded (or nothing to record): the saga keeps its course and its call.
            let written = self.commit(&mut changed, &transition).await;
            let _ = reply.send(written.map(|()| saga.view()).map_err(Stop::into_operate_error));
            return Ok(None);
        }
        // The machine marked the step in flight possibly done; its call is abandoned.
        *saga = changed;
        match self.commit(saga, &transition).await {
            Ok(()) => {
                tracing::info!(operator = %action.operator, command = ?action.command, "operator action");
                let _ = reply.send(Ok(saga.view()));
                Ok(Some(Next::Carry(transition.command)))
            }
            Err(Stop::Fenced) => {
                // Another instance took the saga: decide the action again on the log.
                deferred.push_front(Message::Operate { action, reply });
                Err(Stop::Fenced)
            }
            Err(stop) => {
                let _ = reply.send(Err(stop.clone_for_operator()));
                Err(stop)
            }
        }
    }

    /// Commits a transition: writes what it says, fenced, before its command runs (a saga's
    /// save through the group commit), then accounts for a saga it finished (waiters, metrics).
    /// The one way a decision reaches the log, for drivers and operator actions alike.
    async fn commit(&self, saga: &mut Saga, transition: &Transition) -> Result<(), Stop> {
        self.write(saga, transition).await?;
        if matches!(transition.persist, Persist::Saga { .. }) {
            self.note_held(saga);
        }
        self.finished(saga, transition);
        Ok(())
    }

    /// Notes on the saga held in memory what its last write told the log: this instance holds
    /// it for a lease from now (what its view shows as `owner`).
    fn note_held(&self, saga: &mut Saga) {
        saga.owner = Some(self.config.instance.clone());
        saga.lease_expires_at = Some(super::definition::later(Utc::now(), self.config.lease));
    }

    async fn write(&self, saga: &mut Saga, transition: &Transition) -> Result<(), Stop> {
        let span = telemetry::traced(|| {
            tracing::info_span!("sql", otel.name = "write saga log", db.system.name = "postgresql",
                db.collection.name = "sagas", order_id = %saga.order_id)
        });
        async {
            match transition.persist {
                Persist::Nothing => Ok(()),
                Persist::Events => self
                    .store
                    .append(saga.order_id, &transition.events, &self.config.instance)
                    .await
                    .map_err(Stop::Database),
                Persist::Saga { progressed } => {
                    let written = self.writer.save(saga, progressed, &transition.events).await;
                    match written {
                        Ok(true) => Ok(()),
                        // A terminal save that was not answered "written" may still have landed
                        // (its commit's answer lost, then the save alone fenced by itself): the
                        // log decides, so the saga is counted and its waiters answered once.
                        _ if transition.finished.is_some() => self.landed_anyway(saga, written.err()).await,
                        Ok(false) => Err(Stop::Fenced),
                        Err(err) => Err(Stop::Database(err)),
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Whether a terminal save whose answer was not "written" landed after all. Only this driver
    /// holds the saga's version (every change of hands raises it), and no other writer ever
    /// writes a terminal status, so the row one version on with the status this save wrote is
    /// this save. The log is read with patience (it may be restarting), within the lease.
    async fn landed_anyway(&self, saga: &mut Saga, error: Option<sqlx::Error>) -> Result<(), Stop> {
        let patience = tokio::time::Instant::now() + self.config.lease;
        let mut delay = std::time::Duration::from_millis(50);
        loop {
            match self.store.load(saga.order_id).await {
                Ok(Some(row)) if row.version == saga.version + 1 && row.status == saga.status => {
                    tracing::info!("a terminal save whose answer was lost had landed");
                    saga.version = row.version;
                    saga.updated_at = row.updated_at;
                    return Ok(());
                }
                Ok(_) if error.is_none() => return Err(Stop::Fenced),
                Ok(_) => return Err(Stop::Database(error.unwrap_or(sqlx::Error::WorkerCrashed))),
                Err(_) if tokio::time::Instant::now() + delay < patience && !self.stopping.is_cancelled() => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(1));
                }
                Err(err) => return Err(Stop::Database(error.unwrap_or(err))),
            }
        }
    }

    /// Carries out one call or wait; its outcome is the next input. A call whose participant's
    /// circuit is open waits first (see [`Self::hold`]); if it never went, the machine is told
    /// it was not delivered.
    async fn execute(&self, holder: Holder, patience: Option<DateTime<Utc>>, command: Command) -> Result<Input, Stop> {
        let order_id = holder.order_id;
        Ok(match command {
            Command::Act { step, attempt, body } => {
                let step = self.step(step);
                if let Some(detail) = self.hold(step, holder, patience).await? {
                    return Ok(Input::Acted(CallOutcome::Failed { failure: CallFailure::NotDelivered, detail }));
                }
                tracing::debug!(step = step.name, attempt, "action");
                let started = Instant::now();
                let outcome = self
                    .participants
                    .act(step, order_id, &body)
                    .instrument(call_span("action", step, attempt, order_id))
                    .await;
                record_call(step, "action", outcome.event_outcome().as_str(), started);
                self.observe(step, outcome.health());
                Input::Acted(outcome)
            }
            Command::Inspect { step } => {
                let step = self.step(step);
                if let Some(detail) = self.hold(step, holder, patience).await? {
                    return Ok(Input::Inspected(Inspection::Unreachable(detail)));
                }
                let inspection = self
                    .participants
                    .inspect(step, order_id)
                    .instrument(call_span("inspection", step, 0, order_id))
                    .await;
                metrics::counter!(m::RECONCILIATIONS_TOTAL, "step" => step.name,
                    "result" => inspection.event_outcome().as_str())
                .increment(1);
                self.observe(step, inspection.health());
                Input::Inspected(inspection)
            }
            Command::Compensate { step, attempt } => {
                let step = self.step(step);
                if let Some(detail) = self.hold(step, holder, patience).await? {
                    return Ok(Input::Compensated(CallOutcome::Failed { failure: CallFailure::NotDelivered, detail }));
                }
                tracing::debug!(step = step.name, attempt, "compensation");
                let started = Instant::now();
                let outcome = self
                    .participants
                    .compensate(step, order_id)
                    .instrument(call_span("compensation", step, attempt, order_id))
                    .await;
                record_call(step, "compensation", outcome.event_outcome().as_str(), started);
                self.observe(step, outcome.health());
                Input::Compensated(outcome)
            }
            Command::Wait { until } => {
                let wait = (until - self.clock().now).to_std().unwrap_or_default();
                tokio::select! {
                    biased;
                    () = self.stopping.cancelled() => return Err(Stop::ShuttingDown),
                    () = tokio::time::sleep(wait) => Input::Run,
                }
            }
            // The driver returns before carrying out a stop.
            Command::Stop => return Err(Stop::ShuttingDown),
        })
    }

    /// Holds a call back while its participant's circuit is open: until the circuit closes and
    /// this call's turn comes (`None`: go), or until `patience` (the step's budget, the saga's
    /// deadline) runs out (`Some(why)`: the call is given up without being sent, so nothing
    /// about it may have landed). Meanwhile the saga's lease is kept alive, since nothing is
    /// written while the driver waits.
    async fn hold(
        &self,
        step: &StepDefinition,
        holder: Holder,
        patience: Option<DateTime<Utc>>,
    ) -> Result<Option<String>, Stop> {
        let participant = step.participant.name;
        let Some(since) = self.circuits.open_since(participant) else { return Ok(None) };
        tracing::debug!(participant, step = step.name, "waiting for the participant's circuit to close");
        let passed = self.circuits.pass(participant, step.name);
        tokio::pin!(passed);
        let out_of_patience = async {
            match patience {
                Some(end) => tokio::time::sleep((end - self.clock().now).to_std().unwrap_or_default()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(out_of_patience);
        let mut renewal = tokio::time::interval(self.config.lease / 3);
        renewal.tick().await; // the first tick is now; the lease was just written or renewed
        loop {
            tokio::select! {
                biased;
                () = self.stopping.cancelled() => return Err(Stop::ShuttingDown),
                () = &mut passed => return Ok(None),
                () = &mut out_of_patience => {
                    let since = since.format("%H:%M:%S%.3f UTC");
                    return Ok(Some(format!("{participant} unavailable since {since} (circuit open); not sent")));
                }
                _ = renewal.tick() => {
                    // Best effort: if someone wrote the saga meanwhile, the write after the call
                    // is fenced out anyway.
                    if let Err(err) = self.store.renew(holder.order_id, holder.version, self.lease()).await {
                        tracing::debug!(%err, "could not renew the lease while waiting for a circuit");
                    }
                }
            }
        }
    }

    /// Feeds a call's finding to its participant's circuit.
    fn observe(&self, step: &StepDefinition, health: Health) {
        self.circuits.record(step.participant.name, health, Utc::now());
    }

    fn step(&self, index: usize) -> &StepDefinition {
        // The machine only names steps of this definition.
        &self.definition.steps[index]
    }
}

/// The saga a call is made for, as its driver holds it when the call begins (what a lease
/// renewal is fenced on).
#[derive(Debug, Clone, Copy)]
struct Holder {
    order_id: Uuid,
    version: i64,
}

/// Probes the participants whose circuits are open, one probe per participant at a time, and
/// closes a circuit when its participant says it is ready. Runs until the executor stops.
async fn probe_open_circuits<P: Participants>(
    circuits: Arc<Circuits>,
    participants: Arc<P>,
    probed: Vec<Participant>,
    stopping: CancellationToken,
) {
    let interval = circuits.config().probe_interval;
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        for participant in &probed {
            if circuits.open_since(participant.name).is_some() && participants.probe(participant).await {
                circuits.close(participant.name);
            }
        }
    }
}

/// A copy of a database error for a second party (sqlx errors are not `Clone`): what the
/// operator is told, while the driver keeps the original.
fn clone_error(err: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Protocol(err.to_string())
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
