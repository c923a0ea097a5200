//! Batched steps: a participant's concurrent `PUT`s share one transaction and one commit.
//!
//! One writer task per service takes every request that is queued, claims all their orders in
//! one statement, gives the fresh orders to the step's effects together (each sees the ones
//! before it, as if they had committed first: [`Step::effects`]), takes back the claims of the
//! orders whose effect refused, stores every answer in one statement and commits; then it
//! answers each request and takes what queued meanwhile. No added waiting: a request that finds
//! the writer idle is done at once, alone (in the single-order transaction of [`crate::step::act`]).
//!
//! Why: a participant's transaction costs Postgres a commit and five round trips, most of them
//! the same for every order; and when many orders want the same product or account, each
//! transaction holds that row's lock through its commit's fsync, so one row's commit rate caps
//! them all. Batched, one commit (and one lock, held once) covers the whole batch.
//!
//! The rules of the ledger hold per order exactly as in a transaction of its own
//! ([`crate::step::act`]): a replay answers its stored answer, another body 422, a compensated
//! order 409, a refusal leaves no claim. A round never holds the same order twice (a second
//! request for it waits for the next round, and is then a replay). A round that fails as a whole
//! (a lost connection, a deadlock with another replica's batch, an effect's database error) is
//! run again with every request in a transaction of its own, concurrently, so one request's
//! error is only its own, and nothing is answered before its commit (`round`).
//!
//! The queue is bounded (`STEP_QUEUE_LIMIT`): past it a request is refused at once with 503
//! `overloaded` and `Retry-After`, instead of waiting behind more work than the writer can do
//! before its caller gives up. A request whose caller hung up while it waited is not run. The
//! writer is supervised: if it panics, `/readyz` says so and it is started again on the same
//! queue (`supervise`).

mod round;

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt as _;
use serde_json::Value;
use sqlx::PgPool;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use uuid::Uuid;

use crate::{
    AppError,
    faults::Faults,
    metrics::{
        STEP_BATCHED_REQUESTS_TOTAL, STEP_BATCHES_TOTAL, STEP_REQUESTS_DROPPED_TOTAL, STEP_WRITER_RESTARTS_TOTAL,
    },
    readiness::Part,
    server::Boot,
    step::{self, Answer, Step},
};

/// The most orders one transaction takes.
const MAX_BATCH: usize = 64;

/// Longest a crashed writer stays down, however often it crashed in a row.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// A writer that ran this long before it crashed is restarted after the first delay again: its
/// crash is a new one, not the same one repeating.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// A request waiting for the writer.
struct Pending<S: Step> {
    order_id: Uuid,
    request: S::Request,
    body: Value,
    /// The request's span, so the effect's logs and SQL spans stay under it.
    span: tracing::Span,
    reply: oneshot::Sender<Answer>,
}

/// The handle a participant's step endpoints work through (their router state): the `PUT`
/// acts through its queue, the `DELETE` and `GET` use its pool and step directly.
pub struct Steps<S: Step> {
    pool: PgPool,
    step: Arc<S>,
    /// `None` when batching is off: every request in a transaction of its own.
    queue: Option<mpsc::Sender<Pending<S>>>,
}

impl<S: Step> Clone for Steps<S> {
    fn clone(&self) -> Self {
        Self { pool: self.pool.clone(), step: self.step.clone(), queue: self.queue.clone() }
    }
}

impl<S: Step> std::fmt::Debug for Steps<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steps").field("table", &S::TABLE.0).field("batched", &self.queue.is_some()).finish()
    }
}

impl<S: Step> Steps<S> {
    /// The step's handle on the service's pool; with `STEP_BATCHING` on, starts its supervised
    /// writer task (it ends with the last handle).
    pub(crate) fn start(step: S, boot: &Boot) -> Self {
        let (pool, step) = (boot.pool.clone(), Arc::new(step));
        let queue = boot.config.step_batching.then(|| {
            let (queue, pending) = mpsc::channel(boot.config.step_queue_limit);
            let writer = Writer { pool: pool.clone(), step: step.clone(), faults: boot.faults.clone() };
            let part = boot.readiness.part(format!("{} writer", S::TABLE.0));
            tokio::spawn(supervise(writer, pending, part, boot.config.step_writer_restart));
            queue
        });
        Self { pool, step, queue }
    }

    /// The service's pool.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The step.
    pub(crate) fn step(&self) -> &S {
        &self.step
    }

