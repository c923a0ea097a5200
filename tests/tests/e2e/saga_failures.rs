//! Failure semantics (DESIGN.md §3): retries with backoff, timeouts reconciled before deciding,
//! the ambiguous "committed but no answer" case, compensation that waits for its target, the
//! dead letter and the operator's retry.

use saga_shared::api::SagaStatus;
use saga_suite::poll::Poll;
use std::time::Duration;

use saga_tests::{SLOW_CALL_ENV, SLOW_CALL_MS, Service, Suite, happy_order, order_body};
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

fn outcomes(events: &[Value], kind: &str, step: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == kind && e["step"] == step)
        .map(|e| e["outcome"].as_str().unwrap().to_owned())
        .collect()
}

async fn balance(suite: &Suite, customer: &str) -> i64 {
    suite.http.get(&suite.url(Service::Payment, &format!("/accounts/{customer}"))).await.body["balance_cents"]
        .as_i64()
        .unwrap()
}

async fn metric(suite: &Suite, line_prefix: &str) -> Option<f64> {
    let text =
        suite.http.inner().get(suite.url(Service::Orchestrator, "/metrics")).send().await.ok()?.text().await.ok()?;
    text.lines().find(|l| l.starts_with(line_prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

async fn wait_metric(suite: &Suite, line_prefix: &str, wanted: f64) {
    let became = Poll::new(WAIT, Duration::from_millis(100))
        .holds(async || metric(suite, line_prefix).await == Some(wanted))
        .await;
    assert!(became, "{line_prefix} never became {wanted}: {:?}", metric(suite, line_prefix).await);
}

#[tokio::test]
async fn a_participant_down_is_retried_with_backoff_until_its_budget_runs_out_then_the_saga_compensates() {
    // The tests' retry budget is 2 s; the circuit opens after 5 refused connections.
    let mut suite = Suite::start(&Service::SUITE).await;
    suite.kill(Service::Payment).await;

    let order_id = suite.accepted_order(&happy_order()).await;
    let order = suite.wait_terminal(order_id, WAIT).await;

    assert_eq!(order["status"], "compensated", "{order}");
    // Five refused connections open payment's circuit; the next attempt waits for it until the
    // budget runs out and is recorded as not sent.
    assert_eq!(order["steps"][1]["attempts"], 6, "{order}");
    let events = suite.events(order_id).await;
    assert_eq!(outcomes(&events, "action", "process_payment"), ["transient"; 6]);
    let held = events.iter().rfind(|e| e["kind"] == "action").unwrap();
    assert!(held["detail"].as_str().unwrap().contains("circuit open"), "{held}");
    let reason = order["failure_reason"].as_str().unwrap();
    assert!(reason.starts_with("process_payment failed after 6 attempts in 2.0 s"), "{reason}");
    let times: Vec<chrono::DateTime<chrono::Utc>> = events
        .iter()
        .filter(|e| e["kind"] == "action" && e["step"] == "process_payment")
        .map(|e| e["at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "attempts are spread over time: {times:?}");
    assert_eq!(outcomes(&events, "compensation", "reserve_inventory"), ["ok"]);
    // A refused connection proves nothing happened: payment itself is not compensated.
    assert!(outcomes(&events, "compensation", "process_payment").is_empty());
}

#[tokio::test]
async fn a_participant_slower_than_the_step_timeout_is_reconciled_then_compensated_and_a_late_put_is_refused() {
    let suite = Suite::start(&Service::SUITE).await;
    suite.set_faults(Service::Payment, &json!({ "latency_ms": 1500 })).await;
    let before = balance(&suite, "alice").await;

    let order_id = suite.accepted_order(&happy_order()).await;
    // Every attempt times out; then the refund (a DELETE, just as slow) keeps the saga
    // compensating until payment is fast again.
    let compensating = suite.wait_for(order_id, &[SagaStatus::Compensating], WAIT).await;
    assert_eq!(compensating["steps"][1]["status"], "unknown", "{compensating}");
    suite.wait_for_step(order_id, 1, "compensating").await;
    suite.set_faults(Service::Payment, &json!({})).await;
    let order = suite.wait_terminal(order_id, WAIT).await;

    assert_eq!(order["status"], "compensated", "{order}");
    let events = suite.events(order_id).await;
    // Each attempt takes the whole 1 s step timeout: two fit in the 2 s budget.
    assert_eq!(outcomes(&events, "action", "process_payment"), ["timeout"; 2]);
    assert!(outcomes(&events, "reconcile", "process_payment").iter().all(|o| o == "not_found"), "{events:?}");
    assert!(!outcomes(&events, "reconcile", "process_payment").is_empty(), "an unknown outcome is reconciled");
    // The ambiguous step is compensated too (its DELETE leaves a tombstone), before inventory.
    let compensated: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "compensation" && e["outcome"] == "ok")
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(compensated, ["process_payment", "reserve_inventory"]);
    let late = suite
        .http
        .put(
            &suite.url(Service::Payment, &format!("/payments/{order_id}")),
            &json!({ "customer_id": "alice", "amount_cents": 1299 }),
        )
        .await;
    assert_eq!(late.assert_problem(409), "/problems/already-compensated");
    assert_eq!(balance(&suite, "alice").await, before, "nothing was charged");
}

#[tokio::test]
async fn a_committed_step_whose_answer_was_lost_is_found_by_reconciliation_and_not_repeated() {
    let suite = Suite::start(&Service::SUITE).await;
    suite.set_faults(Service::Payment, &json!({ "drop_response_rate": 1.0 })).await;
    let before = balance(&suite, "alice").await;

    let order_id = suite.accepted_order(&happy_order()).await;
    let order = suite.wait_terminal(order_id, WAIT).await;

    assert_eq!(order["status"], "completed", "{order}");
    assert_eq!(order["steps"][1]["attempts"], 1, "found by asking, not by trying again");
    let events = suite.events(order_id).await;
    assert_eq!(outcomes(&events, "action", "process_payment"), ["timeout"]);
    assert_eq!(outcomes(&events, "reconcile", "process_payment"), ["happened"]);
    assert_eq!(balance(&suite, "alice").await, before - 1299, "charged exactly once");
}

#[tokio::test]
async fn a_compensation_target_that_is_down_keeps_the_saga_compensating_and_stuck_until_it_returns() {
    let mut suite = Suite::start_for_slow_calls(&Service::SUITE).await;
    // Shipping answers slowly (but within the step timeout), leaving time to stop payment after
    // it captured and before shipping refuses the address.
    suite.set_faults(Service::Shipping, &json!({ "latency_ms": SLOW_CALL_MS })).await;
    let before = balance(&suite, "bob").await;
    let order_id = suite.accepted_order(&order_body("bob", &[("WIDGET-1", 1)], "AQ")).await;
    suite.wait_for_step(order_id, 1, "succeeded").await;
    suite.kill(Service::Payment).await;

    suite.wait_for(order_id, &[SagaStatus::Compensating], WAIT).await;
    wait_metric(&suite, "saga_stuck{status=\"compensating\",step=\"process_payment\"}", 1.0).await;
    let waiting = suite.order(order_id).await;
    assert_eq!(waiting["status"], "compensating", "still waiting for payment: {waiting}");
    assert!(waiting["steps"][1]["compensation_attempts"].as_u64().unwrap() >= 1);

    suite.spawn(Service::Payment, &[]).await;
    let order = suite.wait_terminal(order_id, WAIT).await;
    assert_eq!(order["status"], "compensated", "{order}");
    assert_eq!(balance(&suite, "bob").await, before, "refunded");
    wait_metric(&suite, "saga_stuck{status=\"compensating\",step=\"process_payment\"}", 0.0).await;
}

#[tokio::test]
async fn an_exhausted_compensation_budget_dead_letters_the_saga_and_retry_finishes_it() {
    let mut suite =
        Suite::start(&[Service::Inventory, Service::Payment, Service::Shipping, Service::Notification]).await;
    suite.spawn(Service::Orchestrator, &[&[("COMPENSATION_BUDGET_MS", "1500")], &SLOW_CALL_ENV[..]].concat()).await;
    // dave is declined, so the reservation must be released: stop inventory once it reserved
    // (payment answers slowly to leave time for that), and the release cannot happen.
    suite.set_faults(Service::Payment, &json!({ "latency_ms": SLOW_CALL_MS })).await;
    let order_id = suite.accepted_order(&order_body("dave", &[("WIDGET-1", 1)], "FR")).await;
    suite.wait_for_step(order_id, 0, "succeeded").await;
    suite.kill(Service::Inventory).await;

    let failed = suite.wait_terminal(order_id, WAIT).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["failure_reason"].as_str().unwrap().contains("budget"), "{failed}");
    wait_metric(&suite, "saga_requires_intervention", 1.0).await;
    assert_eq!(metric(&suite, "saga_dead_lettered_total").await, Some(1.0));
    let refused = suite.operator_action(order_id, "cancel", None).await;
    assert_eq!(refused.status, 409, "a failed saga is retried, not cancelled");

    suite.spawn(Service::Inventory, &[]).await;
    let retry = suite
        .operator_action(order_id, "retry", Some(&json!({ "operator": "ops-alice", "reason": "inventory is back" })))
        .await;
    assert_eq!(retry.status, 202);
    let order = suite.wait_terminal(order_id, WAIT).await;
    assert_eq!(order["status"], "compensated", "{order}");
    let events = suite.events(order_id).await;
    let retry_event = events.iter().find(|e| e["kind"] == "operator").unwrap();
    assert_eq!((retry_event["outcome"].as_str(), retry_event["actor"].as_str()), (Some("retry"), Some("ops-alice")));
    assert_eq!(retry_event["detail"], "inventory is back");
    wait_metric(&suite, "saga_requires_intervention", 0.0).await;
    let product = suite.http.get(&suite.url(Service::Inventory, "/products/WIDGET-1")).await.body;
    assert_eq!(product["reserved"], 0, "the reservation was released: {product}");
}

#[tokio::test]
async fn an_operator_can_cancel_a_running_saga_and_the_step_in_flight_is_undone_too() {
    // The cancel must land while the shipment call is in flight.
    let suite = Suite::start_for_slow_calls(&Service::SUITE).await;
    suite.set_faults(Service::Shipping, &json!({ "latency_ms": SLOW_CALL_MS })).await;
    let before = balance(&suite, "alice").await;
    let order_id = suite.accepted_order(&happy_order()).await;
    suite.wait_for_step(order_id, 1, "succeeded").await;

    let cancel = suite
        .operator_action(
            order_id,
            "cancel",
            Some(&json!({ "operator": "support-bob", "reason": "customer changed their mind" })),
        )
        .await;
    assert_eq!(cancel.status, 202);
    let order = suite.wait_terminal(order_id, WAIT).await;

    assert_eq!(order["status"], "compensated", "{order}");
    assert!(order["failure_reason"].as_str().unwrap().contains("support-bob"));
    assert_eq!(balance(&suite, "alice").await, before);
    // The shipment call was in flight: it is undone (or tombstoned, if it arrives later).
    let shipment = suite.http.get(&suite.url(Service::Shipping, &format!("/shipments/{order_id}"))).await;
    assert_eq!(shipment.body["status"], "cancelled", "{}", shipment.body);
    let events = suite.events(order_id).await;
    assert!(events.iter().any(|e| e["kind"] == "operator" && e["outcome"] == "cancel" && e["actor"] == "support-bob"));
    // Cancelling again changes nothing; a completed order cannot be cancelled.
    let again = suite.operator_action(order_id, "cancel", None).await;
    assert_eq!(again.status, 202);
    suite.set_faults(Service::Shipping, &json!({})).await;
    let done = suite.accepted_order(&happy_order()).await;
    suite.wait_terminal(done, WAIT).await;
    let refused = suite.operator_action(done, "cancel", None).await;
    assert_eq!(refused.status, 409);
}

#[tokio::test]
async fn a_saga_past_its_deadline_is_compensated() {
    let mut suite =
        Suite::start(&[Service::Inventory, Service::Payment, Service::Shipping, Service::Notification]).await;
    suite.spawn(Service::Orchestrator, &[("SAGA_DEADLINE_MS", "1000"), ("STEP_MAX_ATTEMPTS", "50")]).await;
    suite.kill(Service::Payment).await;

    let order_id = suite.accepted_order(&happy_order()).await;
    let order = suite.wait_terminal(order_id, WAIT).await;

    assert_eq!(order["status"], "compensated", "{order}");
    assert_eq!(order["failure_reason"], "saga deadline exceeded");
    assert!(order["steps"][1]["attempts"].as_u64().unwrap() < 50, "stopped by the deadline, not the attempts");
}

#[tokio::test]
async fn unknown_orders_are_404_problems() {
    let suite = Suite::start(&[Service::Orchestrator]).await;
    let id = Uuid::new_v4();
    for path in [format!("/orders/{id}"), format!("/orders/{id}/events")] {
        suite.http.get(&suite.url(Service::Orchestrator, &path)).await.assert_problem(404);
    }
    let retry = suite.operator_action(id, "retry", None).await;
    assert_eq!(retry.status, 404);
}

#[tokio::test]
async fn operator_actions_need_the_operator_token_401_without_one_403_with_a_wrong_one() {
    let suite = Suite::start(&Service::SUITE).await;
    suite.set_faults(Service::Shipping, &json!({ "latency_ms": 800 })).await;
    let order_id = suite.accepted_order(&happy_order()).await;
    suite.wait_for_step(order_id, 1, "succeeded").await;
    let body = json!({ "operator": "mallory", "reason": "no reason" });

    let anonymous = suite.operator_action_as(order_id, "cancel", None, Some(&body)).await;
    let wrong = suite.operator_action_as(order_id, "cancel", Some("not-the-operator-token"), Some(&body)).await;
    let retry = suite.operator_action_as(order_id, "retry", None, None).await;

    assert_eq!(anonymous.assert_problem(401), "/problems/unauthorized");
    assert_eq!(wrong.assert_problem(403), "/problems/forbidden");
    assert_eq!(retry.assert_problem(401), "/problems/unauthorized");
    // Nothing happened: the saga completes, and the timeline has no operator action.
    let order = suite.wait_terminal(order_id, WAIT).await;
    assert_eq!(order["status"], "completed", "{order}");
    assert!(!suite.events(order_id).await.iter().any(|e| e["kind"] == "operator"));
}
