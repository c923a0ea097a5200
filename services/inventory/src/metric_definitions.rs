//! Inventory's business metrics: names and descriptions in one place.

/// `inventory_reservations_total{result}`: reserve attempts by outcome
/// (`reserved`, `replayed`, `out_of_stock`, `unknown_sku`, `invalid_total`, `refused`).
pub const RESERVATIONS_TOTAL: &str = "inventory_reservations_total";
/// `inventory_releases_total{result}`: releases by outcome (`released`, `tombstone`, `replayed`).
pub const RELEASES_TOTAL: &str = "inventory_releases_total";

/// Registers the descriptions with the recorder.
pub fn describe() {
    metrics::describe_counter!(RESERVATIONS_TOTAL, "Reservation requests by outcome.");
    metrics::describe_counter!(RELEASES_TOTAL, "Reservation releases (compensations) by outcome.");
}
