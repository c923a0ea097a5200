//! The database pool of a service and the migrations of the schema it owns.
//!
//! Every connection has `search_path` set to the service's schema, so unqualified SQL (including
//! sqlx's `_sqlx_migrations` table) lands there and nowhere else. Start-up waits for the database
//! with a bound, so services can start before Postgres in any order.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::time::{Instant, sleep};

use crate::config::ServiceConfig;

/// A lazily connecting pool for the service's role, pinned to its schema.
pub fn pool(config: &ServiceConfig) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(&config.database_url)
        .context("DATABASE_URL is not a valid Postgres URL")?
        .options([("search_path", config.db_schema.as_str())])
        .application_name(&config.db_schema);
    Ok(PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(config.db_acquire_timeout)
        .connect_lazy_with(options))
}

/// Runs the schema's migrations, retrying while the database is unreachable, up to `timeout`.
pub async fn migrate(pool: &PgPool, migrator: &Migrator, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(100);
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(sqlx::migrate::MigrateError::Execute(err))
                if is_connection_error(&err) && Instant::now() < deadline =>
            {
                tracing::warn!(error = %err, "database not reachable yet; retrying migrations");
            }
            Err(err) => return Err(anyhow::Error::new(err).context("running migrations failed")),
        }
        sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

fn is_connection_error(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        // 57P03: the database system is starting up.
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

/// True when the database answers a trivial query within `timeout`.
pub async fn is_reachable(pool: &PgPool, timeout: Duration) -> bool {
    matches!(tokio::time::timeout(timeout, sqlx::query("select 1").execute(pool)).await, Ok(Ok(_)))
}

/// How often [`watch`] makes its round trip: a dead database shows within about a second, for
/// one trivial query a second per service.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps `database_up` true: a round trip every `interval`, each bounded by the interval (a
/// database that hangs counts as down), on a connection of its own with the pool's settings,
/// so that a pool busy with work does not read as a database that is down. A connection that
/// failed is dropped and made again at the next round. Runs until dropped.
pub async fn watch(pool: PgPool, interval: Duration) {
    use sqlx::Connection as _;
    let options = pool.connect_options();
    let mut connection: Option<sqlx::PgConnection> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let round_trip = async {
            let live = match connection.as_mut() {
                Some(live) => live,
                None => connection.insert(sqlx::PgConnection::connect_with(&options).await?),
            };
            sqlx::query("select 1").execute(live).await.map(drop)
        };
        let up = matches!(tokio::time::timeout(interval, round_trip).await, Ok(Ok(())));
        if !up {
            connection = None;
        }
        metrics::gauge!(crate::metrics::DATABASE_UP).set(if up { 1.0 } else { 0.0 });
    }
}
