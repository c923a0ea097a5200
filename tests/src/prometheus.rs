//! A real Prometheus for the monitoring tests: scraping the suite's services on loopback every
//! second, evaluating the project's alert rules (with their `for:` shortened), queried over its
//! HTTP API. It is found on PATH (`apt-get install prometheus`; `.ci/run` installs it).

use std::{process::Command, time::Duration};

use saga_suite::{
    poll::Poll,
    supervised::{OnDrop, Supervised},
};
use serde_json::Value;

use crate::{Suite, client::Http, processes::Service, repo_root};

/// A running Prometheus, killed on drop.
#[derive(Debug)]
pub struct Prometheus {
    /// Its base URL.
    pub url: String,
    http: Http,
    _process: Supervised,
    /// Its port, kept from other test processes while it runs.
    _port: saga_suite::ports::Reserved,
    _dir: tempfile::TempDir,
}

/// The project's alert rules with every `for:` duration replaced by `for_override`.
pub fn alert_rules_with(for_override: &str) -> String {
    let rules = std::fs::read_to_string(repo_root().join("prometheus/alerts.yml")).expect("prometheus/alerts.yml");
    rules
        .lines()
        .map(|line| match line.split_once("for:") {
            Some((indent, _)) if indent.trim().is_empty() => format!("{indent}for: {for_override}"),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Prometheus {
    /// Starts Prometheus scraping every service of `suite` that `services` names.
    pub async fn start(suite: &Suite, services: &[Service], for_override: &str) -> Self {
        let binary = std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".to_owned());
        let dir = tempfile::Builder::new().prefix("saga-prometheus-").tempdir().expect("prometheus dir");
        let rules = dir.path().join("alerts.yml");
        std::fs::write(&rules, alert_rules_with(for_override)).expect("rules");
        let config = saga_suite::monitoring::prometheus::scrape_config(
            "1s",
            Some(&rules),
            services.iter().map(|&s| (s.log_name(), suite.port(s))),
        )
        .expect("scrape config");
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("config");
        let reserved = saga_suite::ports::reserve(1).expect("a reserved port");
        let port = reserved.port();
        let mut command = Command::new(&binary);
        command
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let mut process =
            saga_suite::monitoring::prometheus::spawn(command, &dir.path().join("prometheus.log"), OnDrop::Kill)
                .unwrap_or_else(|e| panic!("cannot start {binary}: {e:#} (apt-get install prometheus)"));
        let url = format!("http://127.0.0.1:{port}");
        saga_suite::monitoring::prometheus::wait_ready(&mut process, &format!("{url}/-/ready"))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        Self { url, http: Http::new(Duration::from_secs(5)), _process: process, _port: reserved, _dir: dir }
    }

    /// Runs an instant query; returns the `data.result` array (panics on an API error).
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), &[("query", expr)]).expect("url");
        let answer = self.http.get(url.as_str()).await;
        assert_eq!(answer.body["status"], "success", "query {expr} failed: {}", answer.body);
        answer.body["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The state of alert `name`: `firing`, `pending` or `inactive`.
    pub async fn alert_state(&self, name: &str) -> String {
        let answer = self.http.get(&format!("{}/api/v1/alerts", self.url)).await;
        let alerts = answer.body["data"]["alerts"].as_array().cloned().unwrap_or_default();
        let states: Vec<&str> =
            alerts.iter().filter(|a| a["labels"]["alertname"] == name).filter_map(|a| a["state"].as_str()).collect();
        if states.contains(&"firing") {
            "firing".to_owned()
        } else if states.contains(&"pending") {
            "pending".to_owned()
        } else {
            "inactive".to_owned()
        }
    }

    /// Polls `check` until true, or panics naming `what` after `timeout`.
    pub async fn wait_until<'a, F, Fut>(&'a self, what: &str, timeout: Duration, check: F)
    where
        F: Fn(&'a Self) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let held = Poll::new(timeout, Duration::from_millis(250)).holds(async || check(self).await).await;
        assert!(held, "timed out after {timeout:?} waiting for {what}");
    }
}

/// Every PromQL expression of the dashboard, with Grafana's interval variables made concrete.
pub fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("grafana/dashboards/sagas.json")).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut queries = Vec::new();
    collect_panels(&dashboard, &mut queries);
    queries
}

fn collect_panels(node: &Value, out: &mut Vec<(String, String)>) {
    if let Some(panels) = node["panels"].as_array() {
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or("untitled").to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    let concrete =
                        expr.replace("$__rate_interval", "30s").replace("$__interval", "5s").replace("$__range", "5m");
                    out.push((title.clone(), concrete));
                }
            }
            collect_panels(panel, out);
        }
    }
}
