//! Batch operations: an operator's cancel or retry of every saga a filter matches, durable
//! across a restart of the orchestrator, each saga acted on once and exactly as the single
//! endpoint would.

use std::time::Duration;

use saga_suite::poll::Poll;
use saga_tests::{ADMIN_TOKEN, Answer, Http, Service, Suite, happy_order};
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(40);

async fn post_batch(suite: &Suite, token: Option<&str>, body: &Value) -> Answer {
    let mut request = suite.http.inner().post(suite.url(Service::Orchestrator, "/batch-operations")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Http::answer(request.send().await.unwrap()).await.unwrap()
}

async fn batch(suite: &Suite, id: &str, results: bool) -> Value {
    let answer =
        suite.http.get(&suite.url(Service::Orchestrator, &format!("/batch-operations/{id}?results={results}"))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

async fn wait_batch(suite: &Suite, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let held = Poll::new(WAIT, Duration::from_millis(100))
        .holds(async || {
            last = batch(suite, id, false).await;
            check(&last)
        })
        .await;
    assert!(held, "batch {id}: never {what}: {last}\n{}", suite.log(Service::Orchestrator));
    last
}

#[tokio::test]
async fn a_batch_needs_the_operator_token_and_a_valid_request() {
    let suite = Suite::start(&[Service::Orchestrator]).await;
    let cancel_running = json!({ "action": "cancel", "filter": { "status": "running" } });
    assert_eq!(post_batch(&suite, None, &cancel_running).await.assert_problem(401), "/problems/unauthorized");
    assert_eq!(
        post_batch(&suite, Some("wrong-token"), &cancel_running).await.assert_problem(403),
        "/problems/forbidden"
    );
    for bad in [
        json!({ "action": "delete", "filter": { "status": "running" } }),
        json!({ "action": "cancel" }),
        json!({ "action": "cancel", "filter": { "status": "lost" } }),
        json!({ "action": "cancel", "filter": { "status": "running" }, "max": 0 }),
        json!({ "action": "cancel", "filter": { "status": "running" }, "max": 10001 }),
        json!({ "action": "cancel", "filter": { "status": "running", "order_id_prefix": "xyz" } }),
        json!({ "action": "cancel", "filter": { "status": "running" }, "extra": 1 }),
        json!({ "action": "cancel", "filter": { "status": "running", "step": "ship_it" } }),
        json!({ "action": "cancel", "filter": { "status": "running", "customer_id": "c".repeat(65) } }),
        json!({ "action": "cancel", "filter": { "status": "running", "reason": "a\u{0}b" } }),
        json!({ "action": "cancel", "filter": { "status": "running", "created_after": "yesterday" } }),
        json!({ "action": "cancel", "filter": { "status": "running", "stuck": "yes" } }),
    ] {
        post_batch(&suite, Some(ADMIN_TOKEN), &bad).await.assert_problem(422);
    }
    let unknown_step = json!({ "action": "cancel", "filter": { "status": "running", "step": "ship_it" } });
    let refused = post_batch(&suite, Some(ADMIN_TOKEN), &unknown_step).await;
    assert!(refused.body["detail"].as_str().unwrap().starts_with("filter.step must be one of"), "{}", refused.body);
    let unknown =
        suite.http.get(&suite.url(Service::Orchestrator, &format!("/batch-operations/{}", Uuid::new_v4()))).await;
    unknown.assert_problem(404);

    // Nothing matches: the batch is created, empty, and done at once.
    let empty =
        post_batch(&suite, Some(ADMIN_TOKEN), &json!({ "action": "retry", "filter": { "status": "failed" } })).await;
    assert_eq!(empty.status, 202, "{}", empty.body);
    assert_eq!((empty.body["matched"].as_u64(), empty.body["max"].as_u64()), (Some(0), Some(1000)));
    let id = empty.body["id"].as_str().unwrap().to_owned();
    wait_batch(&suite, &id, "done", |b| b["status"] == "done").await;
}

#[tokio::test]
async fn a_batch_cancel_survives_an_orchestrator_restart_and_acts_on_each_saga_once() {
    // Sagas stuck at a hanging shipping keep retrying (a minute's budget) until cancelled; the
    // batch acts on one saga every 700 ms, so the orchestrator can be killed in the middle.
    let env = [("STEP_RETRY_BUDGET_MS", "60000"), ("BATCH_PACE_MS", "700")];
    let orchestrator_env: Vec<_> = env.iter().map(|&(k, v)| (Service::Orchestrator, k, v)).collect();
    let mut suite = Suite::start_with_env(&Service::SUITE, &orchestrator_env).await;
    suite.set_faults(Service::Shipping, &json!({ "hang": true })).await;
    let mut orders = Vec::new();
    for _ in 0..6 {
        orders.push(suite.accepted_order(&happy_order()).await);
    }
    for &order_id in &orders {
        suite.wait_for_step(order_id, 2, "retrying").await;
    }

    // The filter takes what the list takes: here the step they wait in and the customer.
    let wrong_step = json!({ "action": "cancel", "filter": { "status": "running", "step": "process_payment" } });
    let nothing = post_batch(&suite, Some(ADMIN_TOKEN), &wrong_step).await;
    assert_eq!(nothing.status, 202, "{}", nothing.body);
    assert_eq!(nothing.body["matched"], 0, "{}", nothing.body);
    let body = json!({ "action": "cancel", "max": 10, "operator": "ops-alice", "reason": "shipping outage",
                       "filter": { "status": "running", "step": "create_shipment", "customer_id": "alice" } });
    let created = post_batch(&suite, Some(ADMIN_TOKEN), &body).await;
    assert_eq!(created.status, 202, "{}", created.body);
    assert_eq!(created.body["matched"], 6, "{}", created.body);
    assert_eq!(created.body["status"], "running");
    let id = created.body["id"].as_str().unwrap().to_owned();

    // Killed after two sagas, with the rest still to do; the restarted instance goes on.
    let before = wait_batch(&suite, &id, "two sagas done", |b| b["done"].as_u64() >= Some(2)).await;
    suite.kill(Service::Orchestrator).await;
    // At most one more saga is acted on in the instant before the kill (one every 700 ms).
    assert!(before["pending"].as_u64() >= Some(2), "the kill came too late to test anything: {before}");
    suite.spawn(Service::Orchestrator, &env).await;
    let finished = wait_batch(&suite, &id, "done", |b| b["status"] == "done").await;
    assert_eq!(
        (
            finished["done"].as_u64(),
            finished["refused"].as_u64(),
            finished["failed"].as_u64(),
            finished["pending"].as_u64()
        ),
        (Some(6), Some(0), Some(0), Some(0)),
        "{finished}"
    );
    let results = batch(&suite, &id, true).await;
    let items = results["results"].as_array().unwrap();
    let mut acted: Vec<Uuid> = items.iter().map(|item| item["order_id"].as_str().unwrap().parse().unwrap()).collect();
    acted.sort();
    let mut expected = orders.clone();
    expected.sort();
    assert_eq!(acted, expected, "the batch acted on exactly the matched sagas");
    assert!(items.iter().all(|item| item["result"] == "done"), "{results}");

    // Shipping answers again: each saga compensates, with one operator event of the batch.
    suite.set_faults(Service::Shipping, &json!({})).await;
    for &order_id in &orders {
        assert_eq!(suite.wait_terminal(order_id, WAIT).await["status"], "compensated");
        let events = suite.events(order_id).await;
        let of_batch: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["kind"] == "operator" && e["detail"].as_str().is_some_and(|d| d.starts_with(&format!("batch {id}")))
            })
            .collect();
        assert_eq!(of_batch.len(), 1, "one action per saga: {events:?}");
        assert_eq!(of_batch[0]["actor"], "ops-alice");
        assert_eq!(of_batch[0]["detail"], format!("batch {id}: shipping outage"));
    }
    let metrics = suite.http.inner().get(suite.url(Service::Orchestrator, "/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    // The restarted instance counted the sagas it acted on (the first instance's count died with it).
    let counted: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("batch_operations_total{action=\"cancel\",result=\"done\"} "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_default();
    let after_restart = 6 - before["done"].as_u64().unwrap_or(0);
    assert!(counted >= (after_restart - 1) as f64 && counted <= after_restart as f64, "{counted} counted:\n{metrics}");
}
