//! Batch operations: an operator's retry or cancel of every saga a filter matched, after an
//! outage has left hundreds of them waiting. `POST /batch-operations` writes the batch and its
//! matched sagas; a worker in every orchestrator claims running batches under a lease and acts
//! on their sagas one at a time, at a bounded pace, each exactly as `POST /orders/{id}/retry`
//! or `/cancel` would: through [`OrderExecutor::operate`], so each saga's one driver decides.
//!
//! A batch survives restarts: a batch whose instance died is claimed by another (or by the same
//! one restarted) once its lease expires, and goes on with the sagas not yet acted on. Each saga
//! is acted on once: its result is written after the action, and an action whose result was
//! lost with a crash is found in the saga's timeline, whose operator event names the batch.

mod log;
pub mod routes;

use std::{sync::Arc, time::Duration};

use saga_shared::api::{BatchAction, BatchResult};
use sqlx::PgPool;
use uuid::Uuid;

use saga_engine::{
    OrderExecutor,
    drivers::OperateError,
    machine::{OperatorAction, OperatorCommand},
    metric_definitions as m,
};

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// This instance's name (the batch's owner while it drives it).
    pub instance: String,
    /// How long a claim lasts without renewal (the sagas' lease).
    pub lease: Duration,
    /// How often an idle worker looks for a batch to drive.
    pub interval: Duration,
    /// The pause between two sagas of a batch (`BATCH_PACE_MS`): hundreds of retries after an
    /// outage should not land as one burst on participants that are just back.
    pub pace: Duration,
}

/// What the timeline of every saga a batch acts on says about it: the start of the operator
/// event's detail.
fn marker(id: Uuid) -> String {
    format!("batch {id}")
}

/// Looks for a running batch every `interval` and drives it, until the executor stops.
pub async fn run_batches(executor: Arc<OrderExecutor>, pool: PgPool, config: BatchConfig) {
    let stopping = executor.stopping();
    loop {
        match log::claim(&pool, &config.instance, config.lease).await {
            Ok(Some(batch)) => {
                let span = tracing::info_span!("batch operation", batch_id = %batch.id, action = batch.action.as_str());
                tracing::Instrument::instrument(drive(&executor, &pool, &config, &batch), span).await;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(%err, "cannot claim batch operations"),
        }
        tokio::select! {
            () = tokio::time::sleep(config.interval) => {}
            () = stopping.cancelled() => return,
        }
    }
}

/// Acts on the batch's sagas still to be acted on, in order; ends when none is left, when the
/// lease is lost, or when the process stops (giving the batch back).
async fn drive(executor: &Arc<OrderExecutor>, pool: &PgPool, config: &BatchConfig, batch: &log::Claimed) {
    let stopping = executor.stopping();
    let owner = config.instance.as_str();
    loop {
        let pending = match log::pending(pool, batch.id, 50).await {
            Ok(pending) => pending,
            Err(err) => return tracing::warn!(%err, "cannot read the batch's sagas; trying again later"),
        };
        if pending.is_empty() {
            if let Err(err) = log::finish(pool, batch.id, owner).await {
                tracing::warn!(%err, "cannot mark the batch done; trying again later");
            } else {
                tracing::info!("batch operation done");
            }
            return;
        }
        for order_id in pending {
            if stopping.is_cancelled() {
                if let Err(err) = log::release(pool, batch.id, owner).await {
                    tracing::warn!(%err, "cannot give the batch back at shutdown; its lease will expire");
                }
                return;
            }
            match log::renew(pool, batch.id, owner, config.lease).await {
                Ok(true) => {}
                Ok(false) => return tracing::info!("another instance took the batch over"),
                Err(err) => return tracing::warn!(%err, "cannot renew the batch's lease; trying again later"),
            }
            let Some((result, detail)) = act(executor, pool, config, batch, order_id).await else {
                // Decided later (this process stops, the log is unreachable): give the batch
                // back if stopping, so another instance need not wait for the lease.
                if stopping.is_cancelled()
                    && let Err(err) = log::release(pool, batch.id, owner).await
                {
                    tracing::warn!(%err, "cannot give the batch back at shutdown; its lease will expire");
                }
                return;
            };
            if let Err(err) = log::record(pool, batch.id, owner, order_id, result, detail.as_deref()).await {
                // The action is in the saga's timeline: a later pass finds it there.
                return tracing::warn!(%err, %order_id, "cannot write the saga's result; trying again later");
            }
            metrics::counter!(m::BATCH_OPERATIONS_TOTAL, "action" => batch.action.as_str(), "result" => result.as_str())
                .increment(1);
            tokio::time::sleep(config.pace).await;
        }
    }
}

/// Acts on one saga as the single endpoint would; `None` when it cannot be decided now (the
/// process is stopping, the log is unreachable, the saga kept changing): the saga stays
/// pending for a later pass. The action is bounded by half the lease, renewed just before, so
/// that another instance cannot take the batch over while it is under way.
async fn act(
    executor: &Arc<OrderExecutor>,
    pool: &PgPool,
    config: &BatchConfig,
    batch: &log::Claimed,
    order_id: Uuid,
) -> Option<(BatchResult, Option<String>)> {
    let tag = marker(batch.id);
    match log::acted_before(pool, order_id, &tag).await {
        Ok(true) => return Some((BatchResult::Done, None)),
        Ok(false) => {}
        Err(err) => {
            tracing::warn!(%err, %order_id, "cannot read the saga's timeline; trying again later");
            return None;
        }
    }
    let command = match batch.action {
        BatchAction::Retry => OperatorCommand::Retry,
        BatchAction::Cancel => OperatorCommand::Cancel,
    };
    let reason = match &batch.reason {
        Some(reason) => format!("{tag}: {reason}"),
        None => tag.clone(),
    };
    let action = OperatorAction { command, operator: batch.operator.clone(), reason: Some(reason) };
    let Ok(acted) = tokio::time::timeout(config.lease / 2, executor.operate(order_id, action)).await else {
        tracing::warn!(%order_id, "acting on the saga took half a lease; trying again later");
        return None;
    };
    match acted {
        Ok(_) => Some((BatchResult::Done, None)),
        // Refused, unless an earlier pass of this batch acted on it meanwhile (a retry is
        // refused once the saga is no longer failed): that action is its result.
        Err(OperateError::Refused(refusal)) => match log::acted_before(pool, order_id, &tag).await {
            Ok(true) => Some((BatchResult::Done, None)),
            Ok(false) => Some((BatchResult::Refused, Some(refusal.to_string()))),
            Err(_) => None,
        },
        Err(err @ OperateError::NotFound(_)) => Some((BatchResult::Refused, Some(err.to_string()))),
        // Five writes in a row lost to others: reported, for the operator to try again.
        Err(err @ OperateError::Busy(_)) => Some((BatchResult::Failed, Some(err.to_string()))),
        Err(OperateError::ShuttingDown) => None,
        Err(OperateError::Database(err)) => {
            tracing::warn!(%err, %order_id, "cannot act on the saga; trying again later");
            None
        }
    }
}
