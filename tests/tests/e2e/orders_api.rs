//! The orders API at the edge: idempotency keys, validation, listing.

use std::time::Duration;

use futures::future::join_all;
use saga_suite::poll::Poll;
use saga_tests::{SLOW_CALL_ENV, SLOW_CALL_MS, Service, Suite, happy_order, order_body};
use serde_json::{Value, json};

#[tokio::test]
async fn the_same_idempotency_key_gives_the_same_order_even_concurrently() {
    let suite = Suite::start(&Service::SUITE).await;
    let body = happy_order();

    let answers = join_all((0..20).map(|_| suite.place_order(&body, Some("order-key-1")))).await;
    let later = suite.place_order(&body, Some("order-key-1")).await;

    assert!(answers.iter().all(|a| a.status == 202), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    let id = answers[0].body["order_id"].clone();
    assert!(answers.iter().all(|a| a.body["order_id"] == id), "one order for one key");
    assert_eq!(later.body["order_id"], id);
    let pool = suite.db.pool_as("orchestrator").await.unwrap();
    let sagas: i64 = sqlx::query_scalar("select count(*) from sagas").fetch_one(&pool).await.unwrap();
    assert_eq!(sagas, 1, "no second saga");
    let order = suite.wait_terminal(id.as_str().unwrap().parse().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(order["status"], "completed");
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_refused_with_422() {
    let suite = Suite::start(&Service::SUITE).await;
    suite.place_order(&happy_order(), Some("order-key-2")).await;

    let other = suite.place_order(&order_body("bob", &[("WIDGET-1", 1)], "FR"), Some("order-key-2")).await;

    assert_eq!(other.assert_problem(422), "/problems/idempotency-mismatch");
}

#[tokio::test]
async fn an_invalid_idempotency_key_is_a_400() {
    let suite = Suite::start(&[Service::Orchestrator]).await;
    let long = "k".repeat(256);
    for key in ["", "has space", long.as_str()] {
        suite.place_order(&happy_order(), Some(key)).await.assert_problem(400);
    }
}

#[tokio::test]
async fn invalid_orders_are_refused_with_422_problem_json_and_start_no_saga() {
    let suite = Suite::start(&[Service::Orchestrator]).await;
    let mut unknown_field = happy_order();
    unknown_field["coupon"] = json!("FREE");
    let mut missing_city = happy_order();
    missing_city["shipping_address"].as_object_mut().unwrap().remove("city");
    let cases: Vec<(&str, Value)> = vec![
        ("empty items", order_body("alice", &[], "FR")),
        ("zero quantity", order_body("alice", &[("WIDGET-1", 0)], "FR")),
        ("negative quantity", order_body("alice", &[("WIDGET-1", -1)], "FR")),
        ("too many lines", order_body("alice", &[("WIDGET-1", 1); 51], "FR")),
        ("missing address field", missing_city),
        ("unknown field", unknown_field),
        ("bad country", order_body("alice", &[("WIDGET-1", 1)], "France")),
        ("no customer", json!({ "items": [], "shipping_address": {} })),
    ];
    for (case, body) in cases {
        let answer = suite.place_order(&body, None).await;
        assert_eq!(answer.status, 422, "{case}: {}", answer.body);
        answer.assert_problem(422);
    }
    let list = suite.http.get(&suite.url(Service::Orchestrator, "/orders")).await;
    assert_eq!(list.body, json!([]), "no saga was started");
}

#[tokio::test]
async fn orders_are_listed_newest_first_and_filtered_by_status() {
    let suite = Suite::start(&Service::SUITE).await;
    let first = suite.accepted_order(&happy_order()).await;
    let second = suite.accepted_order(&order_body("dave", &[("WIDGET-1", 1)], "FR")).await;
    suite.wait_terminal(first, Duration::from_secs(20)).await;
    suite.wait_terminal(second, Duration::from_secs(20)).await;

    let all = suite.http.get(&suite.url(Service::Orchestrator, "/orders")).await.body;
    let compensated = suite.http.get(&suite.url(Service::Orchestrator, "/orders?status=compensated")).await.body;
    let one = suite.http.get(&suite.url(Service::Orchestrator, "/orders?limit=1")).await.body;

    let ids = |list: &Value| {
        list.as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&all), [second.to_string(), first.to_string()]);
    assert_eq!(ids(&compensated), [second.to_string()]);
    assert_eq!(ids(&one), [second.to_string()]);
    for bad in ["/orders?status=lost", "/orders?limit=0", "/orders?limit=501", "/orders?limit=x"] {
        suite.http.get(&suite.url(Service::Orchestrator, bad)).await.assert_problem(400);
    }
}

#[tokio::test]
async fn a_long_poll_of_a_saga_driven_here_answers_when_its_driver_stops_or_its_wait_is_over() {
    // A long-poll of a saga driven in this process does not read the log while it waits: the
    // driver ends the wait. Here the driver is fenced out by an operator's cancel mid-call (it
    // stops without finishing the saga; a new driver compensates it), and another long-poll
    // runs out of time while the saga is still in its slow step.
    let suite = Suite::start_for_slow_calls(&Service::SUITE).await;
    suite.set_faults(Service::Shipping, &json!({ "latency_ms": SLOW_CALL_MS })).await;
    let order_id = suite.accepted_order(&happy_order()).await;
    let long_poll = suite.url(Service::Orchestrator, &format!("/orders/{order_id}?wait_ms=20000"));
    let waited = suite.http.get(&long_poll);
    let cancel_mid_call = async {
        suite.wait_for_step(order_id, 1, "succeeded").await;
        let short = suite.http.get(&suite.url(Service::Orchestrator, &format!("/orders/{order_id}?wait_ms=200"))).await;
        assert_eq!(short.status, 200);
        assert_eq!(short.body["status"], "running", "its wait ran out mid-step: {}", short.body);
        assert_eq!(suite.operator_action(order_id, "cancel", None).await.status, 202);
    };
    let (waited, ()) = tokio::join!(waited, cancel_mid_call);

    assert_eq!(waited.status, 200);
    assert_eq!(waited.body["status"], "compensated", "{}", waited.body);
    assert_eq!(waited.body, suite.order(order_id).await, "the long-poll's view is the log's");
}

#[tokio::test]
async fn a_long_poll_answers_once_the_saga_has_finished() {
    let suite = Suite::start(&Service::SUITE).await;
    suite.set_faults(Service::Notification, &json!({ "latency_ms": 500 })).await;
    let order_id = suite.accepted_order(&happy_order()).await;

    let waited = suite.http.get(&suite.url(Service::Orchestrator, &format!("/orders/{order_id}?wait_ms=10000"))).await;
    let immediate = suite.accepted_order(&happy_order()).await;
    let not_waited = suite.http.get(&suite.url(Service::Orchestrator, &format!("/orders/{immediate}"))).await;

    assert_eq!(waited.body["status"], "completed", "{}", waited.body);
    // The long-poll is answered from the view the executor wrote, not read back: it must be
    // exactly what the log holds.
    assert_eq!(waited.body, suite.order(order_id).await, "the long-poll's view is the log's");
    assert_ne!(not_waited.body["status"], "completed", "without wait_ms the answer is immediate");
    suite
        .http
        .get(&suite.url(Service::Orchestrator, &format!("/orders/{order_id}?wait_ms=25001")))
        .await
        .assert_problem(400);
}

#[tokio::test]
async fn past_the_admission_limit_an_order_is_refused_with_503_and_nothing_is_written() {
    let mut suite = Suite::start(&Service::PARTICIPANTS).await;
    // A step timeout well above the slow reservation, so the two sagas are slow, not failing.
    suite.spawn(Service::Orchestrator, &[&[("MAX_IN_FLIGHT_SAGAS", "2")], &SLOW_CALL_ENV[..]].concat()).await;
    suite.set_faults(Service::Inventory, &json!({ "latency_ms": SLOW_CALL_MS })).await;
    let first = suite.accepted_order(&happy_order()).await;
    let second = suite.accepted_order(&happy_order()).await;

    let refused = suite.place_order(&happy_order(), Some("admission-key")).await;

    assert_eq!(refused.assert_problem(503), "/problems/overloaded");
    assert_eq!(refused.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert!(refused.body["detail"].as_str().unwrap().contains("MAX_IN_FLIGHT_SAGAS"), "{}", refused.body);
    let pool = suite.db.pool_as("orchestrator").await.unwrap();
    let sagas: i64 = sqlx::query_scalar("select count(*) from sagas").fetch_one(&pool).await.unwrap();
    assert_eq!(sagas, 2, "the refused order wrote nothing");
    let metrics = suite.http.inner().get(suite.url(Service::Orchestrator, "/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "saga_orders_refused_total{reason=\"overloaded\"} 1"), "{metrics}");

    // Once the two have finished, the same request (same key) is accepted.
    suite.wait_terminal(first, Duration::from_secs(20)).await;
    suite.wait_terminal(second, Duration::from_secs(20)).await;
    let mut retried = suite.place_order(&happy_order(), Some("admission-key")).await;
    for _ in 0..50 {
        // Each driver leaves the count right after the saga's last write.
        if retried.status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        retried = suite.place_order(&happy_order(), Some("admission-key")).await;
    }
    assert_eq!(retried.status, 202, "{}", retried.body);
}

#[tokio::test]
async fn the_order_view_says_what_was_ordered_what_the_steps_produced_and_who_drives_it_never_the_street() {
    let suite =
        Suite::start_with_env(&Service::SUITE, &[(Service::Orchestrator, "ORCHESTRATOR_ID", "orch-view")]).await;
    // Shipping slow (within the tests' 1 s step timeout), so the saga is seen in flight first.
    suite.set_faults(Service::Shipping, &json!({ "latency_ms": 600 })).await;
    let body = order_body("bob", &[("WIDGET-1", 2), ("GADGET-1", 1)], "DE");
    let order_id = suite.accepted_order(&body).await;

    let in_flight = suite.order(order_id).await;
    assert_eq!(in_flight["customer_id"], "bob");
    assert_eq!(in_flight["items"], body["items"]);
    assert_eq!(in_flight["country"], "DE");
    assert_eq!(in_flight["owner"], "orch-view", "{in_flight}");
    assert!(in_flight["next_attempt_at"].is_string() && in_flight["deadline_at"].is_string(), "{in_flight}");
    let text = in_flight.to_string();
    assert!(
        !text.contains("James") && !text.contains("SW1Y") && !text.contains("Lovelace"),
        "the address shows: {text}"
    );

    let done = suite.wait_terminal(order_id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "completed", "{done}");
    let total = done["total_cents"].as_i64().unwrap_or_default();
    assert!(total > 0, "{done}");
    assert_eq!(done["steps"][0]["output"]["total_cents"], total);
    let tracking = done["steps"][2]["output"]["tracking_number"].as_str().unwrap_or_default();
    assert!(tracking.starts_with("TRK-"), "{done}");
    let shipment = suite.http.get(&suite.url(Service::Shipping, &format!("/shipments/{order_id}"))).await;
    assert_eq!(shipment.body["tracking_number"], tracking, "the tracking number is shipping's own");
    // Ended: nobody drives it, nothing is due.
    assert!(done["owner"].is_null() && done["next_attempt_at"].is_null() && done["deadline_at"].is_null(), "{done}");
}

#[tokio::test]
async fn orders_are_listed_by_customer_step_failure_reason_time_and_stuckness() {
    let env = [(Service::Orchestrator, "STEP_RETRY_BUDGET_MS", "60000")];
    let suite = Suite::start_with_env(&Service::SUITE, &env).await;
    let list = async |query: &str| -> Vec<String> {
        let answer = suite.http.get(&suite.url(Service::Orchestrator, &format!("/orders?{query}"))).await;
        assert_eq!(answer.status, 200, "{query}: {}", answer.body);
        answer.body.as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()).collect()
    };
    let alice = suite.accepted_order(&happy_order()).await.to_string();
    let first = suite.wait_terminal(alice.parse().unwrap(), Duration::from_secs(20)).await;
    // Carol's balance (20.00) refuses a 75.97 order: compensated, with the reason.
    let carol = suite.accepted_order(&order_body("carol", &[("WIDGET-1", 2), ("GADGET-1", 1)], "FR")).await.to_string();
    let refused = suite.wait_terminal(carol.parse().unwrap(), Duration::from_secs(20)).await;
    assert_eq!(refused["status"], "compensated", "{refused}");

    assert_eq!(list("customer_id=carol").await, [carol.as_str()]);
    assert_eq!(list("customer_id=nobody").await, Vec::<String>::new());
    assert_eq!(list("reason=BALANCE%20is%20TOO").await, [carol.as_str()], "any case, a substring");
    assert_eq!(list("reason=100%25").await, Vec::<String>::new(), "% is literal");
    let after = first["updated_at"].as_str().unwrap();
    assert_eq!(list(&format!("created_after={}", after.replace('+', "%2B"))).await, [carol.as_str()]);
    assert_eq!(list(&format!("created_before={}", after.replace('+', "%2B"))).await, [alice.as_str()]);

    // Bob's order waits at a hanging shipping, retrying: at that step, and stuck once
    // STUCK_AFTER_MS (2 s in the tests) passes without progress.
    suite.set_faults(Service::Shipping, &json!({ "hang": true })).await;
    let bob = suite.accepted_order(&order_body("bob", &[("WIDGET-1", 1)], "FR")).await;
    suite.wait_for_step(bob, 2, "retrying").await;
    assert_eq!(list("step=create_shipment&status=running").await, [bob.to_string()]);
    assert_eq!(list("step=process_payment&status=running").await, Vec::<String>::new());
    let stuck = Poll::new(Duration::from_secs(15), Duration::from_millis(200))
        .holds(async || list("stuck=true").await == [bob.to_string()])
        .await;
    assert!(stuck, "bob's saga never listed as stuck");

    for bad in ["step=teleport", "created_after=yesterday", "stuck=maybe", "reason=%00"] {
        let answer = suite.http.get(&suite.url(Service::Orchestrator, &format!("/orders?{bad}"))).await;
        assert_eq!(answer.assert_problem(400), "/problems/invalid-query", "{bad}");
    }
    suite.set_faults(Service::Shipping, &json!({})).await;
}
