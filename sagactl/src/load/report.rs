//! A load run's report: what `--json` prints, and the same for people.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    Kind, Pacing,
    mix::{Intent, Mix},
    outcome::Outcome,
};

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Through the orchestrator, or the direct chain.
    pub kind: Kind,
    /// Closed or open loop.
    pub pacing: Pacing,
    /// The order mix.
    pub mix: Mix,
    /// Orders sent (first `POST`).
    pub placed: u64,
    /// Answered 202.
    pub accepted: u64,
    /// Answered 4xx: no order.
    pub rejected: u64,
    /// Transport errors and 5xx (after any retries): the order may or may not exist.
    pub post_errors: u64,
    /// Accepted orders by how their saga ended.
    pub outcomes: Outcomes,
    /// The same per intent, with the rejections and errors.
    pub by_intent: BTreeMap<Intent, IntentCounts>,
    /// Happy orders that did not complete, and failing ones that did.
    pub unexpected_outcomes: u64,
    /// Wall time of the run, drain included.
    pub elapsed_secs: f64,
    /// The window throughput is measured over: from the end of any warm-up to the end of placing
    /// (with a warm-up: the steady state a benchmark wants) or to the last saga's end (without).
    pub measured_secs: f64,
    /// Sagas that ended within the measured window, per second of it.
    pub sagas_per_sec: f64,
    /// `POST` to terminal state, for sagas that ended (placed after any warm-up).
    pub latency_ms: Latency,
    /// Failed polls that were repeated (not fatal).
    pub poll_errors: u64,
    /// Open loop: orders sent more than one interval (and at least 10 ms) behind schedule, because
    /// `--max-outstanding` were in flight or this client could not keep up.
    pub late: u64,
    /// What went wrong, by kind, with one example each.
    pub problems: Vec<Problem>,
    /// Orders whose saga was not terminal in time (the first 100).
    pub not_finished_orders: Vec<String>,
    /// No `POST` error and every saga terminal: the exit status is 0.
    pub ok: bool,
}

/// Sagas by outcome.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Outcomes {
    /// Completed.
    pub completed: u64,
    /// Compensated.
    pub compensated: u64,
    /// Failed (dead-lettered).
    pub failed: u64,
    /// Not terminal when the saga timeout ran out.
    pub not_finished: u64,
}

impl Outcomes {
    /// Counts one more.
    pub fn add(&mut self, outcome: Outcome) {
        *self.get_mut(outcome) += 1;
    }

    /// The count of `outcome`.
    pub fn get(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Completed => self.completed,
            Outcome::Compensated => self.compensated,
            Outcome::Failed => self.failed,
            Outcome::NotFinished => self.not_finished,
        }
    }

    fn get_mut(&mut self, outcome: Outcome) -> &mut u64 {
        match outcome {
            Outcome::Completed => &mut self.completed,
            Outcome::Compensated => &mut self.compensated,
            Outcome::Failed => &mut self.failed,
            Outcome::NotFinished => &mut self.not_finished,
        }
    }
}

/// One intent's orders.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct IntentCounts {
    /// Placed.
    pub placed: u64,
    /// Rejected with a 4xx.
    pub rejected: u64,
    /// `POST` errors.
    pub post_errors: u64,
    /// The accepted ones by outcome.
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Sagas measured.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// One kind of problem.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// What kind.
    pub kind: String,
    /// How many times.
    pub count: u64,
    /// The first one's message.
    pub example: String,
    /// Whether it makes the run fail.
    pub fatal: bool,
}

impl LoadReport {
    /// The report for people, one line per item.
    pub fn human_lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "placed     {} orders in {:.1} s: {} accepted, {} rejected, {} POST errors",
                self.placed, self.elapsed_secs, self.accepted, self.rejected, self.post_errors
            ),
            format!("sagas/s    {:.1} (over {:.1} s)", self.sagas_per_sec, self.measured_secs),
            format!(
                "latency    p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms  (POST to terminal, {} sagas)",
                self.latency_ms.p50,
                self.latency_ms.p90,
                self.latency_ms.p99,
                self.latency_ms.max,
                self.latency_ms.count
            ),
            format!("outcomes   {}", outcome_list(&self.outcomes)),
        ];
        for (n, (intent, counts)) in self.by_intent.iter().enumerate() {
            let mut parts = vec![outcome_list(&counts.outcomes)];
            if counts.rejected > 0 {
                parts.push(format!("rejected {}", counts.rejected));
            }
            if counts.post_errors > 0 {
                parts.push(format!("POST errors {}", counts.post_errors));
            }
            let head = if n == 0 { "by intent " } else { "          " };
            lines.push(format!("{head} {} {}: {}", intent.label(), counts.placed, parts.join(", ")));
        }
        if self.unexpected_outcomes > 0 {
            lines.push(format!("unexpected {} orders did not end as their intent says", self.unexpected_outcomes));
        }
        if self.late > 0 {
            lines.push(format!(
                "late       {} orders went out behind schedule: the suite (see --max-outstanding) or this client \
                 did not keep up",
                self.late
            ));
        }
        for problem in &self.problems {
            let mark = if problem.fatal { "error" } else { "note " };
            lines.push(format!("{mark}      {} × {}, e.g. {}", problem.count, problem.kind, problem.example));
        }
        lines.push(if self.ok {
            "OK: every order accepted or refused cleanly, every saga terminal".to_owned()
        } else {
            format!(
                "FAILED: {} POST errors, {} sagas not terminal within the saga timeout",
                self.post_errors, self.outcomes.not_finished
            )
        });
        lines
    }
}

fn outcome_list(outcomes: &Outcomes) -> String {
    let parts: Vec<String> = Outcome::ALL
        .iter()
        .filter(|&&o| outcomes.get(o) > 0)
        .map(|&o| format!("{} {}", o.label(), outcomes.get(o)))
        .collect();
    if parts.is_empty() { "no saga".to_owned() } else { parts.join(", ") }
}
