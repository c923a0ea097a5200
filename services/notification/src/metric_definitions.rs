//! Notification's business metrics: names and descriptions in one place.

/// `notification_confirmations_total{result}`: confirmations by outcome (`sent`, `replayed`, `refused`).
pub const CONFIRMATIONS_TOTAL: &str = "notification_confirmations_total";
/// `notification_cancellations_total{result}`: cancellation notices by outcome
/// (`notice_sent`, `tombstone`, `replayed`).
pub const CANCELLATIONS_TOTAL: &str = "notification_cancellations_total";

/// Registers the descriptions with the recorder.
pub fn describe() {
    metrics::describe_counter!(CONFIRMATIONS_TOTAL, "Order confirmations by outcome.");
    metrics::describe_counter!(CANCELLATIONS_TOTAL, "Cancellations (compensations) by outcome.");
}
