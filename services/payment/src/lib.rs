//! Payment: customer balances, and a captured payment per order (the saga's second step).
//!
//! `PUT /payments/{order_id}` captures the amount if the balance covers it (402 otherwise);
//! `DELETE` refunds it. The balance moves only through conditional updates in the transaction that
//! records the payment.

mod db;
mod metric_definitions;
mod routes;

use sqlx::migrate::Migrator;

/// This service in the suite's table: name (schema, log field, metric label), default port, step.
pub const SERVICE: &saga_shared::suite::Service = &saga_shared::suite::PAYMENT;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/payment");

/// The process entry point (see [`saga_shared::server::block_on_main`] for why it lives here).
pub fn main() -> std::process::ExitCode {
    saga_shared::server::block_on_main(SERVICE.name, run())
}

/// Runs the service until SIGTERM/Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    saga_shared::server::run(SERVICE, &MIGRATOR, routes::spec).await
}
