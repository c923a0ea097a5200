//! The suite as a user runs it: `sagactl up` in a state directory of its own, controlled with
//! the same `sagactl` commands a user types in another terminal. For the tests of the launcher
//! itself, of killing Postgres, and of the load, chaos and audit tools.

use std::{
    path::PathBuf,
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use saga_suite::poll::Poll;
use serde_json::Value;

use crate::{
    client::Http,
    processes::{ORCHESTRATOR_TEST_ENV, bin_dir},
};

/// The services `up` starts, in the order it starts them.
pub use saga_shared::suite::NAMES as UP_SERVICES;
/// The admin (and operator) token of suites started here.
pub const UP_ADMIN_TOKEN: &str = "up-test-admin-token";

/// A running `sagactl up`; dropping it stops the suite (SIGTERM, like Ctrl-C).
#[derive(Debug)]
pub struct UpSuite {
    child: Option<Child>,
    /// The state directory (`SAGA_STATE_DIR`): state file, logs.
    pub state_dir: PathBuf,
    /// Removes `state_dir` on drop, unless the test failed (its logs are then kept).
    scratch: tempfile::TempDir,
    ports: Vec<(&'static str, u16)>,
    /// Keeps other test processes off `ports` while this suite lives.
    _reserved: saga_suite::ports::Reserved,
    stdout: PathBuf,
    stderr: PathBuf,
    /// A client with a generous timeout.
    pub http: Http,
}

impl UpSuite {
    /// Runs `sagactl up ARGS` with `env` on top of short test timeouts, and waits until it says
    /// the suite is up.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let scratch = tempfile::Builder::new().prefix("saga-up-").tempdir().expect("state dir");
        let state_dir = scratch.path().to_path_buf();
        let reserved = saga_suite::ports::reserve(UP_SERVICES.len()).expect("reserved ports");
        let ports: Vec<(&'static str, u16)> =
            UP_SERVICES.iter().copied().zip(reserved.ports().iter().copied()).collect();
        let (stdout, stderr) = (state_dir.join("up.stdout"), state_dir.join("up.stderr"));
        let mut command = Command::new(bin_dir().join("sagactl"));
        command
            // As a user runs it: from the repository root, where it finds the dashboards and
            // the alert rules.
            .current_dir(crate::repo_root())
            .arg("up")
            .args(args)
            .env("SAGA_STATE_DIR", &state_dir)
            .env("SAGA_BIN_DIR", bin_dir())
            .env("ADMIN_TOKEN", UP_ADMIN_TOKEN)
            .env("PROMETHEUS", "")
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "info,sqlx=warn")
            .envs(ORCHESTRATOR_TEST_ENV)
            .envs(ports.iter().map(|(name, port)| (format!("{}_PORT", name.to_uppercase()), port.to_string())))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let child = command.spawn().expect("cannot start sagactl up (run `cargo build --workspace` first)");
        let mut suite = Self {
            child: Some(child),
            state_dir,
            scratch,
            ports,
            _reserved: reserved,
            stdout,
            stderr,
            http: Http::new(Duration::from_secs(30)),
        };
        suite.wait_up().await;
        suite
    }

    async fn wait_up(&mut self) {
        let up = Poll::new(Duration::from_secs(90), Duration::from_millis(100))
            .holds(async || {
                if std::fs::read_to_string(&self.stdout).unwrap_or_default().contains("The saga suite is up.") {
                    return true;
                }
                let status = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
                assert!(status.is_none(), "sagactl up exited ({status:?}) during start-up:\n{}", self.stderr());
                false
            })
            .await;
        assert!(up, "sagactl up not up within 90 s:\n{}", self.stderr());
    }

    /// Runs `sagactl ARGS` against this suite, as a user in another terminal would.
    pub async fn sagactl(&self, args: &[&str]) -> Output {
        self.sagactl_with_env(args, &[]).await
    }

    /// [`Self::sagactl`] with `env` on top (e.g. another `OPERATOR_TOKEN`).
    pub async fn sagactl_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = tokio::process::Command::new(bin_dir().join("sagactl"));
        command
            .args(args)
            .env("SAGA_STATE_DIR", &self.state_dir)
            .env("ADMIN_TOKEN", UP_ADMIN_TOKEN)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .unwrap_or_else(|_| panic!("sagactl {args:?} did not finish within 120 s"))
            .expect("cannot run sagactl")
    }

    /// Runs `sagactl ARGS` and asserts it succeeded; returns its stdout.
    pub async fn sagactl_ok(&self, args: &[&str]) -> String {
        let output = self.sagactl(args).await;
        assert!(
            output.status.success(),
            "sagactl {args:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `http://127.0.0.1:<port of service><path>`.
    pub fn url(&self, service: &str, path: &str) -> String {
        let port = self.ports.iter().find(|(name, _)| *name == service).map(|(_, port)| *port);
        format!("http://127.0.0.1:{}{path}", port.expect("a service up starts"))
    }

    /// What `up` printed on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Whether `up` still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The state file `up` keeps.
    pub fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.state_dir.join("state.json")).expect("state.json");
        serde_json::from_str(&text).expect("state.json is JSON")
    }

    /// Polls `check` every 100 ms until it holds, or panics after `timeout` saying `what`.
    pub async fn wait_until<F, Fut>(&self, what: &str, timeout: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let held = Poll::new(timeout, Duration::from_millis(100)).holds(async || check().await).await;
        assert!(held, "{what}: not within {timeout:?}\nup stderr:\n{}", self.stderr());
    }

    /// The status of `GET <service>/readyz`, or 0 when it does not answer.
    pub async fn readyz(&self, service: &str) -> u16 {
        // Longer than the probe's own 2 s bound on its database check.
        let probe = Http::new(Duration::from_secs(5));
        probe.send(reqwest::Method::GET, &self.url(service, "/readyz"), None).await.map_or(0, |a| a.status.as_u16())
    }

    /// Places `body` and waits (long-poll) until its saga ends; returns the order view.
    pub async fn order_to_the_end(&self, body: &Value) -> Value {
        let answer = self.http.send(reqwest::Method::POST, &self.url("orchestrator", "/orders"), Some(body)).await;
        let answer = answer.expect("POST /orders");
        assert_eq!(answer.status, 202, "{}", answer.body);
        let id = answer.body["order_id"].as_str().expect("order_id").to_owned();
        let url = self.url("orchestrator", &format!("/orders/{id}?wait_ms=20000"));
        self.http.get(&url).await.body
    }

    /// Stops the suite as Ctrl-C would and returns `up`'s exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate().expect("sagactl up was already stopped")
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = saga_suite::process::send_signal(child.id(), saga_suite::process::Signal::Term);
        // Blocking, as this also runs from Drop; `up` stops the services within their grace.
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for UpSuite {
    fn drop(&mut self) {
        self.terminate();
        self.scratch.disable_cleanup(std::thread::panicking());
    }
}
