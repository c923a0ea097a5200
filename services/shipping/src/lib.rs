//! Shipping: a shipment per order (the saga's third step), refused for undeliverable countries.
//!
//! `PUT /shipments/{order_id}` books the shipment and returns its tracking number; `DELETE`
//! cancels it.

mod db;
mod metric_definitions;
mod routes;

/// The process entry point: a participant's life ([`saga_shared::server::participant_main`])
/// around this service's migrations and routes.
pub fn main() -> std::process::ExitCode {
    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/shipping");
    saga_shared::server::participant_main(&saga_shared::suite::SHIPPING, &MIGRATOR, routes::spec)
}
