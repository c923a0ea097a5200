//! Notification's contract: a confirmation, and a cancellation notice only if one was sent.

use saga_tests::{Service::Notification, Suite};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_confirmation_is_recorded_once_and_its_cancellation_sends_a_notice() {
    let suite = Suite::start(&[Notification]).await;
    let url = suite.url(Notification, &format!("/notifications/{}", Uuid::new_v4()));
    let body = json!({ "customer_id": "alice" });

    let sent = suite.http.put(&url, &body).await;
    let replay = suite.http.put(&url, &body).await;
    let cancelled = suite.http.delete(&url).await;

    assert_eq!(sent.status, 201, "{}", sent.body);
    assert_eq!(sent.body["status"], "sent");
    assert!(sent.body["confirmation"].as_str().unwrap().contains("confirmed"));
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body, sent.body);
    assert_eq!(cancelled.status, 200);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert!(cancelled.body["cancellation_notice"].as_str().unwrap().contains("cancelled"));
    suite.http.put(&url, &body).await.assert_problem(409);
}

#[tokio::test]
async fn cancelling_before_any_confirmation_sends_no_notice_and_refuses_a_late_confirmation() {
    let suite = Suite::start(&[Notification]).await;
    let url = suite.url(Notification, &format!("/notifications/{}", Uuid::new_v4()));

    let cancelled = suite.http.delete(&url).await;
    let late = suite.http.put(&url, &json!({ "customer_id": "alice" })).await;

    assert_eq!(cancelled.status, 200);
    assert_eq!(cancelled.body["tombstone"], true);
    assert!(cancelled.body["cancellation_notice"].is_null(), "nothing was confirmed, so no notice");
    assert_eq!(late.assert_problem(409), "/problems/already-compensated");
}

#[tokio::test]
async fn a_confirmation_for_another_customer_on_the_same_order_is_refused_with_422() {
    let suite = Suite::start(&[Notification]).await;
    let url = suite.url(Notification, &format!("/notifications/{}", Uuid::new_v4()));
    suite.http.put(&url, &json!({ "customer_id": "alice" })).await;

    suite.http.put(&url, &json!({ "customer_id": "bob" })).await.assert_problem(422);
    assert_eq!(suite.http.get(&url).await.body["customer_id"], "alice");
}
