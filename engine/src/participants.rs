//! What the executor needs of the participants, as a trait: [`crate::clients::ParticipantClient`]
//! calls them over HTTP; the executor simulation plugs in participants whose every call waits
//! for the seeded scheduler to decide its fate (answered, refused, lost, landed after the fact).

use std::future::Future;

use serde_json::Value;
use uuid::Uuid;

use super::{
    definition::{Participant, StepDefinition},
    outcome::{CallOutcome, Inspection},
};

/// The three calls of the participant contract, keyed by order id, and the readiness probe.
/// Each returns within its timeout.
pub trait Participants: Send + Sync + 'static {
    /// `PUT`: do the step.
    fn act(&self, step: &StepDefinition, order_id: Uuid, body: &Value) -> impl Future<Output = CallOutcome> + Send;

    /// `DELETE`: undo the step (or tombstone it if it never happened).
    fn compensate(&self, step: &StepDefinition, order_id: Uuid) -> impl Future<Output = CallOutcome> + Send;

    /// `GET`: did the step happen?
    fn inspect(&self, step: &StepDefinition, order_id: Uuid) -> impl Future<Output = Inspection> + Send;

    /// Whether the participant is ready to serve again (its `/readyz`): the probe of its open
    /// circuit.
    fn probe(&self, participant: &Participant) -> impl Future<Output = bool> + Send;
}
