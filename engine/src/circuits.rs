//! Participant circuits: when a participant keeps refusing connections, timing out or answering
//! 503 (its database is down, it is restarting), its circuit opens and sagas at its steps wait
//! instead of calling it. One probe at a time (`GET /readyz`, made by the executor) closes the
//! circuit when it is back; the waiting calls then go out at a bounded rate, so a service that
//! just started is not hit by every waiting saga at once.
//!
//! Each process keeps its own circuits (replicas do not share them), and a circuit only holds
//! calls back before they leave: it never changes what the log says about a call that did
//! leave, so "a call that may have left may have landed" is untouched. While a call waits, its
//! step's retry budget keeps running (the executor gives up at [`super::machine::patience_end`]).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::{sync::watch, time::Instant};

use crate::metric_definitions as m;

/// How circuits open, probe and let calls go again.
#[derive(Debug, Clone, Copy)]
pub struct CircuitConfig {
    /// Calls in a row that found the participant unavailable (connection refused, timeout,
    /// 503 or 429) before its circuit opens (`CIRCUIT_OPEN_AFTER`, default 5).
    pub open_after: u32,
    /// Pause between probes of an open circuit's participant (`CIRCUIT_PROBE_MS`, default 500).
    pub probe_interval: Duration,
    /// Held calls let go per second once the circuit closes (`CIRCUIT_RESUME_PER_SEC`, default
    /// 200).
    pub resume_per_sec: u32,
}

/// What a call told about its participant's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It answered (done or refused): it is up.
    Up,
    /// It could not be reached, did not answer in time, or said it cannot serve now.
    Unavailable,
    /// Says nothing either way (a connection lost mid-answer, a 500).
    Unclear,
}

/// One participant's circuit as the console shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CircuitView {
    /// The participant.
    pub participant: &'static str,
    /// Since when its circuit has been open (`None`: closed).
    pub open_since: Option<DateTime<Utc>>,
    /// Calls of this process held back for it right now.
    pub waiting: usize,
}

/// The circuits of one process, one per participant.
#[derive(Debug)]
pub struct Circuits {
    config: CircuitConfig,
    by_participant: HashMap<&'static str, Arc<Circuit>>,
}

#[derive(Debug)]
struct Circuit {
    participant: &'static str,
    /// Unavailable answers in a row.
    failures: Mutex<u32>,
    /// `Some(since)` while open.
    open: watch::Sender<Option<DateTime<Utc>>>,
    /// When the next held call may go, once the circuit has closed.
    next_release: Mutex<Instant>,
    waiting: AtomicUsize,
}

/// A call held back, counted in `saga_waiting_on_participant{step}` until it goes or gives up.
struct Held<'a> {
    circuit: &'a Circuit,
    step: &'static str,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.circuit.waiting.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(m::WAITING_ON_PARTICIPANT, "step" => self.step).decrement(1.0);
    }
}

impl Circuits {
    /// Closed circuits for `participants`, with each gauge shown at zero from the start (so a
    /// dashboard and an alert see the series before anything goes wrong).
    pub fn new(config: CircuitConfig, participants: impl IntoIterator<Item = (&'static str, &'static str)>) -> Self {
        let mut by_participant = HashMap::new();
        for (participant, step) in participants {
            metrics::gauge!(m::WAITING_ON_PARTICIPANT, "step" => step).set(0.0);
            metrics::gauge!(m::CIRCUIT_OPEN, "participant" => participant).set(0.0);
            by_participant.entry(participant).or_insert_with(|| {
                Arc::new(Circuit {
                    participant,
                    failures: Mutex::new(0),
                    open: watch::Sender::new(None),
                    next_release: Mutex::new(Instant::now()),
                    waiting: AtomicUsize::new(0),
                })
            });
        }
        Self { config, by_participant }
    }

    /// How circuits behave.
    pub fn config(&self) -> CircuitConfig {
        self.config
    }

    /// Since when `participant`'s circuit has been open, if it is.
    pub fn open_since(&self, participant: &str) -> Option<DateTime<Utc>> {
        self.by_participant.get(participant).and_then(|c| *c.open.borrow())
    }

    /// Takes in what a call found; `true` when this opened the circuit (the caller then starts
    /// the one probe of it).
    pub fn record(&self, participant: &str, health: Health, now: DateTime<Utc>) -> bool {
        let Some(circuit) = self.by_participant.get(participant) else { return false };
        let mut failures = lock(&circuit.failures);
        match health {
            Health::Up => *failures = 0,
            Health::Unclear => {}
            Health::Unavailable => {
                *failures = failures.saturating_add(1);
                if *failures >= self.config.open_after && circuit.open.borrow().is_none() {
                    circuit.open.send_replace(Some(now));
                    metrics::gauge!(m::CIRCUIT_OPEN, "participant" => circuit.participant).set(1.0);
                    tracing::warn!(participant = circuit.participant, failures = *failures, "circuit opened");
                    return true;
                }
            }
        }
        false
    }

