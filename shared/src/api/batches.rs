//! Wire DTOs of the orchestrator's batch operations (`/batch-operations`): an operator's retry
//! or cancel of every saga a filter matches, durable and resumable.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{SagaStatus, Text, wire_enum::wire_enum};

wire_enum! {
    /// What a batch does to each saga: what `POST /orders/{id}/retry` or `/cancel` does.
    pub enum BatchAction {
        /// Resume a failed saga.
        Retry = "retry",
        /// Compensate a saga going forward.
        Cancel = "cancel",
    }
}

wire_enum! {
    /// Where a batch is.
    pub enum BatchStatus {
        /// Sagas are still to be acted on (after a restart, by whichever instance claims it).
        Running = "running",
        /// Every matched saga was acted on.
        Done = "done",
    }
}

wire_enum! {
    /// What came of acting on one saga.
    pub enum BatchResult {
        /// Acted on, as the single endpoint would have (202).
        Done = "done",
        /// Its state did not allow the action (409), or it is gone.
        Refused = "refused",
        /// It kept changing under the action; not acted on.
        Failed = "failed",
    }
}

/// Which sagas a batch acts on: those in `status` that meet every other condition given (the
/// same conditions as `GET /orders`), fixed when the batch is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchFilter {
    /// Only sagas in this status.
    pub status: SagaStatus,
    /// Only order ids starting with these hex digits (dashes ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-fA-F][0-9a-fA-F-]{0,35}$", max_length = 36)]
    pub order_id_prefix: Option<String>,
    /// Only sagas accepted at least this many seconds before the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than_s: Option<u64>,
    /// Only this customer's orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64)]
    pub customer_id: Option<String>,
    /// Only sagas at this step, going forward or compensating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Only sagas whose failure reason contains this text (any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub reason: Option<String>,
    /// Only sagas accepted at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<DateTime<Utc>>,
    /// Only sagas accepted before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<DateTime<Utc>>,
    /// Only sagas in flight without progress for `STUCK_AFTER_MS`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stuck: bool,
}

/// `POST /batch-operations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// What to do to each saga.
    pub action: BatchAction,
    /// Which sagas.
    pub filter: BatchFilter,
    /// At most this many sagas, oldest first (1–10000, default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Who acts (in each saga's timeline; default `operator`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<Text<100>>,
    /// Why (in each saga's timeline, after the batch's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text<500>>,
}

/// One matched saga and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    /// The saga.
    pub order_id: Uuid,
    /// `null` while it is still to be acted on.
    pub result: Option<BatchResult>,
    /// Why it was refused or failed.
    pub detail: Option<String>,
    /// When it was acted on.
    pub acted_at: Option<DateTime<Utc>>,
}

/// A batch operation and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchView {
    /// Its id (in every acted-on saga's timeline).
    pub id: Uuid,
    /// What it does.
    pub action: BatchAction,
    /// Where it is.
    pub status: BatchStatus,
    /// Which sagas it matched.
    pub filter: BatchFilter,
    /// Its bound on the sagas matched.
    pub max: u32,
    /// Who asked.
    pub operator: String,
    /// Why.
    pub reason: Option<String>,
    /// Sagas matched when it was created.
    pub matched: u64,
    /// Acted on.
    pub done: u64,
    /// Refused by their state.
    pub refused: u64,
    /// Not acted on because they kept changing.
    pub failed: u64,
    /// Still to be acted on.
    pub pending: u64,
    /// The instance acting on it now, while it runs.
    pub owner: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its last saga was acted on.
    pub finished_at: Option<DateTime<Utc>>,
    /// Each matched saga and its result, when asked for (`?results=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<BatchItem>>,
}
