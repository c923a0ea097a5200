//! Starting one service process and waiting until it reports ready.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use crate::invocation::build_command;
use crate::services::is_fault_var;
use crate::text::{log_tail, shell_quote};

/// How long a service may take to answer `/readyz` with 200 (it migrates its schema first).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
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
    /// Starts the process in its own process group, output appended to its log. Its own group,
    /// so a Ctrl-C in the launcher's terminal reaches only the launcher, which then stops the
    /// services in order; it also lets `start`/`restart` leave the service running detached.
    pub fn spawn(&self) -> anyhow::Result<Child> {
        if !self.binary.is_file() {
            bail!(
                "{} binary not found at {} (build it with `{}`, or set SAGA_BIN_DIR to the \
                 directory holding the service binaries)",
                self.name,
                self.binary.display(),
                build_command()
            );
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path)
            .with_context(|| format!("cannot open {}", self.log_path.display()))?;
        // A marker per start makes restarts easy to find in an appended log.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        writeln!(log, "--- sagactl: starting {} (unix time {now}) ---", self.name)
            .with_context(|| format!("cannot write {}", self.log_path.display()))?;
        let log_err = log.try_clone().context("cannot duplicate the log file handle")?;

        let mut cmd = Command::new(self.binary);
        // Faults reach a service only through the explicit per-service mapping in `env`.
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(is_fault_var) {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env).stdin(Stdio::null()).stdout(log).stderr(log_err).process_group(0);
        cmd.spawn().with_context(|| format!("cannot start {}", self.binary.display()))
    }

    /// Polls `GET /readyz` until it answers 200, failing early (with the end of the log) if the
    /// process exits first.
    pub async fn wait_ready(&self, child: &mut Child) -> anyhow::Result<()> {
        let client = probe_client()?;
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().context("cannot poll the child process")? {
                bail!(
                    "{} exited during start-up ({status}); end of {}:\n{}",
                    self.name,
                    self.log_path.display(),
                    log_tail(self.log_path, 30)
                );
            }
            if let Ok(response) = client.get(&url).send().await
                && response.status() == reqwest::StatusCode::OK
            {
                return self.check_identity(&client, child).await;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not answer 200 on {url} within {}s; end of {}:\n{}",
                    self.name,
                    READY_TIMEOUT.as_secs(),
                    self.log_path.display(),
                    log_tail(self.log_path, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ready, but is it ours? Another process may hold the port (one that picked the same free
    /// port a moment before): `/healthz` says which process answered.
    async fn check_identity(&self, client: &reqwest::Client, child: &Child) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let health: serde_json::Value = client
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("{} answered /readyz but not {url}", self.name))?
            .json()
            .await
            .with_context(|| format!("{url} did not answer JSON"))?;
        let answered = health["pid"].as_u64();
        match (answered, child.id()) {
            (Some(pid), Some(ours)) if pid == u64::from(ours) => Ok(()),
            _ => bail!(
                "port {} answers for another process ({health}), not {} (pid {:?}); end of {}:\n{}",
                self.port,
                self.name,
                child.id(),
                self.log_path.display(),
                log_tail(self.log_path, 30)
            ),
        }
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
        let mut child = Command::new("sleep").arg("30").kill_on_drop(true).spawn()?;

        let err = launch.wait_ready(&mut child).await.err().context("another process's answer was accepted")?;

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
        let mut child = launch.spawn()?;
        let err = launch.wait_ready(&mut child).await.err().context("readiness passed")?;
        let message = format!("{err:#}");
        assert!(message.contains("exited during start-up"), "{message}");
        assert!(message.contains("boom: no DATABASE_URL"), "{message}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