    /// The probe found `participant` ready: its circuit closes and held calls go, paced.
    pub fn close(&self, participant: &str) {
        let Some(circuit) = self.by_participant.get(participant) else { return };
        *lock(&circuit.failures) = 0;
        *lock(&circuit.next_release) = Instant::now();
        if circuit.open.send_replace(None).is_some() {
            metrics::gauge!(m::CIRCUIT_OPEN, "participant" => circuit.participant).set(0.0);
            tracing::info!(
                participant = circuit.participant,
                waiting = circuit.waiting.load(Ordering::Relaxed),
                "circuit closed"
            );
        }
    }

    /// Waits while `participant`'s circuit is open (counting the call as waiting at `step`),
    /// then for this call's turn among those let go. At once when it is closed.
    pub async fn pass(&self, participant: &str, step: &'static str) {
        let Some(circuit) = self.by_participant.get(participant) else { return };
        if circuit.open.borrow().is_none() {
            return;
        }
        circuit.waiting.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(m::WAITING_ON_PARTICIPANT, "step" => step).increment(1.0);
        let _held = Held { circuit, step };
        let mut open = circuit.open.subscribe();
        loop {
            // The sender lives as long as the circuit: the wait ends only when it closes.
            if open.wait_for(Option::is_none).await.is_err() {
                return;
            }
            let turn = {
                let mut next = lock(&circuit.next_release);
                let turn = (*next).max(Instant::now());
                *next = turn + Duration::from_secs(1) / self.config.resume_per_sec.max(1);
                turn
            };
            tokio::time::sleep_until(turn).await;
            // Opened again while this call waited for its turn: wait again.
            if open.borrow().is_none() {
                return;
            }
        }
    }

    /// Every circuit, by participant name.
    pub fn views(&self) -> Vec<CircuitView> {
        let mut views: Vec<CircuitView> = self
            .by_participant
            .values()
            .map(|c| CircuitView {
                participant: c.participant,
                open_since: *c.open.borrow(),
                waiting: c.waiting.load(Ordering::Relaxed),
            })
            .collect();
        views.sort_by_key(|v| v.participant);
        views
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain values set under the lock: a panic elsewhere leaves them whole.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn circuits() -> Circuits {
        let config = CircuitConfig { open_after: 3, probe_interval: Duration::from_millis(10), resume_per_sec: 10 };
        Circuits::new(config, [("payment", "process_payment")])
    }

    #[test]
    fn a_circuit_opens_after_unavailable_answers_in_a_row_only() {
        let circuits = circuits();
        let now = Utc::now();
        assert!(!circuits.record("payment", Health::Unavailable, now));
        assert!(!circuits.record("payment", Health::Unavailable, now));
        assert!(!circuits.record("payment", Health::Up, now), "an answer resets the count");
        assert!(!circuits.record("payment", Health::Unavailable, now));
        assert!(!circuits.record("payment", Health::Unclear, now), "a lost answer says nothing");
        assert!(!circuits.record("payment", Health::Unavailable, now));
        assert!(circuits.record("payment", Health::Unavailable, now), "the third in a row opens it");
        assert!(!circuits.record("payment", Health::Unavailable, now), "opened once: one probe");
        assert_eq!(circuits.open_since("payment"), Some(now));
        circuits.close("payment");
        assert_eq!(circuits.open_since("payment"), None);
        assert!(!circuits.record("payment", Health::Unavailable, now), "closing resets the count");
    }

    #[tokio::test(start_paused = true)]
    async fn held_calls_go_when_the_circuit_closes_at_the_resume_rate() {
        let circuits = Arc::new(circuits());
        assert!(tokio::time::timeout(Duration::ZERO, circuits.pass("payment", "process_payment")).await.is_ok());
        for _ in 0..3 {
            circuits.record("payment", Health::Unavailable, Utc::now());
        }
        let started = Instant::now();
        let held: Vec<_> = (0..5)
            .map(|_| {
                let circuits = Arc::clone(&circuits);
                tokio::spawn(async move {
                    circuits.pass("payment", "process_payment").await;
                    Instant::now()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(circuits.views()[0].waiting, 5, "held while open");
        circuits.close("payment");
        let mut released = Vec::new();
        for task in held {
            released.push(task.await.unwrap() - started);
        }
        released.sort();
        assert!(released[0] >= Duration::from_secs(3), "none went while the circuit was open");
        // Ten per second: the fifth goes 400 ms after the first.
        assert!(released[4] - released[0] >= Duration::from_millis(400), "{released:?}");
        assert_eq!(circuits.views()[0].waiting, 0);
    }
}
