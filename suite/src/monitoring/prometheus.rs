//! A local Prometheus for `sagactl up`, when its binary is on PATH: it scrapes the suite's
//! actual ports and evaluates the project's alert rules (`prometheus/alerts.yml`). When it is
//! missing, `up` says how to get it and runs without.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    process::Signal,
    services::LauncherEnv,
    state::{SuiteState, ToolState},
    supervised::{Log, OnDrop, Readiness, Stopping, Supervised},
};

/// How to get Prometheus, printed when it is not found.
pub const INSTALL_HINT: &str = "Prometheus not found on PATH: install it (Debian: `apt-get install prometheus`) \
     or set PROMETHEUS to its binary; `docker compose up` runs the suite with Prometheus and Grafana";

/// How often the local Prometheus scrapes and evaluates (also the Grafana datasource's
/// `timeInterval`, so that `$__rate_interval` covers enough samples).
pub const SCRAPE_INTERVAL: &str = "5s";

/// How Prometheus is stopped: SIGTERM (it flushes its head block), then SIGKILL after 10 s.
const STOPPING: Stopping = Stopping { signal: Signal::Term, grace: Duration::from_secs(10) };

/// A running local Prometheus; stopped by [`LocalPrometheus::stop`] (or killed on drop).
#[derive(Debug)]
pub struct LocalPrometheus {
    process: Supervised,
    /// Its web UI and API.
    pub url: String,
    /// The alert rules it loaded, if found.
    pub rules: Option<PathBuf>,
}

impl LocalPrometheus {
    /// What `sagactl status` shows of it.
    pub fn tool_state(&self) -> ToolState {
        ToolState { pid: self.process.pid(), url: self.url.clone(), health_url: self.ready_url() }
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
) -> anyhow::Result<String> {
    let jobs: Vec<_> = targets
        .into_iter()
        .map(|(name, port)| {
            serde_json::json!({ "job_name": name, "static_configs": [{ "targets": [format!("127.0.0.1:{port}")] }] })
        })
        .collect();
    let document = serde_json::json!({
        "global": { "scrape_interval": interval, "evaluation_interval": interval },
        "rule_files": rules.map(|rules| vec![rules.display().to_string()]).unwrap_or_default(),
        "scrape_configs": jobs,
    });
    super::yaml_document(&document)
}

/// The scrape configuration for the suite in `state`.
fn config(state: &SuiteState, rules: Option<&Path>) -> anyhow::Result<String> {
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
        std::fs::write(&config_path, config(state, rules.as_deref())?)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let mut process = spawn(command, log_path, OnDrop::Kill)?;
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&mut process, &format!("{url}/-/ready")).await?;
        Ok(Self { process, url, rules })
    }

    /// SIGTERM, then SIGKILL after the grace.
    pub async fn stop(self) {
        self.process.stop().await;
    }
}

/// Starts a Prometheus `command` (its flags given), stopped as Prometheus should be.
pub fn spawn(command: Command, log_path: &Path, on_drop: OnDrop) -> anyhow::Result<Supervised> {
    Supervised::spawn("Prometheus", command, log_path, Log::Append, STOPPING, on_drop)
}

/// Waits until a Prometheus answers 200 on `ready_url` (`/-/ready`).
pub async fn wait_ready(process: &mut Supervised, ready_url: &str) -> anyhow::Result<()> {
    let readiness = Readiness { timeout: Duration::from_secs(30), every: Duration::from_millis(200) };
    process.ready_on_http(ready_url, readiness).await
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
        let text = config(&state, Some(Path::new("/repo/prometheus/alerts.yml")))?;
        let config: serde_json::Value = serde_json::from_str(&text)?;
        assert_eq!(config["rule_files"], serde_json::json!(["/repo/prometheus/alerts.yml"]));
        let jobs = config["scrape_configs"].as_array().context("no scrape_configs")?;
        let targets = |job: &str| jobs.iter().find(|j| j["job_name"] == job).map(|j| j["static_configs"].clone());
        assert_eq!(targets("payment"), Some(serde_json::json!([{ "targets": ["127.0.0.1:18082"] }])));
        assert_eq!(targets("orchestrator"), Some(serde_json::json!([{ "targets": ["127.0.0.1:18080"] }])));
        Ok(())
    }
}
