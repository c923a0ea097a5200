//! `kill`, `stop`, `start` and `restart` of the suite's own Postgres, from another terminal:
//! the database is a process users kill too. It comes back on the same port and data, so the
//! services (which keep running, answering 503 meanwhile) reconnect by themselves.

use std::time::Duration;

use anyhow::{Context as _, bail};

use saga_suite::invocation::sagactl_command;
use saga_suite::ports::wait_port_free;
use saga_suite::postgres::{restart_server, stop_server};
use saga_suite::process::{kill_with_children, wait_gone};
use saga_suite::state::{LOCK_TIMEOUT, StateDir, StateLock, SuiteState};

/// The name the control commands know Postgres by.
pub const POSTGRES: &str = "postgres";
/// Longest wait for the port of a server that just died to be released.
const PORT_FREE_TIMEOUT: Duration = Duration::from_secs(10);

/// SIGKILLs the postmaster and every backend, as a crash of the database machine would: no
/// checkpoint, no clean shutdown; recovery replays the WAL at the next start.
pub async fn kill(dir: &StateDir) -> anyhow::Result<String> {
    let (_lock, mut state) = open(dir).await?;
    let pid = running(&state)?;
    kill_with_children(pid)?;
    if !wait_gone(pid, Duration::from_secs(5)).await {
        bail!("postgres (pid {pid}) is still there 5 s after SIGKILL");
    }
    state.postgres.pid = None;
    dir.save(&state)?;
    Ok(format!("killed postgres (pid {pid})"))
}

/// Stops Postgres with a fast shutdown (killed if it ignores it).
pub async fn stop(dir: &StateDir) -> anyhow::Result<String> {
    let (_lock, mut state) = open(dir).await?;
    stop_locked(dir, &mut state).await
}

/// Starts the suite's Postgres again on its port and data.
pub async fn start(dir: &StateDir) -> anyhow::Result<String> {
    let (lock, state) = open(dir).await?;
    if let Some(pid) = state.postgres.running_pid() {
        bail!("postgres is already running (pid {pid}); use `{} restart postgres`", sagactl_command());
    }
    start_locked(dir, lock, state).await
}

/// Stops Postgres if it runs, then starts it again.
pub async fn restart(dir: &StateDir) -> anyhow::Result<String> {
    let (lock, mut state) = open(dir).await?;
    let stopped = match state.postgres.running_pid() {
        Some(_) => stop_locked(dir, &mut state).await? + "\n",
        None => String::new(),
    };
    Ok(stopped + &start_locked(dir, lock, state).await?)
}

/// Takes the state lock and loads the state, checking that sagactl runs this Postgres.
async fn open(dir: &StateDir) -> anyhow::Result<(StateLock, SuiteState)> {
    let lock = dir.lock(LOCK_TIMEOUT).await?;
    let state = dir.load_running()?;
    if state.postgres.server.is_none() {
        bail!("this suite uses an external Postgres (DATABASE_URL); sagactl does not run it");
    }
    Ok((lock, state))
}

fn running(state: &SuiteState) -> anyhow::Result<u32> {
    state
        .postgres
        .running_pid()
        .with_context(|| format!("postgres is not running; start it with `{} start postgres`", sagactl_command()))
}

async fn stop_locked(dir: &StateDir, state: &mut SuiteState) -> anyhow::Result<String> {
    let pid = running(state)?;
    let killed = stop_server(pid).await?;
    state.postgres.pid = None;
    dir.save(state)?;
    Ok(if killed {
        format!("postgres (pid {pid}) ignored a fast shutdown; killed it")
    } else {
        format!("stopped postgres (pid {pid})")
    })
}

/// Starts the recorded server, records its PID, then waits (holding the lock, so two starts
/// cannot race for the data directory) until it takes connections.
async fn start_locked(dir: &StateDir, lock: StateLock, mut state: SuiteState) -> anyhow::Result<String> {
    let spec = state.postgres.server.clone().context("internal error: no server recorded")?;
    if !wait_port_free(spec.port, PORT_FREE_TIMEOUT).await {
        bail!("port {} of postgres is in use by another process", spec.port);
    }
    let pid = restart_server(&spec, &state.postgres.admin_url).await?;
    state.postgres.pid = Some(pid);
    dir.save(&state)?;
    drop(lock);
    Ok(format!("started postgres (pid {pid}, port {}); log: {}", spec.port, spec.log_path.display()))
}
