//! Notification: the order confirmation (the saga's last step) and, when a confirmed order is
//! compensated, the cancellation notice.

mod db;
mod metric_definitions;
mod routes;

/// The process entry point: a participant's life ([`saga_shared::server::participant_main`])
/// around this service's migrations and routes.
pub fn main() -> std::process::ExitCode {
    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/notification");
    saga_shared::server::participant_main(&saga_shared::suite::NOTIFICATION, &MIGRATOR, routes::spec)
}
