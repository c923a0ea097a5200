//! Payment: customer balances, and a captured payment per order (the saga's second step).
//!
//! `PUT /payments/{order_id}` captures the amount if the balance covers it (402 otherwise);
//! `DELETE` refunds it. The balance moves only through conditional updates in the transaction that
//! records the payment.

mod db;
mod metric_definitions;
mod routes;

/// The process entry point: a participant's life ([`saga_shared::server::participant_main`])
/// around this service's migrations and routes.
pub fn main() -> std::process::ExitCode {
    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/payment");
    saga_shared::server::participant_main(&saga_shared::suite::PAYMENT, &MIGRATOR, routes::spec)
}
