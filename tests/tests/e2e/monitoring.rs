//! Watching it for real: the whole suite scraped by a real Prometheus evaluating the project's
//! alert rules. Every dashboard query returns data, and SagaStuck fires while a compensation
//! target is down and resolves once it is back. And `sagactl up` on a machine without Grafana
//! says how to get it and runs the suite all the same.

use saga_shared::api::SagaStatus;
use std::time::Duration;

use saga_tests::{
    SLOW_CALL_ENV, SLOW_CALL_MS, Service, Suite, UpSuite, happy_order, order_body,
    prometheus::{Prometheus, dashboard_queries},
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_has_data_and_saga_stuck_fires_and_resolves() {
    let mut suite = Suite::start(&Service::PARTICIPANTS).await;
    suite.spawn(Service::Orchestrator, &[&[("STUCK_AFTER_MS", "1500")], &SLOW_CALL_ENV[..]].concat()).await;
    let prometheus = Prometheus::start(&suite, &Service::SUITE, "2s").await;

    // Traffic of every kind: completed, compensated at two different steps.
    let mut orders = Vec::new();
    for n in 0..12 {
        let body = match n % 4 {
            0 => order_body("dave", &[("GADGET-1", 1)], "FR"),
            1 => order_body("bob", &[("WIDGET-1", 1)], "AQ"),
            _ => happy_order(),
        };
        orders.push(suite.accepted_order(&body).await);
    }
    for order in orders {
        suite.wait_terminal(order, Duration::from_secs(20)).await;
    }

    // A saga stuck in compensation: payment dies after capturing, shipping then refuses.
    suite.set_faults(Service::Shipping, &json!({ "latency_ms": SLOW_CALL_MS })).await;
    let stuck = suite.accepted_order(&order_body("bob", &[("WIDGET-1", 1)], "AQ")).await;
    suite.wait_for_step(stuck, 1, "succeeded").await;
    suite.kill(Service::Payment).await;
    suite.wait_for(stuck, &[SagaStatus::Compensating], Duration::from_secs(20)).await;

    prometheus
        .wait_until("SagaStuck to fire", Duration::from_secs(45), |p| async move {
            p.alert_state("SagaStuck").await == "firing"
        })
        .await;

    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "the dashboard has its panels: {}", queries.len());
    let mut empty = Vec::new();
    for (panel, expr) in &queries {
        if prometheus.query(expr).await.is_empty() {
            empty.push(format!("{panel}: {expr}"));
        }
    }
    assert!(empty.is_empty(), "dashboard queries without data:\n{}", empty.join("\n"));

    suite.spawn(Service::Payment, &[]).await;
    let order = suite.wait_terminal(stuck, Duration::from_secs(30)).await;
    assert_eq!(order["status"], "compensated", "{order}");
    prometheus
        .wait_until("SagaStuck to resolve", Duration::from_secs(45), |p| async move {
            p.alert_state("SagaStuck").await == "inactive"
        })
        .await;
}

#[tokio::test]
async fn up_without_grafana_on_path_says_how_to_get_it_and_runs_the_suite() {
    // PATH without any directory holding a Grafana binary, so this holds on a machine that has one.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .filter(|dir| !dir.join("grafana").is_file() && !dir.join("grafana-server").is_file())
        .collect::<Vec<_>>();
    let path = std::env::join_paths(dirs).unwrap().into_string().unwrap();

    let up = UpSuite::start(&[], &[("PATH", &path)]).await;

    // The hint comes after the summary, once Prometheus was tried.
    let hint = "Grafana not found on PATH (neither `grafana` nor `grafana-server`)";
    up.wait_until("up's Grafana hint", Duration::from_secs(10), || async { up.stderr().contains(hint) }).await;
    assert!(up.stderr().contains("set GRAFANA to its binary"), "{}", up.stderr());
    assert_eq!(up.readyz("orchestrator").await, 200);
    assert!(up.stop().success());
}

/// A stand-in for Grafana (no real one can be installed here), in an install tree of its own:
/// answers 200 on `/api/health` on the port `up` gives it.
fn stand_in_grafana() -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let home = std::env::temp_dir().join(format!("saga-grafana-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(home.join("conf")).unwrap();
    std::fs::create_dir_all(home.join("bin")).unwrap();
    std::fs::write(home.join("conf/defaults.ini"), "").unwrap();
    let binary = home.join("bin/grafana");
    // The one sagactl's unit tests use: records its arguments and GF_* variables beside itself.
    let script = include_str!("../../fixtures/stand-in-grafana.sh");
    std::fs::write(&binary, script).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    binary
}

#[tokio::test]
async fn status_shows_the_prometheus_and_grafana_up_started_without_counting_them() {
    let prometheus = std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".to_owned());
    let grafana = stand_in_grafana();
    let reserved = saga_suite::ports::reserve(2).unwrap();
    let (prometheus_port, grafana_port) = (reserved.ports()[0].to_string(), reserved.ports()[1].to_string());
    let up = UpSuite::start(
        &[],
        &[
            ("PROMETHEUS", &prometheus),
            ("PROMETHEUS_PORT", &prometheus_port),
            ("GRAFANA", grafana.to_str().unwrap()),
            ("GRAFANA_PORT", &grafana_port),
        ],
    )
    .await;
    up.wait_until("Grafana in the state file", Duration::from_secs(60), || async {
        up.state()["tools"].get("grafana").is_some()
    })
    .await;

    let status = up.sagactl_ok(&["status"]).await;
    let line = |name: &str| status.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    let (prometheus_line, grafana_line) = (line("prometheus"), line("grafana"));
    assert!(prometheus_line.contains("alive") && prometheus_line.contains("200"), "{status}");
    assert!(prometheus_line.contains(&format!("http://127.0.0.1:{prometheus_port}")), "{status}");
    assert!(grafana_line.contains("alive") && grafana_line.contains("200"), "{status}");
    assert!(grafana_line.contains(&format!("http://127.0.0.1:{grafana_port}/d/")), "{status}");

    // Grafana dies: status says so, and still exits 0 (the suite itself is up).
    let pid = u32::try_from(up.state()["tools"]["grafana"]["pid"].as_u64().unwrap()).unwrap();
    saga_suite::process::send_signal(pid, saga_suite::process::Signal::Kill).unwrap();
    up.wait_until("Grafana to be gone", Duration::from_secs(10), || async {
        let status = up.sagactl_ok(&["status"]).await;
        status.lines().any(|l| l.starts_with("grafana") && l.contains("down") && l.contains("no answer"))
    })
    .await;
    assert!(up.stop().success());
    std::fs::remove_dir_all(grafana.parent().and_then(std::path::Path::parent).unwrap()).unwrap();
}
