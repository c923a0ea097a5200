//! Adds up order results as they come in, and turns the totals into a [`LoadReport`].

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use hdrhistogram::Histogram;

use super::{
    LoadConfig,
    mix::Intent,
    outcome::{Fate, OrderResult, Outcome},
    report::{IntentCounts, Latency, LoadReport, Outcomes, Problem},
};

/// Orders listed by id when their saga did not end in time; beyond this only counted.
const NOT_FINISHED_LISTED: usize = 100;

/// The running totals of a run.
#[derive(Debug)]
pub(super) struct Tally {
    started: Instant,
    /// Start of the measured window (after the warm-up).
    measure_from: Instant,
    /// End of the measured window when known up front (duration runs: when placing stops).
    measure_until: Option<Instant>,
    last_end: Option<Instant>,
    ended_in_window: u64,
    placed: u64,
    accepted: u64,
    rejected: u64,
    post_errors: u64,
    /// Open loop: orders sent behind schedule (counted by the driver).
    pub(super) late: u64,
    outcomes: Outcomes,
    by_intent: BTreeMap<Intent, IntentCounts>,
    unexpected: u64,
    /// Microseconds.
    latency: Histogram<u64>,
    poll_errors: u64,
    problems: BTreeMap<String, Problem>,
    not_finished_orders: Vec<String>,
}

impl Tally {
    pub(super) fn new(started: Instant, warmup: Duration, measure_until: Option<Instant>) -> anyhow::Result<Self> {
        Ok(Self {
            started,
            measure_from: started + warmup,
            measure_until,
            last_end: None,
            ended_in_window: 0,
            placed: 0,
            accepted: 0,
            rejected: 0,
            post_errors: 0,
            late: 0,
            outcomes: Outcomes::default(),
            by_intent: BTreeMap::new(),
            unexpected: 0,
            // Auto-resizing, three significant digits.
            latency: Histogram::new(3).context("cannot create the latency histogram")?,
            poll_errors: 0,
            problems: BTreeMap::new(),
            not_finished_orders: Vec::new(),
        })
    }

    /// Orders finished so far (for the progress bar).
    pub(super) fn done(&self) -> u64 {
        self.placed
    }

    /// Counts one order's result.
    pub(super) fn add(&mut self, result: OrderResult) -> anyhow::Result<()> {
        self.placed += 1;
        self.poll_errors += u64::from(result.poll_errors);
        if let Some(error) = result.last_poll_error {
            self.problem("poll failed and was repeated", error, false, u64::from(result.poll_errors));
        }
        let counts = self.by_intent.entry(result.intent).or_default();
        counts.placed += 1;
        match result.fate {
            Fate::Rejected { status, detail } => {
                self.rejected += 1;
                counts.rejected += 1;
                self.unexpected += u64::from(result.intent.should_complete());
                self.problem(&format!("POST rejected with {status}"), detail, false, 1);
            }
            Fate::PostFailed { error } => {
                self.post_errors += 1;
                counts.post_errors += 1;
                self.problem("POST failed (transport error or 5xx)", error, true, 1);
            }
            Fate::Accepted { order_id, outcome, last_status, ended_at } => {
                self.accepted += 1;
                counts.outcomes.add(outcome);
                self.outcomes.add(outcome);
                let expected = if result.intent.should_complete() { Outcome::Completed } else { Outcome::Compensated };
                self.unexpected += u64::from(outcome != expected);
                if !outcome.is_terminal() {
                    let detail = format!("order {order_id} still {last_status}");
                    self.problem("saga not terminal within the saga timeout", detail, true, 1);
                    if self.not_finished_orders.len() < NOT_FINISHED_LISTED {
                        self.not_finished_orders.push(order_id);
                    }
                    return Ok(());
                }
                self.last_end = self.last_end.max(Some(ended_at));
                if ended_at >= self.measure_from && self.measure_until.is_none_or(|until| ended_at <= until) {
                    self.ended_in_window += 1;
                }
                if result.placed_at >= self.measure_from {
                    let micros =
                        u64::try_from(ended_at.duration_since(result.placed_at).as_micros()).unwrap_or(u64::MAX);
                    self.latency.record(micros.max(1)).context("cannot record a latency")?;
                }
            }
        }
        Ok(())
    }

    fn problem(&mut self, kind: &str, example: String, fatal: bool, count: u64) {
        let entry = self.problems.entry(kind.to_owned()).or_insert_with(|| Problem {
            kind: kind.to_owned(),
            count: 0,
            example,
            fatal,
        });
        entry.count += count;
    }

    /// The report, once every order is in.
    pub(super) fn report(self, config: &LoadConfig) -> LoadReport {
        let finished_at = Instant::now();
        let until = self.measure_until.or(self.last_end).unwrap_or(finished_at);
        let measured = until.saturating_duration_since(self.measure_from);
        let sagas_per_sec = if measured.is_zero() { 0.0 } else { self.ended_in_window as f64 / measured.as_secs_f64() };
        let ms = |micros: u64| micros as f64 / 1000.0;
        let h = &self.latency;
        let latency = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                count: h.len(),
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p95: ms(h.value_at_quantile(0.95)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
            }
        };
        let ok = self.post_errors == 0 && self.outcomes.not_finished == 0;
        LoadReport {
            kind: config.kind,
            pacing: config.pacing,
            mix: config.mix.clone(),
            placed: self.placed,
            accepted: self.accepted,
            rejected: self.rejected,
            post_errors: self.post_errors,
            outcomes: self.outcomes,
            by_intent: self.by_intent,
            unexpected_outcomes: self.unexpected,
            elapsed_secs: finished_at.duration_since(self.started).as_secs_f64(),
            measured_secs: measured.as_secs_f64(),
            sagas_per_sec,
            latency_ms: latency,
            poll_errors: self.poll_errors,
            late: self.late,
            problems: self.problems.into_values().collect(),
            not_finished_orders: self.not_finished_orders,
            ok,
        }
    }
}
