//! Riding out short outages (issue 17): a participant down for less than its step's retry
//! budget loses no good order, one down for longer compensates those orders, and the
//! participant's circuit opens while it is down and closes when its `/readyz` answers again
//! (both asserted on `/metrics`); Postgres restarted under load loses no good order either.

use saga_suite::poll::Poll;
use std::time::{Duration, Instant};

use saga_tests::{Service, Suite, UpSuite, happy_order};
use serde_json::Value;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

/// The value of the orchestrator's metric line starting with `prefix`, if present.
async fn metric(suite: &Suite, prefix: &str) -> Option<f64> {
    let url = suite.url(Service::Orchestrator, "/metrics");
    let text = suite.http.inner().get(url).send().await.ok()?.text().await.ok()?;
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

/// Waits until the metric satisfies `wanted`; returns the value seen.
async fn wait_metric(suite: &Suite, prefix: &str, what: &str, wanted: impl Fn(f64) -> bool) -> f64 {
    let seen = Poll::new(WAIT, Duration::from_millis(50))
        .until(async || metric(suite, prefix).await.filter(|v| wanted(*v)))
        .await;
    match seen {
        Some(value) => value,
        None => panic!("{prefix}: never {what} (last {:?})", metric(suite, prefix).await),
    }
}

const PAYMENT_OPEN: &str = "participant_circuit_open{participant=\"payment\"}";
const WAITING_AT_PAYMENT: &str = "saga_waiting_on_participant{step=\"process_payment\"}";

/// Places `count` happy orders, one every `gap`, in the background.
fn place_orders(suite: &Suite, count: usize, gap: Duration) -> tokio::task::JoinHandle<Vec<Uuid>> {
    let http = suite.http.clone();
    let url = suite.url(Service::Orchestrator, "/orders");
    tokio::spawn(async move {
        let mut ids = Vec::new();
        for _ in 0..count {
            let answer = http.send(reqwest::Method::POST, &url, Some(&happy_order())).await.expect("POST /orders");
            assert_eq!(answer.status, 202, "{}", answer.body);
            ids.push(answer.body["order_id"].as_str().unwrap().parse().unwrap());
            tokio::time::sleep(gap).await;
        }
        ids
    })
}

#[tokio::test]
async fn a_participant_down_for_a_few_seconds_under_load_loses_no_good_order() {
    // A budget well beyond the outage; the circuit is probed every 200 ms.
    let env =
        [(Service::Orchestrator, "STEP_RETRY_BUDGET_MS", "30000"), (Service::Orchestrator, "CIRCUIT_PROBE_MS", "200")];
    let mut suite = Suite::start_with_env(&Service::SUITE, &env).await;
    let orders = place_orders(&suite, 60, Duration::from_millis(50));

    tokio::time::sleep(Duration::from_millis(700)).await;
    suite.kill(Service::Payment).await;
    wait_metric(&suite, PAYMENT_OPEN, "1 (open)", |v| v == 1.0).await;
    let waiting = wait_metric(&suite, WAITING_AT_PAYMENT, "above 0", |v| v > 0.0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    suite.spawn(Service::Payment, &[]).await;
    wait_metric(&suite, PAYMENT_OPEN, "0 (closed)", |v| v == 0.0).await;

    let ids = orders.await.unwrap();
    let mut held_payment_attempts = Vec::new();
    for id in &ids {
        let order = suite.wait_terminal(*id, WAIT).await;
        assert_eq!(order["status"], "completed", "a good order was rolled back by a 3 s outage: {order}");
        held_payment_attempts.push(order["steps"][1]["attempts"].as_u64().unwrap());
    }
    wait_metric(&suite, WAITING_AT_PAYMENT, "0 once all went", |v| v == 0.0).await;
    // While the circuit was open the waiting sagas did not call payment: the refused
    // connections are the few that opened the circuit, not one per backoff for 3 s each.
    let refused = held_payment_attempts.iter().map(|a| a.saturating_sub(1)).sum::<u64>();
    eprintln!("{waiting} sagas waited at once; {refused} failed payment attempts over {} orders", ids.len());
    assert!(refused < 20, "the circuit held calls back: {refused} failed attempts ({held_payment_attempts:?})");
}

#[tokio::test]
async fn a_participant_down_longer_than_the_budget_compensates_and_its_circuit_opens_then_closes() {
    let env =
        [(Service::Orchestrator, "STEP_RETRY_BUDGET_MS", "3000"), (Service::Orchestrator, "CIRCUIT_PROBE_MS", "200")];
    let mut suite = Suite::start_with_env(&Service::SUITE, &env).await;
    assert_eq!(metric(&suite, PAYMENT_OPEN).await, Some(0.0), "the gauge is there before anything fails");
    suite.kill(Service::Payment).await;

    let started = Instant::now();
    let ids = place_orders(&suite, 8, Duration::from_millis(100)).await.unwrap();
    wait_metric(&suite, PAYMENT_OPEN, "1 (open)", |v| v == 1.0).await;
    wait_metric(&suite, WAITING_AT_PAYMENT, "above 0", |v| v > 0.0).await;
    for id in &ids {
        let order = suite.wait_terminal(*id, WAIT).await;
        assert_eq!(order["status"], "compensated", "{order}");
        let reason = order["failure_reason"].as_str().unwrap();
        assert!(reason.starts_with("process_payment failed after"), "the budget ran out: {reason}");
        let events = suite.events(*id).await;
        let undone: Vec<&str> = events
            .iter()
            .filter(|e| e["kind"] == "compensation" && e["outcome"] == "ok")
            .map(|e| e["step"].as_str().unwrap())
            .collect();
        // Nothing reached payment (refused connections, then calls held back), so only the
        // reservation is released.
        assert_eq!(undone, ["reserve_inventory"], "{events:#?}");
    }
    assert!(started.elapsed() >= Duration::from_millis(2900), "not before the 3 s budget ran out");
    let last = suite.events(ids[ids.len() - 1]).await;
    assert!(
        last.iter().any(|e| e["detail"].as_str().is_some_and(|d| d.contains("circuit open"))),
        "the last order's call waited for the circuit until its budget ran out: {last:#?}"
    );
    assert_eq!(metric(&suite, PAYMENT_OPEN).await, Some(1.0), "still open: payment is still down");
    assert_eq!(metric(&suite, WAITING_AT_PAYMENT).await, Some(0.0), "nobody waits once they gave up");

    suite.spawn(Service::Payment, &[]).await;
    wait_metric(&suite, PAYMENT_OPEN, "0 (closed by the probe)", |v| v == 0.0).await;
    let id = suite.accepted_order(&happy_order()).await;
    let order = suite.wait_terminal(id, WAIT).await;
    assert_eq!(order["status"], "completed", "{order}");
}

/// The share of good orders that completed, from `sagactl load --json`.
fn happy(report: &Value) -> (u64, u64) {
    let happy = &report["by_intent"]["happy"];
    (happy["completed"].as_u64().unwrap_or(0), happy["placed"].as_u64().unwrap_or(0))
}

#[tokio::test]
async fn postgres_restarted_under_load_loses_no_good_order() {
    let up = UpSuite::start(&[], &[("STEP_RETRY_BUDGET_MS", "60000")]).await;
    let load = up.sagactl(&[
        "load",
        "--concurrency",
        "8",
        "--duration",
        "14",
        "--fail-ratio",
        "0",
        "--post-retries",
        "100",
        "--seed",
        "17",
        "--json",
    ]);
    let outage = async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        up.sagactl_ok(&["kill", "postgres"]).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        up.sagactl_ok(&["start", "postgres"]).await;
    };
    let (load, ()) = tokio::join!(load, outage);
    let report: Value = serde_json::from_slice(&load.stdout).unwrap_or_else(|e| {
        panic!("load printed no JSON ({e}): {}\n{}", String::from_utf8_lossy(&load.stdout), up.stderr())
    });
    let (completed, placed) = happy(&report);
    assert!(placed >= 50, "too few orders to prove anything: {report:#}");
    assert_eq!(completed, placed, "every good order completes across a Postgres restart: {report:#}");
    assert!(load.status.success(), "{report:#}");
}
