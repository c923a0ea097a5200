//! The order saga's outcomes: the happy path, and a business failure at each step compensating
//! exactly the steps before it, newest first, as the timeline and the participants both show.

use std::time::Duration;

use saga_tests::{Service, Suite, happy_order, order_body};
use serde_json::Value;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

async fn participant_record(suite: &Suite, service: Service, resource: &str, order_id: &str) -> Value {
    suite.http.get(&suite.url(service, &format!("/{resource}/{order_id}"))).await.body
}

#[tokio::test]
async fn a_happy_order_completes_every_step_and_each_participant_holds_its_effect() {
    let suite = Suite::start(&Service::SUITE).await;
    let alice_before =
        suite.http.get(&suite.url(Service::Payment, "/accounts/alice")).await.body["balance_cents"].as_i64().unwrap();

    let answer = suite.place_order(&order_body("alice", &[("WIDGET-1", 2), ("GADGET-1", 1)], "FR"), None).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let order_id = answer.body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(answer.headers["location"], format!("/orders/{order_id}").as_str());
    let order = suite.wait_terminal(order_id.parse().unwrap(), WAIT).await;

    assert_eq!(order["status"], "completed", "{order}");
    assert!(order["steps"].as_array().unwrap().iter().all(|s| s["status"] == "succeeded" && s["attempts"] == 1));
    let total = 2 * 1299 + 4999;
    assert_eq!(participant_record(&suite, Service::Inventory, "reservations", &order_id).await["status"], "reserved");
    let payment = participant_record(&suite, Service::Payment, "payments", &order_id).await;
    assert_eq!((payment["status"].as_str(), payment["amount_cents"].as_i64()), (Some("captured"), Some(total)));
    assert_eq!(participant_record(&suite, Service::Shipping, "shipments", &order_id).await["status"], "created");
    assert_eq!(participant_record(&suite, Service::Notification, "notifications", &order_id).await["status"], "sent");
    let alice_after =
        suite.http.get(&suite.url(Service::Payment, "/accounts/alice")).await.body["balance_cents"].as_i64().unwrap();
    assert_eq!(alice_after, alice_before - total);
    assert_eq!(
        suite.timeline(order_id.parse().unwrap()).await,
        [
            "saga:started",
            "action:reserve_inventory:ok",
            "action:process_payment:ok",
            "action:create_shipment:ok",
            "action:send_confirmation:ok",
            "saga:completed"
        ]
    );
}

/// The compensation events of a timeline, in order, as `step` names.
async fn compensations(suite: &Suite, order_id: Uuid) -> Vec<String> {
    suite
        .events(order_id)
        .await
        .iter()
        .filter(|e| e["kind"] == "compensation" && e["outcome"] == "ok")
        .map(|e| e["step"].as_str().unwrap().to_owned())
        .collect()
}

