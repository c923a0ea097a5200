//! Wire DTOs of the orchestrator's API (`/orders`), shared by the server, tests and tools.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Address, CustomerId, Items, Text};

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

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Accepted, no step finished yet.
    Pending,
    /// Going forward through the steps.
    Running,
    /// Every step succeeded.
    Completed,
    /// Undoing the steps that succeeded (or may have), newest first.
    Compensating,
    /// Every step that succeeded (or may have) is undone.
    Compensated,
    /// Compensation exhausted its budget (or a step after the pivot failed for good): an operator
    /// must act (`POST /orders/{id}/retry`).
    Failed,
}

impl SagaStatus {
    /// Every status, for validation and metric label spaces.
    pub const ALL: [SagaStatus; 6] =
        [Self::Pending, Self::Running, Self::Completed, Self::Compensating, Self::Compensated, Self::Failed];

    /// The status as written in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Compensating => "compensating",
            Self::Compensated => "compensated",
            Self::Failed => "failed",
        }
    }

    /// Parses the database/API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Whether the saga has nothing left to do on its own.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Compensated | Self::Failed)
    }
}

/// Where one step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not attempted yet (or never, once the saga ended).
    Pending,
    /// Not done yet, and known not to be: an attempt failed without reaching the participant, or
    /// reconciliation found no record. Another attempt follows after a backoff.
    Retrying,
    /// An attempt's outcome is unknown (timeout, lost connection, 5xx): it may have happened.
    /// The participant is asked before anything else is decided.
    Unknown,
    /// The participant did it.
    Succeeded,
    /// The participant refused it for good (4xx), or retries ran out.
    Failed,
    /// Its compensation is being attempted.
    Compensating,
    /// Its compensation succeeded.
    Compensated,
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
}

/// One entry of a saga's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SagaEvent {
    /// Position in the global log (increasing).
    pub id: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `saga`, `action`, `compensation`, `reconcile` or `operator`.
    pub kind: String,
    /// The step concerned, if any.
    pub step: Option<String>,
    /// The attempt number, for attempts.
    pub attempt: Option<i32>,
    /// What came of it (`ok`, `permanent`, `transient`, `timeout`, `happened`, `not_found`, …).
    pub outcome: String,
    /// Details: the error, the reason given by an operator, …
    pub detail: Option<String>,
    /// The orchestrator instance, or the operator named in the request.
    pub actor: String,
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
