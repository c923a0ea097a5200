//! Shipping's contract: shipments are idempotent, cancellable, tombstoned; some countries refused.

use saga_tests::{Service::Shipping, Suite, shipping::shipment};
use uuid::Uuid;

#[tokio::test]
async fn creating_a_shipment_returns_a_tracking_number_and_a_replay_returns_the_same() {
    let suite = Suite::start(&[Shipping]).await;
    let url = suite.url(Shipping, &format!("/shipments/{}", Uuid::new_v4()));

    let first = suite.http.put(&url, &shipment("GB")).await;
    let replay = suite.http.put(&url, &shipment("GB")).await;

    assert_eq!(first.status, 201, "{}", first.body);
    assert!(first.body["tracking_number"].as_str().unwrap().starts_with("TRK-"));
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body, first.body);
    assert_eq!(suite.http.get(&url).await.body["status"], "created");
}

#[tokio::test]
async fn an_undeliverable_country_is_refused_with_422_and_records_nothing() {
    let suite = Suite::start(&[Shipping]).await;
    let url = suite.url(Shipping, &format!("/shipments/{}", Uuid::new_v4()));

    let answer = suite.http.put(&url, &shipment("AQ")).await;

    assert_eq!(answer.assert_problem(422), "/problems/undeliverable");
    suite.http.get(&url).await.assert_problem(404);
}

#[tokio::test]
async fn cancelling_a_shipment_marks_it_cancelled_and_blocks_a_second_booking() {
    let suite = Suite::start(&[Shipping]).await;
    let url = suite.url(Shipping, &format!("/shipments/{}", Uuid::new_v4()));
    suite.http.put(&url, &shipment("FR")).await;

    let cancel = suite.http.delete(&url).await;

    assert_eq!(cancel.status, 200);
    assert_eq!(cancel.body["status"], "cancelled");
    assert_eq!(cancel.body["tombstone"], false);
    suite.http.put(&url, &shipment("FR")).await.assert_problem(409);
    assert_eq!(suite.http.delete(&url).await.status, 200, "a repeated cancel succeeds");
}

#[tokio::test]
async fn cancelling_a_shipment_never_booked_leaves_a_tombstone_that_refuses_a_late_booking() {
    let suite = Suite::start(&[Shipping]).await;
    let url = suite.url(Shipping, &format!("/shipments/{}", Uuid::new_v4()));

    let cancel = suite.http.delete(&url).await;
    let late = suite.http.put(&url, &shipment("FR")).await;

    assert_eq!(cancel.body["tombstone"], true);
    assert_eq!(late.assert_problem(409), "/problems/already-compensated");
    assert!(suite.http.get(&url).await.body["tracking_number"].is_null());
}
