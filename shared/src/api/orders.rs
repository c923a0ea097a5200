//! Wire DTOs of the orchestrator's API (`/orders`), shared by the server, tests and tools.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Address, CustomerId, Items, Text, wire_enum::wire_enum};

/// `POST /orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// The paying customer.
    pub customer_id: CustomerId,
    /// 1–50 order lines.
    pub items: Items,
    /// Where to deliver.
    pub shipping_address: Address,
}

wire_enum! {
    /// Where a saga is.
    pub enum SagaStatus {
        /// Accepted, no step finished yet.
        Pending = "pending",
        /// Going forward through the steps.
        Running = "running",
        /// Every step succeeded.
        Completed = "completed",
        /// Undoing the steps that succeeded (or may have), newest first.
        Compensating = "compensating",
        /// Every step that succeeded (or may have) is undone.
        Compensated = "compensated",
        /// Compensation exhausted its budget (or a step after the pivot failed for good): an
        /// operator must act (`POST /orders/{id}/retry`).
        Failed = "failed",
    }
}

impl SagaStatus {
    /// The statuses a saga ends in: nothing left to do on its own.
    pub const TERMINAL: [Self; 3] = [Self::Completed, Self::Compensated, Self::Failed];
    /// The statuses of a saga with work left, which a driver (or recovery) moves on.
    pub const OPEN: [Self; 3] = [Self::Pending, Self::Running, Self::Compensating];

    /// Whether the saga has nothing left to do on its own.
    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }

    /// `'a', 'b'`: statuses for an SQL `in (…)`. Literal rather than a bound array where the
    /// planner must match the predicate against a partial index (`sagas_due` is on the open
    /// statuses).
    pub fn sql_list(statuses: &[Self]) -> String {
        statuses.iter().map(|status| format!("'{}'", status.as_str())).collect::<Vec<_>>().join(", ")
    }

    /// Whether the saga is still going forward through its steps.
    pub fn is_forward(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }
}

wire_enum! {
    /// Where one step is.
    pub enum StepStatus {
        /// Not attempted yet (or never, once the saga ended).
        Pending = "pending",
        /// Not done yet as far as the log knows: an attempt failed without reaching the
        /// participant, or reconciliation found no record. Another attempt follows a backoff.
        Retrying = "retrying",
        /// It may have happened: an attempt's outcome is unknown (timeout, lost connection, 5xx),
        /// or the saga was resumed from a log that never recorded the call in flight. The
        /// participant is asked before anything else is decided.
        Unknown = "unknown",
        /// The participant did it.
        Succeeded = "succeeded",
        /// The participant refused it for good (4xx), or retries ran out.
        Failed = "failed",
        /// Its compensation is being attempted.
        Compensating = "compensating",
        /// Its compensation succeeded.
        Compensated = "compensated",
    }
}

/// One step of an order's saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StepView {
    /// `reserve_inventory`, `process_payment`, `create_shipment` or `send_confirmation`.
    pub name: String,
    /// Where the step is.
    pub status: StepStatus,
    /// Action attempts so far.
    pub attempts: u32,
    /// Compensation attempts so far.
    pub compensation_attempts: u32,
    /// The last error seen (action or compensation).
    pub last_error: Option<String>,
    /// When the first attempt was made.
    pub started_at: Option<DateTime<Utc>>,
    /// When the step (or its compensation) finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// What the step produced that the order keeps (inventory's `total_cents`, shipping's
    /// `tracking_number`), once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
}

/// An order and its saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    /// The order's id (also its saga's id).
    pub order_id: Uuid,
    /// Where the saga is.
    pub status: SagaStatus,
    /// Every step, in saga order.
    pub steps: Vec<StepView>,
    /// Why the saga compensated or failed.
    pub failure_reason: Option<String>,
    /// When the order was accepted.
    pub created_at: DateTime<Utc>,
    /// When the saga last changed.
    pub updated_at: DateTime<Utc>,
    /// Who ordered.
    pub customer_id: CustomerId,
    /// What was ordered.
    pub items: Items,
    /// What the order costs, once inventory has priced it.
    pub total_cents: Option<i64>,
    /// Where it ships to (the country only: the street address is never shown).
    pub country: String,
    /// While the saga is in flight: when its next move is due (after a retry's backoff, say).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// While the saga is in flight: when its current direction runs out of time (the saga's
    /// deadline going forward, the compensation budget going backward).
    pub deadline_at: Option<DateTime<Utc>>,
    /// While the saga is in flight: the orchestrator instance driving it (none between a
    /// released or expired lease and the next claim).
    pub owner: Option<String>,
    /// The trace its spans belong to (32 hex digits), when traces are exported: what a trace
    /// UI (`/trace/{trace_id}` in Jaeger) finds it by.
    pub trace_id: Option<String>,
}

