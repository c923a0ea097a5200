//! The postmaster process: spawning it on a port, waiting until it takes connections, and
//! stopping it.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use super::os_user::ClusterUser;
use super::TempPostgresOptions;
use crate::process::{send_signal, Signal};
use crate::text::log_tail;

/// How long the server may take to accept its first connection.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Paths and user shared by every start attempt.
pub(super) struct Layout<'a> {
    pub(super) user: ClusterUser,
    pub(super) postgres: &'a Path,
    pub(super) data_dir: &'a Path,
    pub(super) socket_dir: &'a Path,
    pub(super) log_path: &'a Path,
}

impl Layout<'_> {
    pub(super) fn spawn(&self, port: u16, opts: &TempPostgresOptions) -> anyhow::Result<Server> {
        // Truncated per attempt, so a failed bind on an earlier port is not mistaken for this one.
        let log = File::create(self.log_path).with_context(|| format!("cannot create {}", self.log_path.display()))?;
        let log_err = log.try_clone().context("cannot duplicate the log file handle")?;
        let mut cmd = self.user.exec_command(self.postgres);
        cmd.arg("-D")
            .arg(self.data_dir)
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(self.socket_dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("max_connections={}", opts.max_connections)]);
        for setting in &opts.settings {
            cmd.args(["-c", setting]);
        }
        if opts.fast {
            for setting in ["fsync=off", "synchronous_commit=off", "full_page_writes=off"] {
                cmd.args(["-c", setting]);
            }
        }
        // Own process group: a Ctrl-C in the terminal must not shut the database down before the
        // launcher has stopped the services that use it.
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err).process_group(0);
        let child = cmd.spawn().with_context(|| format!("cannot start {}", self.postgres.display()))?;
        Ok(Server { child })
    }
}

pub(super) enum StartError {
    /// Someone else bound the port first; worth another try on a new port.
    PortTaken,
    Failed(anyhow::Error),
}

/// The postmaster child process; dropping it stops the server.
pub(super) struct Server {
    child: Child,
}

impl Server {
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(super) fn has_exited(&mut self) -> bool {
        // An error here means the child was already reaped: gone either way.
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls with a real connection: only that proves the server accepts our password.
    pub(super) async fn wait_ready(&mut self, port: u16, password: &str, log: &Path) -> Result<(), StartError> {
        let options = PgConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .username("postgres")
            .password(password)
            .database("postgres")
            .disable_statement_logging();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let tail = log_tail(log, 30);
                if is_bind_failure(&tail) {
                    return Err(StartError::PortTaken);
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
                    "Postgres did not accept connections on port {port} within {}s; end of {}:\n{}",
                    READY_TIMEOUT.as_secs(),
                    log.display(),
                    log_tail(log, 30)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGINT is Postgres' *fast* shutdown (SIGTERM would wait for every client to leave);
    /// after `STOP_TIMEOUT` the server is killed outright.
    fn stop(&mut self) {
        if self.has_exited() {
            return;
        }
        if let Err(err) = send_signal(self.pid(), Signal::Int) {
            eprintln!("sagactl: warning: {err:#}");
        }
        // A blocking wait, because this runs from `Drop`; a fast shutdown takes ~0.1 s.
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
        let _ = self.child.kill();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_failures_are_recognised_in_the_server_log() {
        assert!(is_bind_failure("LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use"));
        assert!(!is_bind_failure("FATAL:  data directory has wrong ownership"));
    }
}
