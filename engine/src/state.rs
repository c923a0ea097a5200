//! A saga as the executor holds it in memory between writes to the log.

use chrono::{DateTime, SubsecRound, Utc};
use saga_shared::api::{OrderRequest, OrderView, SagaStatus, StepStatus, StepView};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::definition::{Outputs, SagaDefinition};

/// One step's state, stored as an element of `sagas.steps` (jsonb). What is at its default
/// (no compensation attempt, never ambiguous, no error, not started or not finished) is left
/// out of the stored JSON: the row is rewritten at every step, and a smaller row is written
/// faster and leaves room on its page for the next version (see docs/performance.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepState {
    /// The step's name.
    pub name: String,
    /// Where it is.
    pub status: StepStatus,
    /// Action attempts made.
    pub attempts: u32,
    /// Compensation attempts made.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub compensation_attempts: u32,
    /// Whether any call of this step may have landed without the log learning its outcome: an
    /// attempt that timed out or lost its answer, or a call in flight when the saga was resumed
    /// or cancelled. Then the step may have happened whatever later attempts say, and
    /// compensation must include it (its `DELETE` also tombstones a late `PUT`). Never cleared:
    /// only the tombstone makes "it will never happen" true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ambiguous: bool,
    /// The last error seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// First attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Success, failure or compensation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl StepState {
    /// A step not attempted yet.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            status: StepStatus::Pending,
            attempts: 0,
            compensation_attempts: 0,
            ambiguous: false,
            last_error: None,
            started_at: None,
            finished_at: None,
        }
    }
}

/// A saga between two writes. `version` is the row's version this copy was read or written at:
/// every write is fenced on it.
#[derive(Debug, Clone)]
pub struct Saga {
    /// The order's (and saga's) id.
    pub order_id: Uuid,
    /// The order.
    pub request: OrderRequest,
    /// Where the saga is.
    pub status: SagaStatus,
    /// The step being executed (forward) or the compensation cursor (backward).
    pub step_index: usize,
    /// Every step's state.
    pub steps: Vec<StepState>,
    /// Outputs of succeeded steps.
    pub outputs: Outputs,
    /// Why it stopped going forward (the cause of its compensation, or the refusal that
    /// stopped it past the pivot).
    pub failure_reason: Option<String>,
    /// Why it waits for an operator, while `failed` (cleared by a retry).
    pub dead_letter: Option<String>,
    /// Fencing token.
    pub version: i64,
    /// Forward deadline.
    pub deadline_at: DateTime<Utc>,
    /// Compensation deadline, once compensating.
    pub compensation_deadline_at: Option<DateTime<Utc>>,
    /// When the next move is due.
    pub next_run_at: DateTime<Utc>,
    /// When the order was accepted.
    pub created_at: DateTime<Utc>,
    /// Last write.
    pub updated_at: DateTime<Utc>,
    /// The trace the saga's spans belong to (a W3C `traceparent`), when traces are exported.
    pub trace_context: Option<String>,
    /// The instance holding its lease when it was read or written, and until when (shown,
    /// never decided on: the version is what fences writes).
    pub owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
}

impl Saga {
    /// A new saga for `request` under `definition`.
    pub fn new(order_id: Uuid, request: OrderRequest, definition: &SagaDefinition, now: DateTime<Utc>) -> Self {
        // Postgres keeps microseconds: the same precision here makes the POST answer and every
        // later GET show the same times.
        let now = now.trunc_subsecs(6);
        Self {
            order_id,
            request,
            status: SagaStatus::Pending,
            step_index: 0,
            steps: definition.steps.iter().map(|s| StepState::new(s.name)).collect(),
            outputs: Outputs::new(),
            failure_reason: None,
            dead_letter: None,
            version: 0,
            deadline_at: definition.deadline_from(now),
            compensation_deadline_at: None,
            next_run_at: now,
            created_at: now,
            updated_at: now,
            trace_context: None,
            owner: None,
            lease_expires_at: None,
        }
    }

