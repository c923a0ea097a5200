//! Background loops: recovery (claim sagas whose owner died, or that nobody owns, when due) and
//! the database-derived gauges (true across restarts and replicas, unlike in-process counters).

use std::{collections::HashMap, sync::Arc, time::Duration};

use saga_shared::api::SagaStatus;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{OrderExecutor, log};
use crate::metric_definitions as m;

/// Claims due, unowned sagas every `interval` (jittered ±20 % so replicas do not align) until
/// the executor stops, and drives them ([`super::executor::Executor::recover`]).
pub async fn run_recovery(executor: Arc<OrderExecutor>, interval: Duration, batch: i64) {
    let stopping = executor.stopping();
    recovery_loop(|| executor.recover(batch), interval, batch, stopping).await;
}

/// The timing of [`run_recovery`], apart from the executor so that it runs in paused time
/// without a database: `claim` claims (and drives) up to `batch` sagas and answers how many;
/// it is called at once, again at once after a full batch (more may be waiting), otherwise
/// after `interval` jittered ±20 %. An error is logged and the loop goes on (the database
/// may come back); `stopping` ends it while it sleeps.
///
/// `claim` is a closure returning a future rather than an async closure: the future of an
/// `AsyncFnMut` borrows the closure for any lifetime, and rustc cannot then prove the spawned
/// loop `Send` ("implementation of `Send` is not general enough").
pub(crate) async fn recovery_loop<E: std::fmt::Display, F: Future<Output = Result<usize, E>>>(
    mut claim: impl FnMut() -> F,
    interval: Duration,
    batch: i64,
    stopping: CancellationToken,
) {
    loop {
        match claim().await {
            Ok(count) => {
                if count > 0 {
                    tracing::info!(count, "claimed sagas for recovery");
                }
                // More may be waiting: claim the next batch at once, unless the process is
                // stopping (what it would claim it would only give back).
                if count as i64 == batch && !stopping.is_cancelled() {
                    continue;
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
    gauges_loop(|| refresh_or_mark_stale(&pool, &step_names, stuck_after), interval, stopping).await;
}

/// [`refresh_gauges`], saying in `saga_gauges_stale` whether it worked: while the database is
/// unreachable the gauges keep their last values, and a frozen gauge must not pass for a true
/// one.
async fn refresh_or_mark_stale(
    pool: &PgPool,
    step_names: &[&'static str],
    stuck_after: Duration,
) -> Result<(), sqlx::Error> {
    let refreshed = refresh_gauges(pool, step_names, stuck_after).await;
    metrics::gauge!(m::GAUGES_STALE).set(if refreshed.is_ok() { 0.0 } else { 1.0 });
    refreshed
}

/// The timing of [`run_gauges`], apart from the database so that it runs in paused time:
/// `refresh` at once, then every `interval` (an error is logged and the loop goes on), until
/// `stopping`.
///
/// `refresh` is a closure returning a future for the reason [`recovery_loop`]'s `claim` is.
pub(crate) async fn gauges_loop<E: std::fmt::Display, F: Future<Output = Result<(), E>>>(
    mut refresh: impl FnMut() -> F,
    interval: Duration,
    stopping: CancellationToken,
) {
    loop {
        if let Err(err) = refresh().await {
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tokio::time::Instant;

    use super::*;

    const INTERVAL: Duration = Duration::from_secs(1);
    const BATCH: i64 = 10;

    /// Runs [`recovery_loop`] with a claim that answers `answers` in turn (then claims nothing)
    /// and stops the loop at its `calls`-th claim; returns when each claim came, from the start.
    async fn claims(mut answers: VecDeque<Result<usize, &'static str>>, calls: usize) -> Vec<Duration> {
        let start = Instant::now();
        let stopping = CancellationToken::new();
        let mut at = Vec::new();
        let claim = || {
            at.push(start.elapsed());
            if at.len() == calls {
                stopping.cancel();
            }
            std::future::ready(answers.pop_front().unwrap_or(Ok(0)))
        };
        recovery_loop(claim, INTERVAL, BATCH, stopping.clone()).await;
        at
    }

    fn gaps(at: &[Duration]) -> Vec<Duration> {
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn claims_are_spaced_by_the_interval_jittered_by_a_fifth_either_way() {
        let at = claims(VecDeque::new(), 200).await;
        assert_eq!(at.len(), 200, "the loop stops at the claim that cancelled it, not before");
        assert_eq!(at[0], Duration::ZERO, "the first claim is at once");
        let gaps = gaps(&at);
        for gap in &gaps {
            assert!((INTERVAL.mul_f64(0.8)..=INTERVAL.mul_f64(1.2)).contains(gap), "{gap:?}");
        }
        // Jittered, not fixed: over 199 gaps both ends of the range are reached (each gap falls
        // in an outer quarter with probability 1/4).
        assert!(gaps.iter().any(|g| *g < INTERVAL.mul_f64(0.9)), "{gaps:?}");
        assert!(gaps.iter().any(|g| *g > INTERVAL.mul_f64(1.1)), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_followed_by_the_next_claim_at_once() {
        let answers = VecDeque::from([Ok(10), Ok(10), Ok(4), Ok(10), Ok(0)]);
        let gaps = gaps(&claims(answers, 6).await);
        // Two full batches: two claims at once; 4 of 10: the interval; full again: at once;
        // none: the interval.
        assert_eq!(gaps[..2], [Duration::ZERO, Duration::ZERO]);
        assert!(gaps[2] >= INTERVAL.mul_f64(0.8), "{gaps:?}");
        assert_eq!(gaps[3], Duration::ZERO);
        assert!(gaps[4] >= INTERVAL.mul_f64(0.8), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_does_not_end_the_loop_and_is_followed_by_the_interval() {
        let answers = VecDeque::from([Err("database unavailable"), Err("database unavailable"), Ok(10)]);
        let gaps = gaps(&claims(answers, 5).await);
        assert_eq!(gaps.len(), 4, "claims went on after the errors");
        assert!(gaps[0] >= INTERVAL.mul_f64(0.8), "no claim at once after an error: {gaps:?}");
        assert!(gaps[1] >= INTERVAL.mul_f64(0.8), "{gaps:?}");
        assert_eq!(gaps[2], Duration::ZERO, "a full batch after the database came back");
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_ends_the_loop_in_its_sleep_at_once() {
        let stopping = CancellationToken::new();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let recovery = tokio::spawn(recovery_loop(
            move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::future::ready(Ok::<_, &str>(0))
            },
            INTERVAL,
            BATCH,
            stopping.clone(),
        ));
        tokio::time::sleep(INTERVAL * 5).await;
        let claimed = calls.load(std::sync::atomic::Ordering::SeqCst);
        assert!((5..=7).contains(&claimed), "{claimed} claims in 5 intervals");
        let cancelled = Instant::now();
        stopping.cancel();
        recovery.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cancelled.elapsed(), Duration::ZERO, "the sleep did not run out");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), claimed, "no claim after the stop");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_during_full_batches_ends_the_claiming_at_once() {
        let stopping = CancellationToken::new();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (counted, stop) = (Arc::clone(&calls), stopping.clone());
        // Every batch is full; the third claim happens as the process starts stopping.
        let claim = move || {
            if counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2 {
                stop.cancel();
            }
            std::future::ready(Ok::<_, &str>(BATCH as usize))
        };
        recovery_loop(claim, INTERVAL, BATCH, stopping).await;
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3, "claimed again while stopping");
    }

    #[tokio::test(start_paused = true)]
    async fn gauges_are_refreshed_every_interval_through_errors_until_stopped() {
        let start = Instant::now();
        let stopping = CancellationToken::new();
        let mut at = Vec::new();
        let refresh = || {
            at.push(start.elapsed());
            if at.len() == 4 {
                stopping.cancel();
            }
            std::future::ready(if at.len() == 2 { Err("database unavailable") } else { Ok(()) })
        };
        gauges_loop(refresh, INTERVAL, stopping.clone()).await;
        assert_eq!(at, [0, 1, 2, 3].map(|n| INTERVAL * n), "at once, then every interval, an error included");
        assert_eq!(start.elapsed(), INTERVAL * 3, "stopped at once");
    }
}
