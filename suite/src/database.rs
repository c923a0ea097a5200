//! The database `up` runs the suite on: a cluster of its own (temporary, or kept in
//! `--data-dir`), or an existing server named by `DATABASE_URL`; and the watch that reports it
//! going down and coming back.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::PgConnectOptions;

use crate::boot::DatabaseChoice;
use crate::postgres::{TempPostgres, TempPostgresOptions, stop_server};
use crate::services::LauncherEnv;
use crate::state::{PostgresState, StateDir};

/// How often the database is checked while the suite runs.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// The database the suite runs on.
#[derive(Debug)]
pub enum Database {
    /// A cluster of `up`'s own. It may be killed, stopped and started again (`sagactl
    /// kill|stop|start postgres`), under another PID, on the same port and data.
    Temporary(Box<TempPostgres>),
    /// `DATABASE_URL` from the environment, used as admin URL; not ours to stop.
    External { admin_url: String, port: u16 },
}

impl Database {
    /// What `sagactl up` runs on: `DATABASE_URL` if set, else a cluster of its own, kept in
    /// `data_dir` if given. Not `fast`: the demo and its benchmarks should see real commit costs.
    pub fn choice(launcher: &LauncherEnv, data_dir: Option<PathBuf>) -> DatabaseChoice {
        match launcher.get("DATABASE_URL") {
            Some(url) => DatabaseChoice::External { admin_url: url.to_owned() },
            None => {
                DatabaseChoice::Temporary(TempPostgresOptions { keep_in: data_dir, ..TempPostgresOptions::default() })
            }
        }
    }

    /// Starts the cluster `choice` asks for, or checks the URL of an external one.
    pub async fn start(choice: &DatabaseChoice) -> anyhow::Result<Self> {
        match choice {
            DatabaseChoice::External { admin_url } => {
                let options =
                    PgConnectOptions::from_str(admin_url).context("DATABASE_URL is not a valid postgres:// URL")?;
                Ok(Self::External { admin_url: admin_url.clone(), port: options.get_port() })
            }
            DatabaseChoice::Temporary(options) => {
                match &options.keep_in {
                    Some(dir) => eprintln!("sagactl: starting Postgres in {} (kept after exit)", dir.display()),
                    None => eprintln!("sagactl: starting a temporary Postgres (DATABASE_URL is not set)"),
                }
                Ok(Self::Temporary(Box::new(TempPostgres::start(options.clone()).await?)))
            }
            DatabaseChoice::Provisioned(_) => {
                anyhow::bail!("internal error: a provisioned database has no server to start")
            }
        }
    }

    /// The postmaster's PID, for a cluster of the suite's own.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Self::Temporary(pg) => Some(pg.pid()),
            Self::External { .. } => None,
        }
    }

    pub fn admin_url(&self) -> String {
        match self {
            Self::Temporary(pg) => pg.admin_url(),
            Self::External { admin_url, .. } => admin_url.clone(),
        }
    }

    pub fn state(&self) -> PostgresState {
        match self {
            Self::Temporary(pg) => PostgresState {
                pid: Some(pg.pid()),
                port: pg.port(),
                admin_url: pg.admin_url(),
                server: Some(pg.spec().clone()),
            },
            Self::External { admin_url, port } => {
                PostgresState { pid: None, port: *port, admin_url: admin_url.clone(), server: None }
            }
        }
    }

    /// Stops the server that runs now (which may have been started again from another
    /// terminal), then drops the cluster (deleting a temporary one's files).
    pub async fn stop(self, dir: &StateDir) {
        let Self::Temporary(mut pg) = self else { return };
        pg.has_exited(); // reaps our own child if it was killed
        let current = dir.load().ok().flatten().and_then(|state| state.postgres.running_pid());
        if let Some(pid) = current.filter(|&pid| pid != pg.pid()) {
            eprintln!("sagactl: stopping Postgres (pid {pid})");
            if let Err(err) = stop_server(pid).await {
                eprintln!("sagactl: warning: {err:#}");
            }
        } else if !pg.has_exited() {
            eprintln!("sagactl: stopping Postgres (pid {})", pg.pid());
        }
        drop(pg);
    }
}

/// Reports on stderr each time a cluster of ours goes down or comes back (under whatever PID the
/// state file records); never returns. The suite keeps running meanwhile: the services answer
/// 503 and `/readyz` 503 until the database is back, and then carry on by themselves.
pub async fn watch_postgres(dir: &StateDir, db: &mut Database) {
    let Database::Temporary(pg) = db else {
        return std::future::pending().await;
    };
    let mut was_up = true;
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    loop {
        tick.tick().await;
        // Reaps our own postmaster once it is gone, so its PID stops looking alive.
        pg.has_exited();
        let Ok(Some(state)) = dir.load() else { continue };
        let running = state.postgres.running_pid();
        match (was_up, running) {
            (true, None) => eprintln!(
                "sagactl: Postgres is down; the services answer 503 until it is back \
                 (`{} start postgres`)",
                crate::invocation::sagactl_command()
            ),
            (false, Some(pid)) => eprintln!("sagactl: Postgres is back (pid {pid})"),
            _ => {}
        }
        was_up = running.is_some();
    }
}
