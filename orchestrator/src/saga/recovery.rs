//! Background loops: recovery (claim sagas whose owner died, or that nobody owns, when due) and
//! the database-derived gauges (true across restarts and replicas, unlike in-process counters).

use std::{collections::HashMap, sync::Arc, time::Duration};

use saga_shared::api::SagaStatus;
use sqlx::PgPool;

use super::{OrderExecutor, log};
use crate::metric_definitions as m;

/// Claims due, unowned sagas every `interval` (jittered ±20 % so replicas do not align) until
/// the executor stops, and drives them ([`super::executor::Executor::recover`]).
pub async fn run_recovery(executor: Arc<OrderExecutor>, interval: Duration, batch: i64) {
    let stopping = executor.stopping();
    loop {
        match executor.recover(batch).await {
            Ok(count) => {
                if count > 0 {
                    tracing::info!(count, "claimed sagas for recovery");
                }
                if count as i64 == batch {
                    continue; // more may be waiting: claim the next batch at once
                }
            }
            Err(err) => tracing::warn!(%err, "recovery could not claim sagas"),
        }
        let jittered = interval.mul_f64(0.8 + 0.4 * rand::random::<f64>());
        tokio::select! {
            () = tokio::time::sleep(jittered) => {}
            () = stopping.cancelled() => return,
        }
    }
}

/// Recomputes the in-flight, stuck, oldest-age and requires-intervention gauges every `interval`.
pub async fn run_gauges(executor: Arc<OrderExecutor>, pool: PgPool, interval: Duration, stuck_after: Duration) {
    let stopping = executor.stopping();
    let step_names: Vec<&'static str> = executor.definition().steps.iter().map(|s| s.name).collect();
    loop {
        if let Err(err) = refresh_gauges(&pool, &step_names, stuck_after).await {
            tracing::warn!(%err, "could not refresh saga gauges");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stopping.cancelled() => return,
        }
    }
}

async fn refresh_gauges(pool: &PgPool, step_names: &[&'static str], stuck_after: Duration) -> Result<(), sqlx::Error> {
    let rows = log::in_flight(pool, stuck_after).await?;
    let failed = log::failed_count(pool).await?;
    // Every label combination is set each round (zero when absent), so a series that empties
    // drops to 0 instead of keeping its last value.
    let mut in_flight: HashMap<(&str, &str), (f64, f64)> = HashMap::new();
    let mut oldest: HashMap<&str, f64> = HashMap::new();
    for status in ["running", "compensating"] {
        oldest.insert(status, 0.0);
        for step in step_names {
            in_flight.insert((status, step), (0.0, 0.0));
        }
    }
    for row in rows {
        // A pending saga is one whose first move is under way: it counts as running.
        let status = match row.status {
            SagaStatus::Compensating => "compensating",
            _ => "running",
        };
        let step = usize::try_from(row.step_index)
            .ok()
            .and_then(|i| step_names.get(i.min(step_names.len().saturating_sub(1))))
            .copied()
            .unwrap_or("unknown");
        let entry = in_flight.entry((status, step)).or_default();
        entry.0 += row.count as f64;
        entry.1 += row.stuck as f64;
        let age = oldest.entry(status).or_default();
        *age = age.max(row.oldest_age_seconds);
    }
    for ((status, step), (count, stuck)) in in_flight {
        metrics::gauge!(m::IN_FLIGHT, "status" => status, "step" => step).set(count);
        metrics::gauge!(m::STUCK, "status" => status, "step" => step).set(stuck);
    }
    for (status, age) in oldest {
        metrics::gauge!(m::OLDEST_IN_FLIGHT_AGE_SECONDS, "status" => status).set(age);
    }
    metrics::gauge!(m::REQUIRES_INTERVENTION).set(failed as f64);
    Ok(())
}
