//! Payment: customer balances, and a captured payment per order (the saga's second step).
//!
//! `PUT /payments/{order_id}` captures the amount if the balance covers it (402 otherwise);
//! `DELETE` refunds it. The balance moves only through conditional updates in the transaction that
//! records the payment.

mod db;
mod metric_definitions;
mod routes;

use sqlx::migrate::Migrator;

/// The service's name: schema, log field and metric label.
pub const NAME: &str = "payment";
/// Default listening port.
pub const DEFAULT_PORT: u16 = 8082;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/payment");

/// The process entry point (see [`saga_shared::server::block_on_main`] for why it lives here).
pub fn main() -> std::process::ExitCode {
    saga_shared::server::block_on_main(NAME, run())
}

/// Runs the service until SIGTERM/Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    saga_shared::server::run(NAME, DEFAULT_PORT, &MIGRATOR, |boot| {
        metric_definitions::describe();
        Ok(routes::spec(boot))
    })
    .await
}