async fn assert_compensated_exactly(suite: &Suite, order: Value, failed_step: &str, undone: &[&str]) {
    let order_id: Uuid = order["order_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(order["status"], "compensated", "{order}");
    assert!(order["failure_reason"].as_str().unwrap().contains(failed_step), "{order}");
    assert_eq!(compensations(suite, order_id).await, undone, "compensated newest first, and only those");
    let statuses: Vec<&str> =
        order["steps"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    let failed_at = ["reserve_inventory", "process_payment", "create_shipment", "send_confirmation"]
        .iter()
        .position(|s| *s == failed_step)
        .unwrap();
    for (index, status) in statuses.iter().enumerate() {
        let expected = match index.cmp(&failed_at) {
            std::cmp::Ordering::Less => "compensated",
            std::cmp::Ordering::Equal => "failed",
            std::cmp::Ordering::Greater => "pending",
        };
        assert_eq!(*status, expected, "step {index} of {order}");
    }
    // Each participant's own state agrees.
    let id = order_id.to_string();
    let reservation = participant_record(suite, Service::Inventory, "reservations", &id).await;
    let payment = participant_record(suite, Service::Payment, "payments", &id).await;
    let shipment = participant_record(suite, Service::Shipping, "shipments", &id).await;
    let notification = participant_record(suite, Service::Notification, "notifications", &id).await;
    let state = |record: &Value, done: &str| match record["status"].as_str() {
        None => "absent".to_owned(),
        Some(s) if s == done => "done".to_owned(),
        Some(_) => "undone".to_owned(),
    };
    let states = [
        state(&reservation, "reserved"),
        state(&payment, "captured"),
        state(&shipment, "created"),
        state(&notification, "sent"),
    ];
    for (index, state) in states.iter().enumerate() {
        let expected = if index < failed_at { "undone" } else { "absent" };
        assert_eq!(state, expected, "participant of step {index}: {states:?}");
    }
}

#[tokio::test]
async fn out_of_stock_fails_the_first_step_and_nothing_needs_undoing() {
    let suite = Suite::start(&Service::SUITE).await;
    let order_id = suite.accepted_order(&order_body("alice", &[("SOLDOUT-1", 1)], "FR")).await;
    let order = suite.wait_terminal(order_id, WAIT).await;
    assert_compensated_exactly(&suite, order, "reserve_inventory", &[]).await;
}

#[tokio::test]
async fn a_declined_payment_releases_the_reservation() {
    let suite = Suite::start(&Service::SUITE).await;
    let before = suite.http.get(&suite.url(Service::Inventory, "/products/GIZMO-1")).await.body;
    let order_id = suite.accepted_order(&order_body("dave", &[("GIZMO-1", 3)], "FR")).await;
    let order = suite.wait_terminal(order_id, WAIT).await;
    assert_compensated_exactly(&suite, order, "process_payment", &["reserve_inventory"]).await;
    assert_eq!(suite.http.get(&suite.url(Service::Inventory, "/products/GIZMO-1")).await.body, before);
}

#[tokio::test]
async fn an_undeliverable_address_refunds_the_payment_then_releases_the_reservation() {
    let suite = Suite::start(&Service::SUITE).await;
    let balance = suite.http.get(&suite.url(Service::Payment, "/accounts/bob")).await.body["balance_cents"].clone();
    let order_id = suite.accepted_order(&order_body("bob", &[("WIDGET-1", 1)], "AQ")).await;
    let order = suite.wait_terminal(order_id, WAIT).await;
    assert_compensated_exactly(&suite, order, "create_shipment", &["process_payment", "reserve_inventory"]).await;
    assert_eq!(suite.http.get(&suite.url(Service::Payment, "/accounts/bob")).await.body["balance_cents"], balance);
}

#[tokio::test]
async fn a_confirmation_that_cannot_be_sent_undoes_the_three_steps_before_it_newest_first() {
    let mut suite = Suite::start(&Service::SUITE).await;
    // Notification is down: every attempt is refused at connect (it certainly did not happen),
    // so once its retry budget (2 s in tests) runs out, exactly the three earlier steps are
    // compensated.
    suite.kill(Service::Notification).await;
    let order_id = suite.accepted_order(&happy_order()).await;
    let order = suite.wait_terminal(order_id, WAIT).await;
    suite.spawn(Service::Notification, &[]).await; // to read its state
    assert_compensated_exactly(
        &suite,
        order.clone(),
        "send_confirmation",
        &["create_shipment", "process_payment", "reserve_inventory"],
    )
    .await;
    // Five refused connections open notification's circuit; the sixth attempt waits for it
    // until the budget runs out, and is recorded as not sent.
    assert_eq!(order["steps"][3]["attempts"], 6, "{order}");
    let attempts: Vec<Value> = suite
        .events(order_id)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "action" && e["step"] == "send_confirmation")
        .collect();
    assert_eq!(attempts.len(), 6);
    assert!(attempts.iter().all(|e| e["outcome"] == "transient"), "{attempts:?}");
    assert!(attempts[5]["detail"].as_str().is_some_and(|d| d.contains("(circuit open); not sent")), "{attempts:?}");
}
