//! A participant's step, written once: the [`Step`] trait a service implements (the effect, its
//! undo and the record it reads) and the skeleton around it, one transaction per request that
//! claims the order in the step ledger, answers replays, refusals and tombstones, runs the
//! service's effect (or its undo), stores the answer and commits. The `PUT`, `DELETE` and `GET`
//! endpoints over it are the same for every participant (`routes`), and so is their OpenAPI
//! description (`openapi`).

mod openapi;
mod routes;

use std::ops::ControlFlow;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use tracing::Instrument as _;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppError, AppJson,
    ledger::{self, ActionClaim, CompensationClaim, StepTable},
};

pub use openapi::{OperationDocs, StepDocs};
pub use routes::spec;

/// Where a step endpoint counts its outcomes: `<name>{result}`.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeCounter(pub &'static str);

impl OutcomeCounter {
    /// Counts one outcome.
    pub fn count(self, result: &'static str) {
        metrics::counter!(self.0, "result" => result).increment(1);
    }
}

/// A participant's step: the effect its `PUT` does ([`Step::effect`], [`Step::effects`]), the
/// undo its `DELETE` does ([`Step::undo`]), the record both and its `GET` answer with
/// ([`Step::read`]), and the names it is counted and documented under. The ledger's claim,
/// replay, refusal and tombstone rules and the stored answer are the skeleton's;
/// [`crate::step_batch::Steps`] runs the effect alone or batched.
pub trait Step: Send + Sync + 'static {
    /// The `PUT`'s validated body (stored in the ledger, given back to the undo).
    type Request: Serialize + DeserializeOwned + ToSchema + Send + Sync + 'static;
    /// The order's record: what `GET` and `DELETE` answer. A `PUT`'s answer is one too, as
    /// it was when the step was done (stored, and replayed as it is).
    type Record: Serialize + ToSchema + Send + 'static;
    /// The step ledger table.
    const TABLE: StepTable;
    /// Where the `PUT`'s outcomes are counted.
    const ACT_COUNTER: OutcomeCounter;
    /// The outcome a fresh success is counted as.
    const DONE: &'static str;
    /// Where the `DELETE`'s outcomes are counted (`tombstone`, `replayed` or [`Step::UNDONE`]).
    const UNDO_COUNTER: OutcomeCounter;
    /// The outcome a compensation that undid the step is counted as.
    const UNDONE: &'static str;
    /// The record's name in a `GET`'s 404: "no {RECORD} for order {order_id}".
    const RECORD: &'static str;
    /// What the OpenAPI document says of the endpoints beyond the step's types.
    const DOCS: StepDocs;

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

    /// Undoes the step for a claimed compensation, in the claiming transaction, given the
    /// request that did it. The ledger marks it compensated afterwards; an error rolls both back
    /// (the compensation is then retried by its caller).
    fn undo<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        order_id: Uuid,
        request: Self::Request,
    ) -> impl std::future::Future<Output = Result<(), AppError>> + Send + 'a;

    /// The order's record, if it has a ledger row (done, compensated or tombstoned).
    fn read<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        order_id: Uuid,
    ) -> impl std::future::Future<Output = Result<Option<Self::Record>, sqlx::Error>> + Send + 'a;
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
    let (table, counter) = (S::TABLE, S::ACT_COUNTER);
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

/// A `DELETE` in a transaction of its own: claims the compensation of `order_id`; if the step
/// was done, runs its undo with the stored request and marks it compensated (counted as
/// `S::UNDONE`); if it never was, leaves a tombstone; if it was compensated before, changes
/// nothing. Answers the order's record as the transaction leaves it.
pub async fn compensate<S: Step>(pool: &PgPool, step: &S, order_id: Uuid) -> Result<S::Record, AppError> {
    let span = sql_span("compensate and commit", S::TABLE, order_id);
    async {
        let mut tx = pool.begin().await?;
        let outcome = match ledger::claim_compensation(&mut tx, S::TABLE, order_id).await? {
            CompensationClaim::NeverDone => "tombstone",
            CompensationClaim::AlreadyCompensated => "replayed",
            CompensationClaim::Undo { request } => {
                // It was validated when it was accepted; unreadable now means the data was edited.
                let request = serde_json::from_value(request)
                    .map_err(|e| anyhow::anyhow!("order {order_id}'s stored request is unreadable: {e}"))?;
                step.undo(&mut tx, order_id, request).await?;
                ledger::mark_compensated(&mut tx, S::TABLE, order_id).await?;
                S::UNDONE
            }
        };
        let record = step
            .read(&mut tx, order_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("order {order_id}'s record vanished inside its transaction"))?;
        tx.commit().await?;
        S::UNDO_COUNTER.count(outcome);
        tracing::info!(outcome, "compensation");
        Ok(record)
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
