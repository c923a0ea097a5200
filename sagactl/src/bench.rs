//! The benchmark's measurements (`sagactl bench`): closed-loop runs of the load driver
//! ([`crate::load`]) with a warm-up and a measured window, through the orchestrator (`saga`) or
//! calling the participants directly (`direct`, the baseline the orchestrator is compared with).

use std::time::Duration;

use crate::load::{self, Keys, Kind, LoadConfig, LoadReport, Mix, Pacing, Stop, Targets};

/// How long one saga may take before the benchmark calls it not finished: far beyond any
/// latency worth measuring.
const SAGA_TIMEOUT: Duration = Duration::from_secs(60);

/// One benchmark run: `clients` closed-loop clients of `kind` over `keys`, for `warmup +
/// measure`; only the measured window counts.
#[derive(Debug, Clone, Copy)]
pub struct BenchRun {
    /// Saga or direct chain.
    pub kind: Kind,
    /// Concurrent clients.
    pub clients: usize,
    /// Key distribution over the load SKUs and customers.
    pub keys: Keys,
    /// Load before the window (connections, caches, the planner's first plans).
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
}

impl BenchRun {
    /// The load run it is: every order meant to complete, the whole window of orders.
    pub fn config(&self) -> LoadConfig {
        LoadConfig {
            kind: self.kind,
            pacing: Pacing::Closed { concurrency: self.clients },
            stop: Stop::Duration(self.warmup + self.measure),
            warmup: self.warmup,
            mix: Mix {
                fail_ratio: 0.0,
                keys: self.keys,
                skus: load::mix::LOAD_SKUS,
                customers: load::mix::LOAD_CUSTOMERS,
                seed: 1,
            },
            saga_timeout: SAGA_TIMEOUT,
            request_timeout: Duration::from_secs(10),
            post_retries: 0,
        }
    }

    /// Runs it; `progress` (possibly hidden) follows the run.
    pub async fn run(&self, targets: &Targets, progress: &indicatif::ProgressBar) -> anyhow::Result<LoadReport> {
        load::run(targets, &self.config(), progress).await
    }
}

/// The table row of a run: mode, clients, orders/s, p50/p95/p99 ms, not completed. Statements
/// per order come from the database and are appended by the caller.
pub fn row_cells(run: &BenchRun, report: &LoadReport) -> String {
    let mode = match run.kind {
        Kind::Saga => "saga",
        Kind::Direct => "direct",
    };
    let latency = &report.latency_ms;
    format!(
        "| {mode} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
        run.clients,
        report.sagas_per_sec,
        latency.p50,
        latency.p95,
        latency.p99,
        report.placed - report.outcomes.completed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bench_run_is_a_valid_closed_loop_load_run_of_happy_orders() {
        let run = BenchRun {
            kind: Kind::Saga,
            clients: 16,
            keys: Keys::Hot,
            warmup: Duration::from_secs(3),
            measure: Duration::from_secs(15),
        };
        let config = run.config();
        assert!(config.validate().is_ok());
        assert_eq!(config.stop, Stop::Duration(Duration::from_secs(18)));
        assert_eq!(config.mix.fail_ratio, 0.0);
    }
}
