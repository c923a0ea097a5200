//! The database `up` runs the suite on: a temporary cluster, or an existing server named by
//! `DATABASE_URL`.

use std::str::FromStr as _;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::PgConnectOptions;

use crate::postgres::{TempPostgres, TempPostgresOptions};
use crate::services::LauncherEnv;
use crate::state::PostgresState;

/// How often a temporary cluster is checked while the suite runs.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// The database the suite runs on.
#[derive(Debug)]
pub(super) enum Database {
    Temporary(TempPostgres),
    /// `DATABASE_URL` from the environment, used as admin URL; not ours to stop.
    External {
        admin_url: String,
        port: u16,
    },
}

impl Database {
    pub(super) async fn start(launcher: &LauncherEnv) -> anyhow::Result<Self> {
        if let Some(url) = launcher.get("DATABASE_URL") {
            let options = PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid postgres:// URL")?;
            return Ok(Self::External { admin_url: url.to_owned(), port: options.get_port() });
        }
        eprintln!("sagactl: starting a temporary Postgres (DATABASE_URL is not set)");
        // Not `fast`: the demo and its benchmarks should see real commit costs.
        let pg = TempPostgres::start(TempPostgresOptions::default()).await?;
        Ok(Self::Temporary(pg))
    }

    pub(super) fn admin_url(&self) -> String {
        match self {
            Self::Temporary(pg) => pg.admin_url(),
            Self::External { admin_url, .. } => admin_url.clone(),
        }
    }

    pub(super) fn state(&self) -> PostgresState {
        match self {
            Self::Temporary(pg) => PostgresState { pid: Some(pg.pid()), port: pg.port(), admin_url: pg.admin_url() },
            Self::External { admin_url, port } => {
                PostgresState { pid: None, port: *port, admin_url: admin_url.clone() }
            }
        }
    }
}

/// Resolves only if a temporary Postgres exits; an external one is not watched.
pub(super) async fn postgres_died(db: &mut Database) {
    let Database::Temporary(pg) = db else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    while !pg.has_exited() {
        tick.tick().await;
    }
}
