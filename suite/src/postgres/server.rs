//! The postmaster process: how to start it (a [`ServerSpec`], recorded in the state file so any
//! sagactl process can start the same server again on the same port and data), waiting until it
//! takes connections, and stopping it.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use super::os_user::ClusterUser;
use crate::process::{Signal, is_alive, kill_with_children, send_signal, wait_gone};
use crate::text::log_tail;

/// How long the server may take to accept its first connection.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

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
    pub fn spawn(&self, fresh_log: bool) -> anyhow::Result<Child> {
        let user = ClusterUser::detect()?;
        let mut log = OpenOptions::new()
            .create(true)
            .write(true)
            .append(!fresh_log)
            .truncate(fresh_log)
            .open(&self.log_path)
            .with_context(|| format!("cannot open {}", self.log_path.display()))?;
        if !fresh_log {
            let _ = writeln!(log, "--- sagactl: starting postgres again ---");
        }
        let log_err = log.try_clone().context("cannot duplicate the log file handle")?;
        let mut cmd = user.exec_command(&self.binary);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(&self.socket_dir)
            .args(["-c", "listen_addresses=127.0.0.1"]);
        for setting in &self.settings {
            cmd.args(["-c", setting]);
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err).process_group(0);
        cmd.spawn().with_context(|| format!("cannot start {}", self.binary.display()))
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
/// password), failing early with the end of the log if the process exits first.
pub(super) async fn wait_ready(child: &mut Child, admin_url: &str, log: &Path) -> Result<(), StartError> {
    let options = PgConnectOptions::from_str(admin_url)
        .map_err(|e| StartError::Failed(anyhow!("invalid admin URL: {e}")))?
        .disable_statement_logging();
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = log_tail(log, 30);
            if is_bind_failure(&tail) {
                return Err(StartError::PortTaken);
            }
            if is_leftover_failure(&tail) {
                return Err(StartError::Leftovers);
            }
            return Err(StartError::Failed(anyhow!(
                "Postgres exited during start-up ({status}); end of {}:\n{tail}",
                log.display()
            )));
        }
        let attempt = tokio::time::timeout(Duration::from_secs(2), options.connect()).await;
        if let Ok(Ok(conn)) = attempt {
            let _ = conn.close().await;
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StartError::Failed(anyhow!(
                "Postgres did not accept connections within {}s; end of {}:\n{}",
                READY_TIMEOUT.as_secs(),
                log.display(),
                log_tail(log, 30)
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the server described by `spec` again (after a kill or a stop) and waits until it
/// takes connections; returns its postmaster's PID. The process is left running detached.
pub async fn restart_server(spec: &ServerSpec, admin_url: &str) -> anyhow::Result<u32> {
    // A killed postmaster's backends notice and exit within moments; until then the new one
    // refuses to start on their shared memory.
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        let mut child = spec.spawn(false)?;
        match wait_ready(&mut child, admin_url, &spec.log_path).await {
            Ok(()) => {
                let pid = child.id();
                // Someone must reap the postmaster when it dies: unreaped, its PID stays taken
                // and the next start refuses ("another postmaster is running"). A long-lived
                // caller (chaos) reaps it here; when a short-lived one (`sagactl start`) exits,
                // the orphan goes to init, which reaps it.
                std::thread::spawn(move || child.wait());
                return Ok(pid);
            }
            Err(StartError::Leftovers) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(StartError::PortTaken) => bail!("port {} of Postgres is in use by another process", spec.port),
            Err(StartError::Leftovers) => {
                bail!("the previous Postgres is still shutting down; end of {}", spec.log_path.display())
            }
            Err(StartError::Failed(err)) => {
                // Not recorded anywhere: leave nothing running behind.
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
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

/// The postmaster child process of the sagactl process that created the cluster; dropping it
/// stops the server.
pub(super) struct Server {
    pub(super) child: Child,
}

impl Server {
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Also reaps the child once it has exited, so its PID stops looking alive.
    pub(super) fn has_exited(&mut self) -> bool {
        // An error here means the child was already reaped: gone either way.
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// A blocking fast shutdown, because this runs from `Drop`; it takes ~0.1 s.
    fn stop(&mut self) {
        if self.has_exited() {
            return;
        }
        if let Err(err) = send_signal(self.pid(), Signal::Int) {
            eprintln!("sagactl: warning: {err:#}");
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.has_exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "sagactl: warning: Postgres (pid {}) ignored fast shutdown for {}s; killing it",
            self.pid(),
            STOP_TIMEOUT.as_secs()
        );
        let _ = kill_with_children(self.pid());
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
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
