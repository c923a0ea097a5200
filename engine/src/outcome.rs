//! What a participant call came to, in the terms the state machine decides on. The client
//! ([`crate::clients`]) turns HTTP answers into these; the machine never sees HTTP.

use saga_shared::api::EventOutcome;

use super::circuits::Health;
use serde_json::Value;

/// What came of a `PUT` (action) or `DELETE` (compensation).
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// 2xx: done (or already done); the body is the participant's record.
    Done(Value),
    /// 4xx: refused for good; the participant changed nothing, and the same request cannot
    /// succeed later.
    Refused {
        /// The status.
        status: u16,
        /// The problem's detail (or title, or body).
        detail: String,
    },
    /// No usable answer: a retry may succeed.
    Failed {
        /// How it failed, which says whether it may have landed.
        failure: CallFailure,
        /// What happened.
        detail: String,
    },
}

/// How a call failed without an answer to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailure {
    /// The connection was refused: nothing reached the participant, so this attempt did not
    /// land (which says nothing about earlier attempts).
    NotDelivered,
    /// No answer within the step's timeout: it may have landed.
    TimedOut,
    /// A lost connection or a 5xx (which can come after the participant committed): it may have
    /// landed.
    Unanswered,
    /// 503 or 429: the participant says it cannot serve now (its database is down, it is
    /// overloaded). A 503 can still come after a commit, so it may have landed too; it also
    /// counts towards opening the participant's circuit.
    Unavailable,
}

impl CallFailure {
    /// Whether the call may have taken effect.
    pub fn may_have_landed(self) -> bool {
        !matches!(self, Self::NotDelivered)
    }

    /// How the attempt is written in the timeline and labelled in metrics.
    pub fn event_outcome(self) -> EventOutcome {
        match self {
            Self::TimedOut => EventOutcome::Timeout,
            Self::NotDelivered | Self::Unanswered | Self::Unavailable => EventOutcome::Transient,
        }
    }
}

impl CallOutcome {
    /// What the call says about its participant's health, for its circuit.
    pub fn health(&self) -> Health {
        match self {
            Self::Done(_) | Self::Refused { .. } => Health::Up,
            Self::Failed {
                failure: CallFailure::NotDelivered | CallFailure::TimedOut | CallFailure::Unavailable,
                ..
            } => Health::Unavailable,
            Self::Failed { failure: CallFailure::Unanswered, .. } => Health::Unclear,
        }
    }

    /// How the call is written in the timeline; its `as_str` is the `result` label of the call
    /// metrics (`ok`, `permanent`, `transient`, `timeout`).
    pub fn event_outcome(&self) -> EventOutcome {
        match self {
            Self::Done(_) => EventOutcome::Ok,
            Self::Refused { .. } => EventOutcome::Permanent,
            Self::Failed { failure, .. } => failure.event_outcome(),
        }
    }
}

/// What a participant says about an order's step when asked (reconciliation, `GET`).
#[derive(Debug, Clone, PartialEq)]
pub enum Inspection {
    /// The step happened and stands; its record.
    Happened(Value),
    /// The step was compensated (or tombstoned).
    Compensated,
    /// The participant has no record: it has not happened so far. A call still in flight may
    /// land later, so this proves nothing about the step's future.
    Absent,
    /// The participant could not be asked.
    Unreachable(String),
}

impl Inspection {
    /// What the inspection says about its participant's health, for its circuit.
    pub fn health(&self) -> Health {
        match self {
            Self::Happened(_) | Self::Compensated | Self::Absent => Health::Up,
            Self::Unreachable(_) => Health::Unclear,
        }
    }

    /// How the reconciliation is written in the timeline; its `as_str` is the `result` label of
    /// `saga_reconciliations_total`.
    pub fn event_outcome(&self) -> EventOutcome {
        match self {
            Self::Happened(_) => EventOutcome::Happened,
            Self::Compensated => EventOutcome::Compensated,
            Self::Absent => EventOutcome::NotFound,
            Self::Unreachable(_) => EventOutcome::Unreachable,
        }
    }
}
