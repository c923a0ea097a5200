//! Payment's business metrics: names and descriptions in one place.

/// `payment_captures_total{result}`: capture attempts by outcome
/// (`captured`, `replayed`, `declined`, `unknown_customer`, `refused`).
pub const CAPTURES_TOTAL: &str = "payment_captures_total";
/// `payment_refunds_total{result}`: refunds by outcome (`refunded`, `tombstone`, `replayed`).
pub const REFUNDS_TOTAL: &str = "payment_refunds_total";

/// Registers the descriptions with the recorder.
pub fn describe() {
    metrics::describe_counter!(CAPTURES_TOTAL, "Payment capture requests by outcome.");
    metrics::describe_counter!(REFUNDS_TOTAL, "Payment refunds (compensations) by outcome.");
}
