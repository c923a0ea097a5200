//! Starting one service of the suite as a [`Supervised`] child and waiting until it reports
//! ready (and is the process we started).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::invocation::build_command;
use crate::process::Signal;
use crate::services::is_fault_var;
use crate::supervised::{Log, OnDrop, Readiness, Stopping, Supervised};
use crate::text::shell_quote;

/// How long a service may take to answer `/readyz` with 200 (it migrates its schema first).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How a service is stopped: SIGTERM (it drains its requests and sagas), then SIGKILL.
pub const STOPPING: Stopping = Stopping { signal: Signal::Term, grace: Duration::from_secs(10) };
/// Per-request bound of readiness and health probes.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Everything needed to start one service.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    pub name: &'a str,
    pub binary: &'a Path,
    /// Variables set on top of the inherited environment.
    pub env: &'a BTreeMap<String, String>,
    pub log_path: &'a Path,
    pub port: u16,
}

impl Launch<'_> {
    /// Starts the process (see [`Supervised::spawn`]), output appended to its log.
    pub fn spawn(&self, on_drop: OnDrop) -> anyhow::Result<Supervised> {
        if !self.binary.is_file() {
            bail!(
                "{} binary not found at {} (build it with `{}`, or set SAGA_BIN_DIR to the \
                 directory holding the service binaries)",
                self.name,
                self.binary.display(),
                build_command()
            );
        }
        let mut command = Command::new(self.binary);
        // Faults reach a service only through the explicit per-service mapping in `env`.
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(is_fault_var) {
                command.env_remove(key);
            }
        }
        command.envs(self.env);
        Supervised::spawn(self.name, command, self.log_path, Log::Append, STOPPING, on_drop)
    }

    /// Polls `GET /readyz` until it answers 200, then checks that the process answering is
    /// `process` (another one may hold the port: one that picked the same free port a moment
    /// before); fails early, with the end of the log, if the process exits first.
    pub async fn wait_ready(&self, process: &mut Supervised) -> anyhow::Result<()> {
        let client = probe_client()?;
        let ready_url = format!("http://127.0.0.1:{}/readyz", self.port);
        let health_url = format!("http://127.0.0.1:{}/healthz", self.port);
        let ours = process.pid();
        let port = self.port;
        let readiness = Readiness { timeout: READY_TIMEOUT, every: Duration::from_millis(100) };
        process
            .ready(readiness, async || {
                let ready = client.get(&ready_url).send().await;
                if !ready.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
                    return Ok(false);
                }
                // A hiccup is only "not yet"; an answer naming another process ends the wait.
                let answered = client.get(&health_url).send().await.and_then(reqwest::Response::error_for_status);
                let Ok(response) = answered else { return Ok(false) };
                let Ok(health) = response.json::<serde_json::Value>().await else { return Ok(false) };
                match health["pid"].as_u64() {
                    Some(pid) if pid == u64::from(ours) => Ok(true),
                    _ => bail!("port {port} answers for another process ({health}), not pid {ours}"),
                }
            })
            .await
    }

    /// A shell command line that starts the service by hand exactly as sagactl does.
    pub fn command_line(&self) -> String {
        let mut parts = vec!["env".to_owned()];
        parts.extend(self.env.iter().map(|(k, v)| shell_quote(&format!("{k}={v}"))));
        parts.push(shell_quote(&self.binary.to_string_lossy()));
        parts.push(format!(">> {} 2>&1", shell_quote(&self.log_path.to_string_lossy())));
        parts.join(" ")
    }
}

/// HTTP client for readiness/health probes; every request is bounded.
pub fn probe_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder().timeout(PROBE_TIMEOUT).build().context("cannot build the HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every HTTP request on `listener` with 200 and `body` (a stand-in for a service
    /// of someone else that holds the port).
    fn answer_forever(listener: std::net::TcpListener, body: &'static str) {
        use std::io::{Read as _, Write as _};
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
    }

    #[tokio::test]
    async fn a_port_answered_by_another_process_is_not_taken_for_the_service_being_started() -> anyhow::Result<()> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        answer_forever(listener, r#"{"status":"ok","service":"payment","pid":1}"#);
        let log_path = std::env::temp_dir().join(format!("sagactl-identity-{}.log", crate::text::random_hex(4)));
        let env = BTreeMap::new();
        let binary = Path::new("/bin/sleep");
        let launch = Launch { name: "payment", binary, env: &env, log_path: &log_path, port };
        let mut sleeper = Command::new("sleep");
        sleeper.arg("30");
        let mut process = Supervised::spawn("sleep", sleeper, &log_path, Log::Append, STOPPING, OnDrop::Kill)?;

        let err = launch.wait_ready(&mut process).await.err().context("another process's answer was accepted")?;

        assert!(format!("{err:#}").contains("answers for another process"), "{err:#}");
        let _ = std::fs::remove_file(&log_path);
        Ok(())
    }

    #[test]
    fn command_line_quotes_values_and_appends_to_the_log() {
        let env = BTreeMap::from([
            ("PORT".to_owned(), "8082".to_owned()),
            ("RUST_LOG".to_owned(), "info,sqlx=warn".to_owned()),
            ("X".to_owned(), "a b".to_owned()),
        ]);
        let launch = Launch {
            name: "payment",
            binary: Path::new("/opt/bin/payment"),
            env: &env,
            log_path: Path::new("/tmp/logs/payment.log"),
            port: 8082,
        };
        assert_eq!(
            launch.command_line(),
            "env PORT=8082 RUST_LOG=info,sqlx=warn 'X=a b' /opt/bin/payment >> /tmp/logs/payment.log 2>&1"
        );
    }

    #[tokio::test]
    async fn a_child_that_exits_early_fails_readiness_with_its_log() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("sagactl-launch-{}", crate::text::random_hex(6)));
        std::fs::create_dir_all(&dir)?;
        let script = dir.join("crashy");
        std::fs::write(&script, "#!/bin/sh\necho 'boom: no DATABASE_URL' >&2\nexit 3\n")?;
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let env = BTreeMap::new();
        let log = dir.join("crashy.log");
        let launch = Launch { name: "crashy", binary: &script, env: &env, log_path: &log, port: 1 };
        let mut process = launch.spawn(OnDrop::Kill)?;
        let err = launch.wait_ready(&mut process).await.err().context("readiness passed")?;
        let message = format!("{err:#}");
        assert!(message.contains("exited during start-up"), "{message}");
        assert!(message.contains("boom: no DATABASE_URL"), "{message}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
