//! The skeleton every participant's step endpoints share: one transaction per request that
//! claims the order in the step ledger, answers replays and refusals, runs the service's effect
//! (or its undo), stores the answer and commits. A service supplies only its effect.

use std::ops::ControlFlow;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{
    AppError, AppJson,
    ledger::{self, ActionClaim, CompensationClaim, StepTable},
};

/// Where a step endpoint counts its outcomes: `<name>{result}`.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeCounter(pub &'static str);

impl OutcomeCounter {
    /// Counts one outcome.
    pub fn count(self, result: &'static str) {
        metrics::counter!(self.0, "result" => result).increment(1);
    }
}

/// A participant's step (its `PUT`): the ledger table, how outcomes are counted, and the effect.
/// The ledger's claim, replay and refusal rules and the stored answer are the skeleton's;
/// [`crate::step_batch::Steps`] runs it alone or batched.
pub trait Step: Send + Sync + 'static {
    /// The `PUT`'s validated body (stored in the ledger, given back to the undo).
    type Request: Serialize + Send + Sync + 'static;
    /// The step ledger table.
    const TABLE: StepTable;
    /// Where outcomes are counted.
    const COUNTER: OutcomeCounter;
    /// The outcome a fresh success is counted as.
    const DONE: &'static str;

    /// Does the step for a freshly claimed order in the claiming transaction (the row created
    /// at `created_at`) and returns the answer to store. A refusal (`AppError::Client`) must be
    /// returned before the effect has written anything: a batch takes back only the refused
    /// order's claim, and keeps the other orders' effects in the same transaction.
    fn effect<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        order_id: Uuid,
        request: &'a Self::Request,
        created_at: DateTime<Utc>,
    ) -> impl std::future::Future<Output = Result<Value, AppError>> + Send + 'a;

    /// Does the step for the fresh orders of a batch, in one transaction and in their order:
    /// each sees the effects of those before it, as if they had committed first. One result per
    /// order: its answer, or its refusal (`AppError::Client`), for which nothing may have been
    /// written. Any other error fails the whole batch (it is rolled back and run again order by
    /// order). By default [`Step::effect`] for each in turn; a service overrides it when it can
    /// do a batch's effects in fewer statements than one or two per order (inventory and payment
    /// lock and update every product or account of the batch once, shipping looks up the
    /// batch's countries once).
    fn effects<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        orders: &'a [Fresh<'a, Self::Request>],
    ) -> impl std::future::Future<Output = Result<Vec<Result<Value, AppError>>, AppError>> + Send + 'a {
        effects_one_by_one(self, conn, orders)
    }
}

/// [`Step::effects`] as [`Step::effect`] for each order in turn: the default, and what an
/// override falls back on where batching would not save a statement (a batch of one).
pub async fn effects_one_by_one<S: Step + ?Sized>(
    step: &S,
    conn: &mut PgConnection,
    orders: &[Fresh<'_, S::Request>],
) -> Result<Vec<Result<Value, AppError>>, AppError> {
    let mut results = Vec::with_capacity(orders.len());
    for order in orders {
        let effect = step.effect(&mut *conn, order.order_id, order.request, order.created_at);
        match effect.instrument(order.span.clone()).await {
            result @ (Ok(_) | Err(AppError::Client(_))) => results.push(result),
            Err(err) => return Err(err),
        }
    }
    Ok(results)
}

/// A freshly claimed order of a batch, for [`Step::effects`].
#[derive(Debug)]
pub struct Fresh<'a, R> {
    /// The order.
    pub order_id: Uuid,
    /// Its validated request.
    pub request: &'a R,
    /// When its ledger row was created.
    pub created_at: DateTime<Utc>,
    /// Its request's span, for the effect's logs.
    pub span: &'a tracing::Span,
}

/// What a step's `PUT` answers.
pub type Answer = Result<(StatusCode, AppJson<Value>), AppError>;

