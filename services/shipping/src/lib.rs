//! Shipping: a shipment per order (the saga's third step), refused for undeliverable countries.
//!
//! `PUT /shipments/{order_id}` books the shipment and returns its tracking number; `DELETE`
//! cancels it.

mod db;
mod metric_definitions;
mod routes;

use sqlx::migrate::Migrator;

/// This service in the suite's table: name (schema, log field, metric label), default port, step.
pub const SERVICE: &saga_shared::suite::Service = &saga_shared::suite::SHIPPING;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/shipping");

/// The process entry point (see [`saga_shared::server::block_on_main`] for why it lives here).
pub fn main() -> std::process::ExitCode {
    saga_shared::server::block_on_main(SERVICE.name, run())
}

/// Runs the service until SIGTERM/Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    saga_shared::server::run(SERVICE, &MIGRATOR, routes::spec).await
}
