//! `sagactl orders` and `sagactl faults` against a real `sagactl up`: what an operator types
//! instead of curl with bearer tokens.

use std::time::Duration;

use saga_tests::{SLOW_CALL_ENV, UpSuite, happy_order};
use serde_json::Value;

#[tokio::test]
async fn an_operator_lists_shows_cancels_and_retries_sagas_and_switches_faults_from_the_terminal() {
    let up = UpSuite::start(&[], &SLOW_CALL_ENV).await;

    // A completed order: listed (table and JSON, filtered by status) and shown with its timeline.
    let done = up.order_to_the_end(&happy_order()).await;
    let id = done["order_id"].as_str().unwrap();
    let table = up.sagactl_ok(&["orders", "list"]).await;
    assert!(table.lines().any(|line| line.starts_with(id) && line.contains("completed")), "{table}");
    let listed: Vec<Value> =
        serde_json::from_str(&up.sagactl_ok(&["orders", "list", "--status", "completed", "--json"]).await).unwrap();
    assert!(listed.iter().any(|order| order["order_id"] == id), "{listed:?}");
    assert!(listed.iter().all(|order| order["status"] == "completed"), "{listed:?}");
    let alices: Vec<Value> =
        serde_json::from_str(&up.sagactl_ok(&["orders", "list", "--customer", "alice", "--json"]).await).unwrap();
    assert!(alices.iter().any(|order| order["order_id"] == id), "{alices:?}");
    let nobodys = up.sagactl_ok(&["orders", "list", "--customer", "nobody", "--json"]).await;
    assert_eq!(serde_json::from_str::<Vec<Value>>(&nobodys).unwrap(), Vec::<Value>::new());
    // A bulk action names the status it acts on (retry: failed; cancel: pending or running).
    let bulk_by_customer = up.sagactl(&["orders", "cancel", "--customer", "alice", "--yes"]).await;
    assert!(String::from_utf8_lossy(&bulk_by_customer.stderr).contains("select them with --status"));
    let running = up.sagactl_ok(&["orders", "list", "--status", "running", "--json"]).await;
    assert_eq!(serde_json::from_str::<Vec<Value>>(&running).unwrap(), Vec::<Value>::new());
    let shown = up.sagactl_ok(&["orders", "show", id]).await;
    assert!(shown.contains("status   completed") && shown.contains("send_confirmation"), "{shown}");
    assert!(shown.contains("customer alice") && shown.contains("items    1 x WIDGET-1"), "{shown}");
    assert!(shown.contains("ships to FR") && shown.contains("tracking_number=TRK-"), "{shown}");
    assert!(shown.contains("TIMELINE") && shown.contains("saga         completed"), "{shown}");
    let shown: Value = serde_json::from_str(&up.sagactl_ok(&["orders", "show", id, "--json"]).await).unwrap();
    assert_eq!(shown["order"]["status"], "completed");
    assert!(shown["events"].as_array().is_some_and(|events| events.len() >= 6), "{shown}");

    // Refusals are reported and the command fails: a completed saga is neither retried nor
    // cancelled, and a wrong token says which variable to set.
    let retried = up.sagactl(&["orders", "retry", id]).await;
    assert!(!retried.status.success());
    assert!(String::from_utf8_lossy(&retried.stdout).contains("only a failed saga can be retried"), "{retried:?}");
    let cancelled = up.sagactl(&["orders", "cancel", id]).await;
    assert!(String::from_utf8_lossy(&cancelled.stdout).contains("cannot be cancelled"), "{cancelled:?}");
    let wrong = up.sagactl_with_env(&["orders", "cancel", id], &[("OPERATOR_TOKEN", "not-the-token")]).await;
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("set OPERATOR_TOKEN"), "{wrong:?}");
    let unknown = up.sagactl(&["orders", "list", "--status", "lost"]).await;
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("one of: pending, running"), "{unknown:?}");

    // Shipping hangs (set from the terminal): three sagas wait in it.
    let hung = up.sagactl_ok(&["faults", "shipping", "--hang"]).await;
    assert!(hung.contains("shipping: hanging (on writes)"), "{hung}");
    assert!(up.sagactl_ok(&["faults", "shipping"]).await.contains("hanging"));
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let url = up.url("orchestrator", "/orders");
        let placed = up.http.send(reqwest::Method::POST, &url, Some(&happy_order())).await.unwrap();
        assert_eq!(placed.status, 202, "{}", placed.body);
        waiting.push(placed.body["order_id"].as_str().unwrap().to_owned());
    }
    up.wait_until("the three sagas are running", Duration::from_secs(20), || async {
        let listed = up.sagactl_ok(&["orders", "list", "--status", "running", "--json"]).await;
        serde_json::from_str::<Vec<Value>>(&listed).unwrap().len() == 3
    })
    .await;

    // A bulk cancel asks first; without a terminal to ask on it does nothing and says so.
    let asked = up.sagactl(&["orders", "cancel", "--status", "running"]).await;
    assert!(!asked.status.success());
    let asked_err = String::from_utf8_lossy(&asked.stderr);
    assert!(asked_err.contains("cancel 3 saga(s)?") && asked_err.contains("--yes"), "{asked_err}");
    // The bulk form takes every filter of the list: here the step they wait in and the customer.
    let other_step = ["orders", "cancel", "--status", "running", "--step", "send_confirmation", "--yes"];
    assert!(up.sagactl_ok(&other_step).await.contains("no saga matches"));
    let bulk = up
        .sagactl_ok(&[
            "orders",
            "cancel",
            "--status",
            "running",
            "--step",
            "create_shipment",
            "--customer",
            "alice",
            "--reason",
            "demo outage",
            "--yes",
        ])
        .await;
    // A batch operation of the orchestrator's, followed to its end.
    assert!(bulk.starts_with("batch ") && bulk.contains("3 saga(s) to cancel"), "{bulk}");
    for order_id in &waiting {
        assert!(bulk.contains(&format!("{order_id}  cancel: done")), "{bulk}");
    }

    // Shipping answers again: every cancelled saga compensates, its timeline naming who and why.
    assert!(up.sagactl_ok(&["faults", "shipping", "--clear"]).await.contains("shipping: no faults"));
    for order_id in &waiting {
        let url = up.url("orchestrator", &format!("/orders/{order_id}?wait_ms=20000"));
        let order = up.http.get(&url).await.body;
        assert_eq!(order["status"], "compensated", "{order}");
        let events = up.http.get(&up.url("orchestrator", &format!("/orders/{order_id}/events"))).await.body;
        let operator = events.as_array().unwrap().iter().find(|e| e["kind"] == "operator").cloned();
        let operator = operator.unwrap_or_else(|| panic!("no operator event: {events}"));
        assert_eq!(operator["actor"], "sagactl");
        let detail = operator["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with("batch ") && detail.ends_with(": demo outage"), "{detail}");
    }
    assert!(up.sagactl_ok(&["orders", "cancel", "--status", "running", "--yes"]).await.contains("no saga matches"));
}
