//! Inventory: products with stock, and reservations of stock per order (the saga's first step).
//!
//! `PUT /reservations/{order_id}` reserves every line or nothing; `DELETE` releases it. Stock moves
//! only through conditional updates in the transaction that records the reservation.

mod db;
mod metric_definitions;
mod routes;

use sqlx::migrate::Migrator;

/// The service's name: schema, log field and metric label.
pub const NAME: &str = "inventory";
/// Default listening port.
pub const DEFAULT_PORT: u16 = 8081;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/inventory");

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
