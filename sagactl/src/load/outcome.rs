//! What became of one order: what the per-order drivers return and the tally counts.

use std::time::Instant;

use saga_shared::api::SagaStatus;
use serde::Serialize;

use super::mix::Intent;

/// How an accepted order's saga ended, as the load tool saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step done.
    Completed,
    /// Rolled back.
    Compensated,
    /// Compensation gave up: an operator must act (still terminal).
    Failed,
    /// Not terminal when the saga timeout ran out.
    NotFinished,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 4] = [Self::Completed, Self::Compensated, Self::Failed, Self::NotFinished];

    /// The outcome a saga status means, if the status is terminal.
    pub fn of_status(status: SagaStatus) -> Option<Self> {
        match status {
            SagaStatus::Completed => Some(Self::Completed),
            SagaStatus::Compensated => Some(Self::Compensated),
            SagaStatus::Failed => Some(Self::Failed),
            SagaStatus::Pending | SagaStatus::Running | SagaStatus::Compensating => None,
        }
    }

    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Compensated => "compensated",
            Self::Failed => "failed",
            Self::NotFinished => "not finished",
        }
    }

    /// Whether the saga is known to have ended.
    pub fn is_terminal(self) -> bool {
        self != Self::NotFinished
    }
}

/// What happened to one order.
#[derive(Debug)]
pub enum Fate {
    /// Accepted (202); its saga ended as `outcome`, or did not end in time.
    Accepted {
        /// The order id the orchestrator gave.
        order_id: String,
        /// How it ended.
        outcome: Outcome,
        /// The status last seen (the same as `outcome` unless not finished).
        last_status: SagaStatus,
        /// When the load tool saw it end (or gave up).
        ended_at: Instant,
    },
    /// Refused with a 4xx: there is no such order.
    Rejected {
        /// The answer's status.
        status: u16,
        /// The problem's detail, or the body.
        detail: String,
    },
    /// A transport error or a 5xx: whether the order exists is not known.
    PostFailed {
        /// What went wrong.
        error: String,
    },
}

/// One order's result.
#[derive(Debug)]
pub struct OrderResult {
    /// What it was meant to do.
    pub intent: Intent,
    /// When its first `POST` went out.
    pub placed_at: Instant,
    /// What became of it.
    pub fate: Fate,
    /// Polls that failed and were repeated (the orchestrator down or slow).
    pub poll_errors: u32,
    /// The last of those failures.
    pub last_poll_error: Option<String>,
}
