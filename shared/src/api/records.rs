//! The state of a participant's record of one order's step, typed: the ledger's own two states
//! and each service's names for them, so the orchestrator reads "done or compensated" from any
//! participant without comparing service-specific strings.

use serde::de::DeserializeOwned;

use super::{Notification, Payment, Reservation, Shipment, wire_enum::wire_enum};

wire_enum! {
    /// Where a participant's step ledger row is (the `state` column of every step table).
    pub enum RecordState {
        /// The step was done and stands.
        Done = "done",
        /// The step was undone, or tombstoned before it ever ran.
        Compensated = "compensated",
    }
}

wire_enum! {
    /// A reservation's status.
    pub enum ReservationStatus {
        /// The stock is held for the order.
        Reserved = "reserved",
        /// The stock was given back (or never taken: a tombstone).
        Released = "released",
    }
}

wire_enum! {
    /// A payment's status.
    pub enum PaymentStatus {
        /// The amount was taken from the customer's balance.
        Captured = "captured",
        /// The amount was given back (or never taken: a tombstone).
        Refunded = "refunded",
    }
}

wire_enum! {
    /// A shipment's status.
    pub enum ShipmentStatus {
        /// The shipment exists.
        Created = "created",
        /// The shipment was cancelled (or never created: a tombstone).
        Cancelled = "cancelled",
    }
}

wire_enum! {
    /// A notification's status.
    pub enum NotificationStatus {
        /// The confirmation was sent.
        Sent = "sent",
        /// Cancelled: a cancellation notice followed the confirmation (or nothing was sent: a
        /// tombstone).
        Cancelled = "cancelled",
    }
}

/// Declares how a service names the two ledger states, both ways.
macro_rules! record_names {
    ($status:ident, $done:ident, $compensated:ident) => {
        impl From<RecordState> for $status {
            fn from(state: RecordState) -> Self {
                match state {
                    RecordState::Done => Self::$done,
                    RecordState::Compensated => Self::$compensated,
                }
            }
        }

        impl From<$status> for RecordState {
            fn from(status: $status) -> Self {
                match status {
                    $status::$done => RecordState::Done,
                    $status::$compensated => RecordState::Compensated,
                }
            }
        }
    };
}

record_names!(ReservationStatus, Reserved, Released);
record_names!(PaymentStatus, Captured, Refunded);
record_names!(ShipmentStatus, Created, Cancelled);
record_names!(NotificationStatus, Sent, Cancelled);

/// A participant's record of one order's step, as its `GET` answers it.
pub trait StepRecord: DeserializeOwned {
    /// Whether the step stands or was compensated.
    fn state(&self) -> RecordState;

    /// Reads a record from a `GET` answer and says where it is.
    fn state_of(body: &serde_json::Value) -> Result<RecordState, String> {
        Self::deserialize(body).map(|record| record.state()).map_err(|e| format!("unreadable record: {e}"))
    }
}

impl StepRecord for Reservation {
    fn state(&self) -> RecordState {
        self.status.into()
    }
}

impl StepRecord for Payment {
    fn state(&self) -> RecordState {
        self.status.into()
    }
}

impl StepRecord for Shipment {
    fn state(&self) -> RecordState {
        self.status.into()
    }
}

impl StepRecord for Notification {
    fn state(&self) -> RecordState {
        self.status.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_name_maps_to_one_ledger_state_and_back() {
        for &state in RecordState::ALL {
            assert_eq!(RecordState::from(ReservationStatus::from(state)), state);
            assert_eq!(RecordState::from(PaymentStatus::from(state)), state);
            assert_eq!(RecordState::from(ShipmentStatus::from(state)), state);
            assert_eq!(RecordState::from(NotificationStatus::from(state)), state);
        }
    }

    #[test]
    fn a_record_body_tells_its_state_and_a_foreign_body_is_an_error() {
        let shipment = serde_json::json!({
            "order_id": "00000000-0000-0000-0000-000000000001", "status": "cancelled", "tombstone": true,
            "tracking_number": null, "country": null,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
        });
        assert_eq!(Shipment::state_of(&shipment), Ok(RecordState::Compensated));
        assert!(Payment::state_of(&shipment).is_err(), "a shipment is not a payment");
    }
}