    /// The step's `PUT` for `order_id` (see [`step::act`] for the answers). With batching on,
    /// also 503 `overloaded` when the queue is full, and 503 when the writer crashed holding it.
    pub async fn act(&self, order_id: Uuid, request: S::Request) -> Answer {
        let body = serde_json::to_value(&request).map_err(anyhow::Error::from)?;
        let Some(queue) = &self.queue else {
            return step::act(&self.pool, &*self.step, order_id, &request, &body).await;
        };
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        if let Err(err) = queue.try_send(Pending { order_id, request, body, span, reply }) {
            return Err(match err {
                mpsc::error::TrySendError::Full(_) => {
                    metrics::counter!(STEP_REQUESTS_DROPPED_TOTAL, "step" => S::TABLE.0, "reason" => "queue_full")
                        .increment(1);
                    AppError::Overloaded(format!(
                        "{} requests already wait for the {} writer; retry later",
                        queue.max_capacity(),
                        S::TABLE.0
                    ))
                }
                mpsc::error::TrySendError::Closed(_) => {
                    AppError::Unavailable(format!("the {} writer has stopped", S::TABLE.0))
                }
            });
        }
        // The reply is dropped unanswered only when the writer panicked holding the request:
        // its transaction was rolled back (or never begun), so a retry is safe. Transient.
        answer
            .await
            .map_err(|_| AppError::Unavailable(format!("the {} writer crashed holding {order_id}", S::TABLE.0)))?
    }
}

/// What the writer works with.
struct Writer<S: Step> {
    pool: PgPool,
    step: Arc<S>,
    /// For the test-only fault that makes the writer panic once.
    faults: Faults,
}

/// Runs the writer until every handle is gone, and again after each panic: the queue outlives
/// it, so the requests still waiting are served by the next writer, and only those it held are
/// lost (their callers get 503). While it is down, the service is not ready.
async fn supervise<S: Step>(
    writer: Writer<S>,
    mut queue: mpsc::Receiver<Pending<S>>,
    part: Part,
    first_delay: Duration,
) {
    // Every series exists from the start, so a rate of them is 0 rather than missing.
    for result in ["committed", "failed"] {
        metrics::counter!(STEP_BATCHES_TOTAL, "step" => S::TABLE.0, "result" => result).increment(0);
    }
    for reason in ["queue_full", "caller_gone"] {
        metrics::counter!(STEP_REQUESTS_DROPPED_TOTAL, "step" => S::TABLE.0, "reason" => reason).increment(0);
    }
    metrics::counter!(STEP_BATCHED_REQUESTS_TOTAL, "step" => S::TABLE.0).increment(0);
    metrics::counter!(STEP_WRITER_RESTARTS_TOTAL, "step" => S::TABLE.0).increment(0);
    let mut delay = first_delay;
    loop {
        let started = Instant::now();
        // The writer's future borrows the queue; a panic drops the future, not the queue.
        let Err(panic) = AssertUnwindSafe(writer.run(&mut queue)).catch_unwind().await else {
            return; // every handle is gone: the service is stopping
        };
        if started.elapsed() >= HEALTHY_RUN {
            delay = first_delay;
        }
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        tracing::error!(step = S::TABLE.0, panic = message, ?delay, "the batch writer panicked; restarting it");
        metrics::counter!(STEP_WRITER_RESTARTS_TOTAL, "step" => S::TABLE.0).increment(1);
        part.not_ready(format!("the batch writer panicked ({message}); it restarts in {} ms", delay.as_millis()));
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RESTART_DELAY);
        part.ready();
    }
}

impl<S: Step> Writer<S> {
    /// Takes what is queued, round after round, until every handle is gone.
    async fn run(&self, queue: &mut mpsc::Receiver<Pending<S>>) {
        let mut taken = Vec::with_capacity(MAX_BATCH);
        // Requests for an order already in the round: they go in the next one.
        let mut deferred: Vec<Pending<S>> = Vec::new();
        loop {
            if deferred.is_empty() {
                if queue.recv_many(&mut taken, MAX_BATCH).await == 0 {
                    return;
                }
            } else {
                taken.append(&mut deferred);
                while taken.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(pending) => taken.push(pending),
                        Err(_) => break,
                    }
                }
            }
            // A caller that hung up while its request waited (its own timeout, or the server's)
            // has moved on: it will ask the participant what happened, and a step done now would
            // be one nobody waits for, which its saga must then find and undo. Under overload,
            // such requests are also work that makes every later one later.
            taken.retain(|pending| {
                let gone = pending.reply.is_closed();
                if gone {
                    metrics::counter!(STEP_REQUESTS_DROPPED_TOTAL, "step" => S::TABLE.0, "reason" => "caller_gone")
                        .increment(1);
                }
                !gone
            });
            if self.faults.take_step_writer_panic() {
                panic!("injected fault: the {} writer panics", S::TABLE.0);
            }
            let mut seen = std::collections::HashSet::with_capacity(taken.len());
            let (this_round, next_round): (Vec<_>, Vec<_>) = taken.drain(..).partition(|p| seen.insert(p.order_id));
            deferred = next_round;
            if !this_round.is_empty() {
                round::run_round(&self.pool, &*self.step, this_round).await;
            }
        }
    }
}