/// A `PUT` in a transaction of its own: claims `order_id` for `request`, runs the step's effect
/// and commits. A replay answers 200 with the stored answer; another body 422; a compensated
/// order 409; a fresh success 201, counted as `S::DONE`. Whatever the effect refuses rolls
/// everything back, the claim included. `body` is `request` as JSON, the form the ledger stores.
pub async fn act<S: Step>(pool: &PgPool, step: &S, order_id: Uuid, request: &S::Request, body: &Value) -> Answer {
    let (table, counter) = (S::TABLE, S::COUNTER);
    let claimed = async {
        let mut tx = pool.begin().await?;
        let claim = ledger::claim_action(&mut tx, table, order_id, body).await?;
        Ok::<_, AppError>((tx, claim))
    };
    let (mut tx, claim) = claimed.instrument(sql_span("claim", table, order_id)).await?;
    let created_at = match effect_or_answer(claim, order_id) {
        ControlFlow::Continue(created_at) => created_at,
        // Rolled back as `tx` drops: a replay changes nothing, a refusal leaves no claim.
        ControlFlow::Break((answer, outcome)) => {
            counter.count(outcome);
            return answer;
        }
    };
    let answer =
        step.effect(&mut tx, order_id, request, created_at).instrument(sql_span("effect", table, order_id)).await?;
    async {
        ledger::store_response(&mut tx, table, order_id, &answer).await?;
        tx.commit().await
    }
    .instrument(sql_span("store answer and commit", table, order_id))
    .await?;
    counter.count(S::DONE);
    Ok((StatusCode::CREATED, AppJson(answer)))
}

/// What a `PUT`'s claim leads to: a fresh claim continues with the effect (for the row created
/// at the time it gives); any other is answered at once, with the outcome it is counted as (a
/// replay its stored answer, 200, `replayed`; another body 422 and a compensated order 409, both
/// `refused`). One rule for a transaction of its own and for a batch.
pub(crate) fn effect_or_answer(
    claim: ActionClaim,
    order_id: Uuid,
) -> ControlFlow<(Answer, &'static str), DateTime<Utc>> {
    match claim {
        ActionClaim::Fresh { created_at } => ControlFlow::Continue(created_at),
        ActionClaim::Replay(stored) => ControlFlow::Break((Ok((StatusCode::OK, AppJson(stored))), "replayed")),
        ActionClaim::Mismatch => ControlFlow::Break((Err(AppError::idempotency_mismatch(order_id)), "refused")),
        ActionClaim::Compensated => ControlFlow::Break((Err(AppError::already_compensated(order_id)), "refused")),
    }
}

/// A `DELETE`: claims the compensation of `order_id`; if the step was done, runs `undo` with the
/// stored request (as `R`, the `PUT`'s body type) and marks it compensated (counted as
/// `undone`); if it never was, leaves a tombstone. Answers the record `view` reads, in the same
/// transaction.
pub async fn compensate<R: DeserializeOwned, T: Serialize>(
    pool: &PgPool,
    table: StepTable,
    counter: OutcomeCounter,
    undone: &'static str,
    order_id: Uuid,
    undo: impl AsyncFnOnce(&mut PgConnection, R) -> Result<(), AppError>,
    view: impl AsyncFnOnce(&mut PgConnection) -> Result<Option<T>, sqlx::Error>,
) -> Result<AppJson<T>, AppError> {
    let span = sql_span("compensate and commit", table, order_id);
    async {
        let mut tx = pool.begin().await?;
        let outcome = match ledger::claim_compensation(&mut tx, table, order_id).await? {
            CompensationClaim::NeverDone => "tombstone",
            CompensationClaim::AlreadyCompensated => "replayed",
            CompensationClaim::Undo { request } => {
                // It was validated when it was accepted; unreadable now means the data was edited.
                let request = serde_json::from_value(request)
                    .map_err(|e| anyhow::anyhow!("order {order_id}'s stored request is unreadable: {e}"))?;
                undo(&mut tx, request).await?;
                ledger::mark_compensated(&mut tx, table, order_id).await?;
                undone
            }
        };
        let record = view(&mut tx)
            .await?
            .ok_or_else(|| anyhow::anyhow!("order {order_id}'s record vanished inside its transaction"))?;
        tx.commit().await?;
        counter.count(outcome);
        tracing::info!(outcome, "compensation");
        Ok(AppJson(record))
    }
    .instrument(span)
    .await
}

/// A span around one transaction phase of a step, exported under the request span.
pub(crate) fn sql_span(phase: &'static str, table: StepTable, order_id: Uuid) -> tracing::Span {
    crate::telemetry::traced(|| {
        tracing::info_span!("sql", otel.name = format!("{phase} {}", table.0), db.system.name = "postgresql",
            db.operation.name = phase, db.collection.name = table.0, order_id = %order_id)
    })
}
