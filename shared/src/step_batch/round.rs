//! One round of the batch writer: its requests in one transaction, or, if that fails as a
//! whole, each in a transaction of its own (see the parent module for why and the rules kept).

use std::{collections::HashSet, ops::ControlFlow};

use axum::http::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use tracing::Instrument as _;
use uuid::Uuid;

use super::Pending;
use crate::{
    AppError, AppJson, ledger,
    metrics::{STEP_BATCHED_REQUESTS_TOTAL, STEP_BATCHES_TOTAL},
    step::{self, Answer, Fresh, Step, sql_span},
};

/// Runs one round in one transaction, or, if that fails, each request in its own.
pub(super) async fn run_round<S: Step>(pool: &PgPool, step: &S, mut round: Vec<Pending<S>>) {
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
                    S::ACT_COUNTER.count(outcome);
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
        answers.push(match step::effect_or_answer(claim, pending.order_id) {
            ControlFlow::Continue(created_at) => {
                fresh.push(Fresh {
                    order_id: pending.order_id,
                    request: &pending.request,
                    created_at,
                    span: &pending.span,
                });
                None
            }
            ControlFlow::Break((answer, outcome)) => Some((answer, Some(outcome))),
        });
    }
    let results = {
        let _spans: Vec<_> =
            fresh.iter().map(|order| order.span.in_scope(|| sql_span("effect", table, order.order_id))).collect();
        // A round of replays only has no effects to run (an override would still make its
        // lookups).
        if fresh.is_empty() { Vec::new() } else { step.effects(&mut tx, &fresh).await? }
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