    /// The cause, and why an operator must act if the saga is dead-lettered.
    pub fn failure_summary(&self) -> Option<String> {
        match (&self.failure_reason, &self.dead_letter) {
            (Some(cause), Some(note)) => Some(format!("{cause}; {note}")),
            (cause, note) => cause.clone().or_else(|| note.clone()),
        }
    }

    /// The API view.
    pub fn view(&self) -> OrderView {
        let in_flight = !self.status.is_terminal();
        let deadline = match self.status {
            SagaStatus::Compensating => self.compensation_deadline_at,
            _ => Some(self.deadline_at),
        };
        OrderView {
            order_id: self.order_id,
            status: self.status,
            steps: self
                .steps
                .iter()
                .map(|s| StepView {
                    name: s.name.clone(),
                    status: s.status,
                    attempts: s.attempts,
                    compensation_attempts: s.compensation_attempts,
                    last_error: s.last_error.clone(),
                    started_at: s.started_at,
                    finished_at: s.finished_at,
                    output: self.outputs.get(&s.name).cloned(),
                })
                .collect(),
            failure_reason: self.failure_summary(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            customer_id: self.request.customer_id.clone(),
            items: self.request.items.clone(),
            total_cents: super::definition::order_total(&self.outputs),
            country: self.request.shipping_address.country.as_str().to_owned(),
            next_attempt_at: in_flight.then_some(self.next_run_at),
            deadline_at: deadline.filter(|_| in_flight),
            // A lease that ran out names an instance that no longer drives it (it died).
            owner: self
                .owner
                .clone()
                .filter(|_| in_flight && self.lease_expires_at.is_some_and(|until| until > Utc::now())),
            trace_id: self.trace_context.as_deref().and_then(trace_id_of),
        }
    }
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); `None` for anything
/// else, and for the all-zero id, which names no trace.
fn trace_id_of(traceparent: &str) -> Option<String> {
    let trace_id = traceparent.split('-').nth(1)?;
    let valid =
        trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit()) && trace_id.bytes().any(|b| b != b'0');
    valid.then(|| trace_id.to_ascii_lowercase())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn the_trace_id_is_read_from_a_traceparent_and_nothing_else() {
        use super::trace_id_of;
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(trace_id_of(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(), Some(id));
        assert_eq!(trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id_of("00-xyz-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id_of("garbage"), None);
    }

    use serde_json::json;

    use super::*;

    #[test]
    fn a_step_state_leaves_its_defaults_out_and_reads_back_the_same() {
        let pending = StepState::new("reserve_inventory");
        let stored = serde_json::to_value(&pending).unwrap();
        assert_eq!(stored, json!({ "name": "reserve_inventory", "status": "pending", "attempts": 0 }));
        assert_eq!(serde_json::from_value::<StepState>(stored).unwrap(), pending);

        let now = Utc::now().trunc_subsecs(6);
        let full = StepState {
            status: StepStatus::Compensated,
            attempts: 3,
            compensation_attempts: 2,
            ambiguous: true,
            last_error: Some("timed out".into()),
            started_at: Some(now),
            finished_at: Some(now),
            ..StepState::new("process_payment")
        };
        let stored = serde_json::to_value(&full).unwrap();
        assert_eq!(stored.as_object().unwrap().len(), 8, "nothing that differs from a default is left out");
        assert_eq!(serde_json::from_value::<StepState>(stored).unwrap(), full);
    }

    #[test]
    fn a_step_state_written_with_every_field_still_reads() {
        // How rows were written before defaults were left out: they must still load.
        let old = json!({ "name": "create_shipment", "status": "succeeded", "attempts": 1,
            "compensation_attempts": 0, "ambiguous": false, "last_error": null,
            "started_at": "2026-12-03T17:41:49.003364Z", "finished_at": null });
        let state: StepState = serde_json::from_value(old).unwrap();
        assert_eq!(state.status, StepStatus::Succeeded);
        assert_eq!(state.attempts, 1);
        assert!(state.started_at.is_some() && state.finished_at.is_none() && !state.ambiguous);
    }
}
