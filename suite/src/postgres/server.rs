//! The postmaster process: how to start it (a [`ServerSpec`], recorded in the state file so any
//! sagactl process can start the same server again on the same port and data), waiting until it
//! takes connections, and stopping it.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use super::os_user::ClusterUser;
use crate::process::{Signal, is_alive, kill_with_children, send_signal, wait_gone};
use crate::supervised::{Log, NotReady, OnDrop, Readiness, Stopping, Supervised};

/// How long the server may take to accept its first connection.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// A fast shutdown (SIGINT; SIGTERM would wait for every client to leave), then SIGKILL.
const STOPPING: Stopping = Stopping { signal: Signal::Int, grace: STOP_TIMEOUT };

/// Everything needed to start the server: the binary, the cluster's files, the port and every
/// `-c` setting. Plain data, so `sagactl start postgres` in another terminal starts exactly the
/// server `up` started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// The `postgres` binary.
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    /// The server's log (appended to on every start after the first).
    pub log_path: PathBuf,
    pub port: u16,
    /// `name=value` settings passed as `-c`.
    pub settings: Vec<String>,
}

impl ServerSpec {
    /// Starts the postmaster as the cluster user, in its own process group: a Ctrl-C in the
    /// terminal must not shut the database down before the launcher has stopped the services
    /// that use it, and killing the group kills every backend, as a crash would. With `fresh_log`
    /// the log is truncated (so a failed bind on an earlier port is not mistaken for this one).
    /// Dropping the handle stops the server (a fast shutdown).
    pub fn spawn(&self, fresh_log: bool) -> anyhow::Result<Supervised> {
        let mut command = ClusterUser::detect()?.exec_command(&self.binary);
        command
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(&self.socket_dir)
            .args(["-c", "listen_addresses=127.0.0.1"]);
        for setting in &self.settings {
            command.args(["-c", setting]);
        }
        let log = if fresh_log { Log::Fresh } else { Log::Append };
        Supervised::spawn("postgres", command, &self.log_path, log, STOPPING, OnDrop::Stop)
    }

    /// Whether `pid` is this server's postmaster (alive, and running the postgres binary: a
    /// reused PID must never be signalled).
    pub fn is_running(&self, pid: u32) -> bool {
        is_alive(pid) && crate::process::runs_binary(pid, &self.binary)
    }
}

/// Why a start failed.
pub(super) enum StartError {
    /// Someone else bound the port first; worth another try on a new port.
    PortTaken,
    /// What is left of a killed server is still going away (backends still holding its shared
    /// memory, say); worth another try in a moment.
    Leftovers,
    Failed(anyhow::Error),
}

/// Polls with a real connection to `admin_url` (only that proves the server accepts our
/// password), failing early with the end of the log if the process exits first. A server that
/// did not become ready is killed at once: nothing records it, and its handle's stop on drop
/// would block the caller's thread for a fast shutdown's grace.
pub(super) async fn wait_ready(server: &mut Supervised, admin_url: &str) -> Result<(), StartError> {
    let ready = wait_ready_or_why(server, admin_url).await;
    if ready.is_err() {
        server.kill();
    }
    ready
}

async fn wait_ready_or_why(server: &mut Supervised, admin_url: &str) -> Result<(), StartError> {
    let options = PgConnectOptions::from_str(admin_url)
        .map_err(|e| StartError::Failed(anyhow!("invalid admin URL: {e}")))?
        .disable_statement_logging();
    let log = server.log_path().display().to_string();
    let readiness = Readiness { timeout: READY_TIMEOUT, every: Duration::from_millis(50) };
    let ready = server
        .wait_ready(readiness, async || {
            let attempt = tokio::time::timeout(Duration::from_secs(2), options.connect()).await;
            let Ok(Ok(conn)) = attempt else { return Ok(false) };
            let _ = conn.close().await;
            Ok(true)
        })
        .await;
    match ready {
        Ok(()) => Ok(()),
        Err(NotReady::Exited { tail, .. }) if is_bind_failure(&tail) => Err(StartError::PortTaken),
        Err(NotReady::Exited { tail, .. }) if is_leftover_failure(&tail) => Err(StartError::Leftovers),
        Err(NotReady::Exited { status, tail }) => {
            Err(StartError::Failed(anyhow!("Postgres exited during start-up ({status}); end of {log}:\n{tail}")))
        }
        Err(NotReady::TimedOut { tail }) => Err(StartError::Failed(anyhow!(
            "Postgres did not accept connections within {}s; end of {log}:\n{tail}",
            READY_TIMEOUT.as_secs()
        ))),
        Err(NotReady::Refused(err)) => Err(StartError::Failed(err)),
        Err(NotReady::Lost(err)) => Err(StartError::Failed(anyhow!("cannot check on Postgres: {err}"))),
    }
}

/// Starts the server described by `spec` again (after a kill or a stop) and waits until it
/// takes connections; returns its postmaster's PID. The process is left running detached.
pub async fn restart_server(spec: &ServerSpec, admin_url: &str) -> anyhow::Result<u32> {
    // A killed postmaster's backends notice and exit within moments; until then the new one
    // refuses to start on their shared memory.
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        let mut server = spec.spawn(false)?;
        match wait_ready(&mut server, admin_url).await {
            // Left running for whoever records it; reaped by a thread of ours while we live
            // (chaos runs long), by init once a short-lived `sagactl start` exits.
            Ok(()) => return Ok(server.detach()),
            Err(StartError::Leftovers) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(StartError::PortTaken) => bail!("port {} of Postgres is in use by another process", spec.port),
            Err(StartError::Leftovers) => {
                bail!("the previous Postgres is still shutting down; end of {}", spec.log_path.display())
            }
            Err(StartError::Failed(err)) => return Err(err),
        }
    }
}

/// Stops the postmaster `pid` with a fast shutdown (SIGINT; SIGTERM would wait for every
/// client to leave), killing its whole group after `STOP_TIMEOUT`. Returns whether it had to
/// be killed.
pub async fn stop_server(pid: u32) -> anyhow::Result<bool> {
    send_signal(pid, Signal::Int)?;
    if wait_gone(pid, STOP_TIMEOUT).await {
        return Ok(false);
    }
    kill_with_children(pid)?;
    wait_gone(pid, Duration::from_secs(5)).await;
    Ok(true)
}

fn is_bind_failure(log: &str) -> bool {
    log.contains("could not bind") || log.contains("could not create any TCP/IP sockets")
}

fn is_leftover_failure(log: &str) -> bool {
    log.contains("pre-existing shared memory block") || log.contains("lock file \"postmaster.pid\" already exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_failures_are_recognised_in_the_server_log() {
        assert!(is_bind_failure("LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use"));
        assert!(!is_bind_failure("FATAL:  data directory has wrong ownership"));
    }

    #[test]
    fn a_killed_servers_leftovers_are_recognised_in_the_server_log() {
        assert!(is_leftover_failure("FATAL:  pre-existing shared memory block (key 5432001, ID 3) is still in use"));
        assert!(!is_leftover_failure("FATAL:  data directory has wrong ownership"));
    }
}
