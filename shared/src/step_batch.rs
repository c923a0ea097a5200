//! Batched steps: a participant's concurrent `PUT`s share one transaction and one commit.
//!
//! One writer task per service takes every request that is queued, claims all their orders in
//! one statement, gives the fresh orders to the step's effects together (each sees the ones
//! before it, as if they had committed first: [`Step::effects`]), takes back the claims of the
//! orders whose effect refused, stores every answer in one statement and commits; then it
//! answers each request and takes what queued meanwhile. No added waiting: a request that finds the writer idle is done at once, alone (in
//! the single-order transaction of [`crate::step::act`]).
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
//! error is only its own, and nothing is answered before its commit.

use std::{collections::HashSet, sync::Arc};

use axum::{extract::FromRef, http::StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{
    ledger::{self, ActionClaim},
    metrics::{STEP_BATCHED_REQUESTS_TOTAL, STEP_BATCHES_TOTAL},
    step::{self, sql_span, Answer, Fresh, Step},
    AppError, AppJson,
};

/// The most orders one transaction takes.
const MAX_BATCH: usize = 64;

/// A request waiting for the writer.
struct Pending<S: Step> {
    order_id: Uuid,
    request: S::Request,
    body: Value,
    /// The request's span, so the effect's logs and SQL spans stay under it.
    span: tracing::Span,
    reply: oneshot::Sender<Answer>,
}

/// The handle a service's `PUT` route acts through (its router state; the pool is reachable
/// from it, so the other routes keep `State<PgPool>`).
pub struct Steps<S: Step> {
    pool: PgPool,
    step: Arc<S>,
    /// `None` when batching is off: every request in a transaction of its own.
    queue: Option<mpsc::UnboundedSender<Pending<S>>>,
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

impl<S: Step> FromRef<Steps<S>> for PgPool {
    fn from_ref(steps: &Steps<S>) -> Self {
        steps.pool.clone()
    }
}

impl<S: Step> Steps<S> {
    /// The step's handle; with `batched`, starts its writer task (it ends with the last handle).
    pub fn start(pool: PgPool, step: S, batched: bool) -> Self {
        let step = Arc::new(step);
        let queue = batched.then(|| {
            let (queue, pending) = mpsc::unbounded_channel();
            tokio::spawn(write_batches(pool.clone(), step.clone(), pending));
            queue
        });
        Self { pool, step, queue }
    }

    /// The step's `PUT` for `order_id` (see [`step::act`] for the answers).
    pub async fn act(&self, order_id: Uuid, request: S::Request) -> Answer {
        let body = serde_json::to_value(&request).map_err(anyhow::Error::from)?;
        let Some(queue) = &self.queue else {
            return step::act(&self.pool, &*self.step, order_id, &request, &body).await;
        };
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        queue
            .send(Pending { order_id, request, body, span, reply })
            .map_err(|_| anyhow::anyhow!("the {} writer has stopped", S::TABLE.0))?;
        answer.await.map_err(|_| anyhow::anyhow!("the {} writer dropped order {order_id}", S::TABLE.0))?
    }
}

async fn write_batches<S: Step>(pool: PgPool, step: Arc<S>, mut queue: mpsc::UnboundedReceiver<Pending<S>>) {
    // Every series exists from the start, so a rate of them is 0 rather than missing.
    for result in ["committed", "failed"] {
        metrics::counter!(STEP_BATCHES_TOTAL, "step" => S::TABLE.0, "result" => result).increment(0);
    }
    metrics::counter!(STEP_BATCHED_REQUESTS_TOTAL, "step" => S::TABLE.0).increment(0);
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
        let mut seen = HashSet::with_capacity(taken.len());
        let (round, again): (Vec<_>, Vec<_>) = taken.drain(..).partition(|p| seen.insert(p.order_id));
        deferred = again;
        run_round(&pool, &*step, round).await;
    }
}

/// Runs one round in one transaction, or, if that fails, each request in its own.
async fn run_round<S: Step>(pool: &PgPool, step: &S, mut round: Vec<Pending<S>>) {
    if round.len() == 1 {
        // Alone: the single-order statements, prepared once per connection, cost Postgres less
        // than the batch statements, which are planned at every call (see `ledger::claim_actions`).
        if let Some(pending) = round.pop() {
            let answer =
                step::act(pool, step, pending.order_id, &pending.request, &pending.body).instrument(pending.span).await;
            let _ = pending.reply.send(answer);
        }
        return;
    }
    match in_one_transaction(pool, step, &round).await {
        Ok(answers) => {
            metrics::counter!(STEP_BATCHES_TOTAL, "step" => S::TABLE.0, "result" => "committed").increment(1);
            metrics::counter!(STEP_BATCHED_REQUESTS_TOTAL, "step" => S::TABLE.0).increment(answers.len() as u64);
            for (pending, (answer, outcome)) in round.into_iter().zip(answers) {
                if let Some(outcome) = outcome {
                    S::COUNTER.count(outcome);
                }
                let _ = pending.reply.send(answer); // a request that gave up no longer listens
            }
        }
        Err(err) => {
            metrics::counter!(STEP_BATCHES_TOTAL, "step" => S::TABLE.0, "result" => "failed").increment(1);
            tracing::warn!(error = %err, requests = round.len(), table = S::TABLE.0,
                "a batched step transaction failed; running its requests one by one");
            // Nothing of the batch committed; only an effect's own refusal counter (say
            // `declined`) may count that order's refusal a second time when it runs again.
            let alone = round.into_iter().map(|pending| async move {
                let answer = step::act(pool, step, pending.order_id, &pending.request, &pending.body)
                    .instrument(pending.span)
                    .await;
                let _ = pending.reply.send(answer);
            });
            futures::future::join_all(alone).await;
        }
    }
}

/// Each request's answer and the outcome to count once the transaction has committed (none
/// for an effect's refusal: the effect counted it under its own name).
async fn in_one_transaction<S: Step>(
    pool: &PgPool,
    step: &S,
    round: &[Pending<S>],
) -> Result<Vec<(Answer, Option<&'static str>)>, AppError> {
    let table = S::TABLE;
    let mut tx = pool.begin().await?;
    let claims = {
        let _spans = sql_spans("claim", round.iter());
        let requests: Vec<(Uuid, &Value)> = round.iter().map(|p| (p.order_id, &p.body)).collect();
        ledger::claim_actions(&mut tx, table, &requests).await?
    };
    // Replays and refusals are answered from the claim; the fresh orders' effects run together.
    let mut answers: Vec<Option<(Answer, Option<&'static str>)>> = Vec::with_capacity(round.len());
    let mut fresh = Vec::new();
    for (pending, claim) in round.iter().zip(claims) {
        answers.push(match claim {
            ActionClaim::Fresh { created_at } => {
                fresh.push(Fresh {
                    order_id: pending.order_id,
                    request: &pending.request,
                    created_at,
                    span: &pending.span,
                });
                None
            }
            ActionClaim::Replay(stored) => Some((Ok((StatusCode::OK, AppJson(stored))), Some("replayed"))),
            ActionClaim::Mismatch => Some((Err(AppError::idempotency_mismatch(pending.order_id)), Some("refused"))),
            ActionClaim::Compensated => Some((Err(AppError::already_compensated(pending.order_id)), Some("refused"))),
        });
    }
    let results = {
        let _spans: Vec<_> =
            fresh.iter().map(|order| order.span.in_scope(|| sql_span("effect", table, order.order_id))).collect();
        // A round of replays only has no effects to run (an override would still make its
        // lookups).
        if fresh.is_empty() {
            Vec::new()
        } else {
            step.effects(&mut tx, &fresh).await?
        }
    };
    if results.len() != fresh.len() {
        return Err(anyhow::anyhow!("{} effects answered {} of {} orders", table.0, results.len(), fresh.len()).into());
    }
    let mut stored = Vec::with_capacity(fresh.len());
    let mut refused = Vec::new();
    let mut results = fresh.iter().zip(results);
    let answers = answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| match results.next() {
                Some((order, Ok(answer))) => {
                    stored.push((order.order_id, answer.clone()));
                    (Ok((StatusCode::CREATED, AppJson(answer))), Some(S::DONE))
                }
                // The effect counted its own refusal; its claim is taken back below.
                Some((order, Err(refusal))) => {
                    refused.push(order.order_id);
                    (Err(refusal), None)
                }
                None => (Err(anyhow::anyhow!("no effect result for a fresh order").into()), None),
            })
        })
        .collect::<Vec<_>>();
    {
        let stored_ids: HashSet<Uuid> = stored.iter().map(|(id, _)| *id).collect();
        let _spans = sql_spans("store answer and commit", round.iter().filter(|p| stored_ids.contains(&p.order_id)));
        ledger::drop_claims(&mut tx, table, &refused).await?;
        ledger::store_responses(&mut tx, table, &stored).await?;
        tx.commit().await?;
    }
    Ok(answers)
}

/// A phase's SQL span under each request's own span, as in a transaction of its own; they end
/// when the returned spans are dropped.
fn sql_spans<'a, S: Step>(phase: &'static str, of: impl Iterator<Item = &'a Pending<S>>) -> Vec<tracing::Span> {
    of.map(|p| p.span.in_scope(|| sql_span(phase, S::TABLE, p.order_id))).collect()
}
