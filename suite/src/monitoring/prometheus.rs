//! A local Prometheus for `sagactl up`, when its binary is on PATH: it scrapes the suite's
//! actual ports and evaluates the project's alert rules (`prometheus/alerts.yml`). When it is
//! missing, `up` says how to get it and runs without.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::process::{Child, Command};

use crate::{
    process::{Signal, send_signal},
    services::LauncherEnv,
    state::{SuiteState, ToolState},
};

/// How to get Prometheus, printed when it is not found.
pub const INSTALL_HINT: &str = "Prometheus not found on PATH: install it (Debian: `apt-get install prometheus`) \
     or set PROMETHEUS to its binary; `docker compose up` runs the suite with Prometheus and Grafana";

/// How often the local Prometheus scrapes and evaluates (also the Grafana datasource's
/// `timeInterval`, so that `$__rate_interval` covers enough samples).
pub const SCRAPE_INTERVAL: &str = "5s";

/// A running local Prometheus; stopped by [`LocalPrometheus::stop`] (or killed on drop).
#[derive(Debug)]
pub struct LocalPrometheus {
    child: Child,
    /// Its web UI and API.
    pub url: String,
    /// The alert rules it loaded, if found.
    pub rules: Option<PathBuf>,
}

impl LocalPrometheus {
    /// What `sagactl status` shows of it (`None` once it was reaped).
    pub fn tool_state(&self) -> Option<ToolState> {
        Some(ToolState { pid: self.child.id()?, url: self.url.clone(), health_url: self.ready_url() })
    }

    /// What answers 200 once it is ready: `up` waits for it, `status` shows it.
    fn ready_url(&self) -> String {
        format!("{}/-/ready", self.url)
    }
}

/// Whether the user switched Prometheus off (`PROMETHEUS=` set but empty).
pub fn disabled(launcher: &LauncherEnv) -> bool {
    launcher.is_set_to_nothing("PROMETHEUS")
}

/// The Prometheus binary: `$PROMETHEUS`, else `prometheus` on PATH.
pub fn find(launcher: &LauncherEnv) -> Option<PathBuf> {
    if let Some(path) = launcher.get("PROMETHEUS") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(launcher.get("PATH")?).map(|dir| dir.join("prometheus")).find(|p| p.is_file())
}

/// The project's alert rules: `SAGA_ALERT_RULES`, else `prometheus/alerts.yml` under the current
/// directory (where `up` is normally run: the repository root).
fn rules_path() -> Option<PathBuf> {
    std::env::var_os("SAGA_ALERT_RULES")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok().map(|d| d.join("prometheus/alerts.yml")))
        .filter(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
}

/// A Prometheus configuration scraping `targets` (job name, loopback port) every `interval`
/// (e.g. `5s`), evaluating `rules` as often. The job names the service; the HTTP metrics carry
/// their own `service` label, so none is added here.
pub fn scrape_config<'a>(
    interval: &str,
    rules: Option<&Path>,
    targets: impl IntoIterator<Item = (&'a str, u16)>,
) -> String {
    let mut text = format!("global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n");
    if let Some(rules) = rules {
        text.push_str(&format!("rule_files:\n  - {}\n", rules.display()));
    }
    text.push_str("scrape_configs:\n");
    for (name, port) in targets {
        text.push_str(&format!("  - job_name: {name}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"));
    }
    text
}

/// The scrape configuration for the suite in `state`.
fn config(state: &SuiteState, rules: Option<&Path>) -> String {
    scrape_config(SCRAPE_INTERVAL, rules, state.services.iter().map(|(name, service)| (name.as_str(), service.port)))
}

impl LocalPrometheus {
    /// Starts `binary` on `port` with its data and config under `dir`, and waits until ready.
    pub async fn start(
        binary: &Path,
        state: &SuiteState,
        dir: &Path,
        port: u16,
        log_path: &Path,
    ) -> anyhow::Result<Self> {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
        let rules = rules_path();
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config(state, rules.as_deref()))
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path)?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let prometheus = Self { child, url: format!("http://127.0.0.1:{port}"), rules };
        prometheus.wait_ready(log_path).await?;
        Ok(prometheus)
    }

    async fn wait_ready(&self, log_path: &Path) -> anyhow::Result<()> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client.get(self.ready_url()).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("Prometheus did not become ready in 30 s (log: {})", log_path.display());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM (Prometheus flushes its head block), then SIGKILL after 10 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = send_signal(pid, Signal::Term);
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::{PostgresState, ServiceState};

    #[test]
    fn the_config_scrapes_every_service_on_its_actual_port_and_loads_the_rules() -> anyhow::Result<()> {
        let service = |port| ServiceState {
            pid: None,
            port,
            url: String::new(),
            binary: PathBuf::new(),
            env: BTreeMap::new(),
            log_path: PathBuf::new(),
        };
        let state = SuiteState {
            launcher_pid: 1,
            database: "saga".into(),
            admin_token: "x".repeat(8),
            postgres: PostgresState { pid: None, port: 5432, admin_url: String::new(), server: None },
            services: BTreeMap::from([
                ("payment".to_owned(), service(18082)),
                ("orchestrator".to_owned(), service(18080)),
            ]),
            tools: BTreeMap::new(),
        };
        let text = config(&state, Some(Path::new("/repo/prometheus/alerts.yml")));
        assert!(text.contains("rule_files:\n  - /repo/prometheus/alerts.yml"));
        assert!(text.contains("job_name: payment\n    static_configs:\n      - targets: ['127.0.0.1:18082']"));
        assert!(text.contains("targets: ['127.0.0.1:18080']"));
        Ok(())
    }
}
