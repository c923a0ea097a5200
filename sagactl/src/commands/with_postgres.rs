//! `sagactl with-postgres -- <cmd…>`: run a command (typically the test suite) against a fast
//! throwaway Postgres, then remove the cluster whatever the command's outcome.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitCode, ExitStatus};

use anyhow::Context as _;

use super::signals::StopSignals;
use saga_suite::postgres::{TempPostgres, TempPostgresOptions};
use saga_suite::process::{Signal, send_signal};

/// Enough for a parallel test run in which every test opens its own pools.
const MAX_CONNECTIONS: u32 = 400;

/// Runs `command` with `SAGA_TEST_ADMIN_URL` set; returns its exit code.
pub async fn with_postgres(command: &[OsString]) -> anyhow::Result<ExitCode> {
    let (program, args) = command.split_first().context("no command given after `--`")?;
    // Installed before anything starts: the default action of SIGINT would kill us before the
    // cluster is removed.
    let mut signals = StopSignals::install()?;
    let pg = TempPostgres::start(TempPostgresOptions {
        fast: true,
        max_connections: MAX_CONNECTIONS,
        ..TempPostgresOptions::default()
    })
    .await?;
    eprintln!("sagactl: temporary Postgres on port {} (pid {}, log {})", pg.port(), pg.pid(), pg.log_path().display());
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("SAGA_TEST_ADMIN_URL", pg.admin_url())
        .spawn()
        .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;

    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("cannot wait for the command")?,
            name = signals.recv() => {
                // A terminal Ctrl-C reaches the command too (same process group); a SIGTERM sent
                // to us alone is passed on. Either way we wait for it, then clean up.
                if name != "SIGINT"
                    && let Some(pid) = child.id() {
                        let _ = send_signal(pid, Signal::Term);
                    }
            }
        }
    };
    drop(pg);
    Ok(exit_code(status))
}

/// The command's own code; death by signal N becomes 128 + N, as in a shell.
fn exit_code(status: ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    match status.signal().and_then(|sig| u8::try_from(128 + sig).ok()) {
        Some(code) => ExitCode::from(code),
        None => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_shell_conventions() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), ExitCode::SUCCESS);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), ExitCode::from(3));
        // Raw wait status 9 = killed by SIGKILL.
        assert_eq!(exit_code(ExitStatus::from_raw(9)), ExitCode::from(137));
    }
}
