//! Inventory: products with stock, and reservations of stock per order (the saga's first step).
//!
//! `PUT /reservations/{order_id}` reserves every line or nothing; `DELETE` releases it. Stock moves
//! only through conditional updates in the transaction that records the reservation.

mod db;
mod metric_definitions;
mod routes;

/// The process entry point: a participant's life ([`saga_shared::server::participant_main`])
/// around this service's migrations and routes.
pub fn main() -> std::process::ExitCode {
    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/inventory");
    saga_shared::server::participant_main(&saga_shared::suite::INVENTORY, &MIGRATOR, routes::spec)
}