/// One entry of a saga's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SagaEvent {
    /// Position in the global log (increasing).
    pub id: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What the entry is about: the saga, an action or compensation call, a reconciliation or
    /// an operator's action.
    pub kind: EventKind,
    /// The step concerned, if any.
    pub step: Option<String>,
    /// The attempt number, for attempts.
    pub attempt: Option<i32>,
    /// What came of it.
    pub outcome: EventOutcome,
    /// Details: the error, the reason given by an operator, …
    pub detail: Option<String>,
    /// The orchestrator instance, or the operator named in the request.
    pub actor: String,
}

wire_enum! {
    /// What a timeline entry is about.
    pub enum EventKind {
        /// The saga as a whole: started, claimed, compensating, completed, compensated, failed.
        Saga = "saga",
        /// A step's action call (`PUT`).
        Action = "action",
        /// A step's compensation call (`DELETE`).
        Compensation = "compensation",
        /// A reconciliation: the participant asked (`GET`) whether a step happened.
        Reconcile = "reconcile",
        /// An operator's action: retry or cancel.
        Operator = "operator",
    }
}

wire_enum! {
    /// What came of a timeline entry. Which outcomes go with which kind:
    /// `saga`: started, claimed, compensating, completed, compensated, failed;
    /// `action`/`compensation`: ok, permanent, transient, timeout;
    /// `reconcile`: happened, compensated, not_found, unreachable; `operator`: retry, cancel.
    pub enum EventOutcome {
        /// The order was accepted and its saga written.
        Started = "started",
        /// An instance took the saga over (a lease expired, or it was released).
        Claimed = "claimed",
        /// The saga began undoing its steps.
        Compensating = "compensating",
        /// Every step succeeded.
        Completed = "completed",
        /// Every step that may have happened is undone; for `reconcile`, the participant's
        /// record says compensated.
        Compensated = "compensated",
        /// The saga needs an operator.
        Failed = "failed",
        /// The call succeeded.
        Ok = "ok",
        /// The participant refused for good (4xx).
        Permanent = "permanent",
        /// No usable answer (5xx, lost or refused connection); a retry may succeed.
        Transient = "transient",
        /// No answer within the step's timeout: it may have happened.
        Timeout = "timeout",
        /// Reconciliation: the step happened.
        Happened = "happened",
        /// Reconciliation: the participant has no record of the step.
        NotFound = "not_found",
        /// Reconciliation: the participant could not be asked.
        Unreachable = "unreachable",
        /// An operator resumed a failed saga.
        Retry = "retry",
        /// An operator cancelled the saga.
        Cancel = "cancel",
    }
}

/// Body of `POST /orders/{id}/retry` and `/cancel` (optional): who acts and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorAction {
    /// Who acts (recorded in the timeline; default `operator`).
    pub operator: Option<Text<100>>,
    /// Why (recorded in the timeline).
    pub reason: Option<Text<500>>,
}

#[cfg(test)]
mod tests {
    use super::SagaStatus;

    #[test]
    fn every_status_is_open_or_terminal_and_never_both() {
        for &status in SagaStatus::ALL {
            let (open, terminal) = (SagaStatus::OPEN.contains(&status), SagaStatus::TERMINAL.contains(&status));
            assert!(open != terminal, "{status:?}");
            assert_eq!(status.is_terminal(), terminal);
        }
        assert_eq!(SagaStatus::sql_list(&SagaStatus::OPEN), "'pending', 'running', 'compensating'");
    }

    #[test]
    fn the_due_index_covers_exactly_the_open_statuses() {
        // The recovery claim's predicate must match this partial index's for the index to be used.
        let migration = include_str!("../../../migrations/orchestrator/0001_sagas.sql");
        let open = SagaStatus::sql_list(&SagaStatus::OPEN);
        assert!(migration.contains(&format!("where status in ({open});")), "sagas_due is not on ({open})");
    }
}
