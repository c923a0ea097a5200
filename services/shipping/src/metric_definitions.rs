//! Shipping's business metrics: names and descriptions in one place.

/// `shipping_shipments_total{result}`: shipment requests by outcome
/// (`created`, `replayed`, `undeliverable`, `refused`).
pub const SHIPMENTS_TOTAL: &str = "shipping_shipments_total";
/// `shipping_cancellations_total{result}`: cancellations by outcome (`cancelled`, `tombstone`, `replayed`).
pub const CANCELLATIONS_TOTAL: &str = "shipping_cancellations_total";

/// Registers the descriptions with the recorder.
pub fn describe() {
    metrics::describe_counter!(SHIPMENTS_TOTAL, "Shipment requests by outcome.");
    metrics::describe_counter!(CANCELLATIONS_TOTAL, "Shipment cancellations (compensations) by outcome.");
}
