//! Postgres is a process users kill too: under `sagactl up` it can be killed, stopped, started
//! and restarted with `sagactl`, on the same port and data; `up` and the services carry on, and
//! the sagas finish once it is back. `up --data-dir` keeps the cluster across runs.

use std::time::Duration;

use saga_tests::{UP_SERVICES, UpSuite, happy_order};

async fn wait_all_ready(up: &UpSuite, status: u16) {
    up.wait_until(&format!("every service's /readyz answers {status}"), Duration::from_secs(30), || async {
        let mut all = true;
        for service in UP_SERVICES {
            all &= up.readyz(service).await == status;
        }
        all
    })
    .await;
}

/// A gauge of `service`'s `/metrics` (without labels), if it answers and has it.
async fn gauge(up: &UpSuite, service: &str, name: &str) -> Option<f64> {
    let answer = up.http.inner().get(up.url(service, "/metrics")).send().await.ok()?.text().await.ok()?;
    answer.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until every service's `database_up` is `value`, and the orchestrator's
/// `saga_gauges_stale` the opposite: what Prometheus (and the DatabaseDown alert) sees.
async fn wait_database_up(up: &UpSuite, value: f64) {
    let what = format!("every service's database_up is {value}, and saga_gauges_stale {}", 1.0 - value);
    up.wait_until(&what, Duration::from_secs(15), || async {
        let mut all = gauge(up, "orchestrator", "saga_gauges_stale").await == Some(1.0 - value);
        for service in UP_SERVICES {
            all &= gauge(up, service, "database_up").await == Some(value);
        }
        all
    })
    .await;
}

#[tokio::test]
async fn postgres_killed_under_up_comes_back_with_sagactl_start_and_the_suite_carries_on() {
    let mut up = UpSuite::start(&[], &[]).await;
    let before = up.order_to_the_end(&happy_order()).await;
    assert_eq!(before["status"], "completed", "{before}");
    let first_pid = up.state()["postgres"]["pid"].as_u64().unwrap();

    // Kill it: every backend with it, like a crash.
    let killed = up.sagactl_ok(&["kill", "postgres"]).await;
    assert!(killed.contains(&format!("killed postgres (pid {first_pid})")), "{killed}");
    // Before any /readyz probe (which would make a round trip too): the services' own watch.
    wait_database_up(&up, 0.0).await;
    wait_all_ready(&up, 503).await;
    up.wait_until("up reports Postgres down", Duration::from_secs(10), || async {
        up.stderr().contains("Postgres is down")
    })
    .await;
    assert!(up.is_running(), "up must keep running without Postgres:\n{}", up.stderr());
    let status = up.sagactl(&["status"]).await;
    assert_eq!(status.status.code(), Some(1), "status says something is down");
    assert!(String::from_utf8_lossy(&status.stdout).contains("postgres:   down"), "{status:?}");

    // Start it again: same port, same data, new pid.
    up.sagactl_ok(&["start", "postgres"]).await;
    wait_database_up(&up, 1.0).await;
    wait_all_ready(&up, 200).await;
    up.wait_until("up reports Postgres back", Duration::from_secs(10), || async {
        up.stderr().contains("Postgres is back")
    })
    .await;
    let second_pid = up.state()["postgres"]["pid"].as_u64().unwrap();
    assert_ne!(second_pid, first_pid);
    let id = before["order_id"].as_str().unwrap();
    let kept = up.http.get(&up.url("orchestrator", &format!("/orders/{id}"))).await;
    assert_eq!(kept.body["status"], "completed", "the data survived the crash: {}", kept.body);
    assert_eq!(up.order_to_the_end(&happy_order()).await["status"], "completed");

    // Restart (fast shutdown, then start) and stop/start work the same way.
    up.sagactl_ok(&["restart", "postgres"]).await;
    assert_eq!(up.order_to_the_end(&happy_order()).await["status"], "completed");
    up.sagactl_ok(&["stop", "postgres"]).await;
    let again = up.sagactl(&["stop", "postgres"]).await;
    assert!(!again.status.success(), "stopping a stopped Postgres is an error");
    assert!(String::from_utf8_lossy(&again.stderr).contains("postgres is not running"), "{again:?}");
    up.sagactl_ok(&["start", "postgres"]).await;
    up.sagactl_ok(&["status"]).await;
    assert_eq!(up.order_to_the_end(&happy_order()).await["status"], "completed");

    // Ctrl-C stops everything, the Postgres started from "another terminal" included.
    let current_pid = up.state()["postgres"]["pid"].as_u64().unwrap() as u32;
    let root = up.state()["postgres"]["server"]["data_dir"].as_str().unwrap().to_owned();
    assert!(up.stop().success());
    assert!(!saga_suite::process::is_alive(current_pid), "Postgres left running");
    assert!(!std::path::Path::new(&root).exists(), "the temporary cluster is deleted");
}

#[tokio::test]
async fn orders_placed_while_postgres_is_down_are_refused_with_503_not_lost() {
    let up = UpSuite::start(&[], &[]).await;
    up.sagactl_ok(&["kill", "postgres"]).await;
    wait_all_ready(&up, 503).await;

    let url = up.url("orchestrator", "/orders");
    let refused = up.http.send(reqwest::Method::POST, &url, Some(&happy_order())).await.unwrap();

    refused.assert_problem(503);
    up.sagactl_ok(&["start", "postgres"]).await;
    wait_all_ready(&up, 200).await;
    assert_eq!(up.order_to_the_end(&happy_order()).await["status"], "completed");
}

#[tokio::test]
async fn up_with_a_data_dir_keeps_the_cluster_and_its_orders_across_runs() {
    let dir = std::env::temp_dir().join(format!("saga-kept-{}", uuid::Uuid::new_v4().simple()));
    let dir_arg = dir.to_str().unwrap().to_owned();

    let first = UpSuite::start(&["--data-dir", &dir_arg], &[]).await;
    let order = first.order_to_the_end(&happy_order()).await;
    assert_eq!(order["status"], "completed", "{order}");
    assert!(first.stop().success());
    assert!(dir.join("data").join("PG_VERSION").is_file(), "the cluster is kept");

    let second = UpSuite::start(&["--data-dir", &dir_arg], &[]).await;
    let id = order["order_id"].as_str().unwrap();
    let kept = second.http.get(&second.url("orchestrator", &format!("/orders/{id}"))).await;
    assert_eq!(kept.body["status"], "completed", "{}", kept.body);
    assert!(second.stop().success());
    std::fs::remove_dir_all(&dir).unwrap();
}
