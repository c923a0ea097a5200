//! Payment's contract: captures and refunds are idempotent and tombstoned; declines change nothing.

use saga_tests::{Service::Payment, Suite, payment::capture};
use uuid::Uuid;

#[tokio::test]
async fn capturing_debits_the_balance_and_a_replay_debits_nothing_more() {
    let suite = Suite::start(&[Payment]).await;
    let before = suite.balance("alice").await;
    let url = suite.url(Payment, &format!("/payments/{}", Uuid::new_v4()));

    let first = suite.http.put(&url, &capture("alice", 1500)).await;
    let replay = suite.http.put(&url, &capture("alice", 1500)).await;

    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["status"], "captured");
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body, first.body);
    assert_eq!(suite.balance("alice").await, before - 1500);
}

#[tokio::test]
async fn a_capture_with_another_amount_for_the_same_order_is_refused_with_422() {
    let suite = Suite::start(&[Payment]).await;
    let before = suite.balance("alice").await;
    let url = suite.url(Payment, &format!("/payments/{}", Uuid::new_v4()));
    suite.http.put(&url, &capture("alice", 1500)).await;

    suite.http.put(&url, &capture("alice", 1600)).await.assert_problem(422);

    assert_eq!(suite.balance("alice").await, before - 1500);
}

#[tokio::test]
async fn refunding_credits_the_balance_once_and_blocks_a_second_capture() {
    let suite = Suite::start(&[Payment]).await;
    let before = suite.balance("bob").await;
    let url = suite.url(Payment, &format!("/payments/{}", Uuid::new_v4()));
    suite.http.put(&url, &capture("bob", 700)).await;

    let refund = suite.http.delete(&url).await;
    let again = suite.http.delete(&url).await;
    let recapture = suite.http.put(&url, &capture("bob", 700)).await;

    assert_eq!(refund.status, 200);
    assert_eq!(refund.body["status"], "refunded");
    assert_eq!(again.status, 200);
    assert_eq!(recapture.assert_problem(409), "/problems/already-compensated");
    assert_eq!(suite.balance("bob").await, before);
}

#[tokio::test]
async fn a_refund_of_a_payment_never_taken_leaves_a_tombstone_so_a_late_capture_charges_nothing() {
    let suite = Suite::start(&[Payment]).await;
    let before = suite.balance("alice").await;
    let url = suite.url(Payment, &format!("/payments/{}", Uuid::new_v4()));

    let refund = suite.http.delete(&url).await;
    let late = suite.http.put(&url, &capture("alice", 999)).await;

    assert_eq!(refund.status, 200);
    assert_eq!(refund.body["tombstone"], true);
    assert_eq!(late.assert_problem(409), "/problems/already-compensated");
    assert_eq!(suite.balance("alice").await, before);
    assert_eq!(suite.http.get(&url).await.body["status"], "refunded");
}

#[tokio::test]
async fn a_balance_too_low_or_a_refused_card_is_declined_with_402_and_changes_nothing() {
    let suite = Suite::start(&[Payment]).await;
    let (carol, dave) = (suite.balance("carol").await, suite.balance("dave").await);

    let too_low = suite
        .http
        .put(&suite.url(Payment, &format!("/payments/{}", Uuid::new_v4())), &capture("carol", carol + 1))
        .await;
    let refused =
        suite.http.put(&suite.url(Payment, &format!("/payments/{}", Uuid::new_v4())), &capture("dave", 1)).await;

    assert_eq!(too_low.assert_problem(402), "/problems/payment-declined");
    assert_eq!(refused.assert_problem(402), "/problems/payment-declined");
    assert_eq!((suite.balance("carol").await, suite.balance("dave").await), (carol, dave));
}

#[tokio::test]
async fn an_unknown_customer_is_422_and_an_unknown_account_is_404() {
    let suite = Suite::start(&[Payment]).await;
    let url = suite.url(Payment, &format!("/payments/{}", Uuid::new_v4()));

    assert_eq!(suite.http.put(&url, &capture("nobody", 100)).await.assert_problem(422), "/problems/unknown-customer");
    suite.http.get(&url).await.assert_problem(404);
    suite.http.get(&suite.url(Payment, "/accounts/nobody")).await.assert_problem(404);
}

#[tokio::test]
async fn fifty_concurrent_identical_captures_for_one_order_debit_once_and_answer_alike() {
    let suite = Suite::start(&[Payment]).await;
    let url = suite.url(Payment, &format!("/payments/{}", Uuid::new_v4()));
    let before = suite.balance("alice").await;
    let body = capture("alice", 1234);

    let answers = futures::future::join_all((0..50).map(|_| suite.http.put(&url, &body))).await;

    let created = answers.iter().filter(|a| a.status == 201).count();
    let replayed = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!((created, replayed), (1, 49), "statuses: {:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert!(answers.iter().all(|a| a.body == answers[0].body), "every answer carries the one stored result");
    assert_eq!(suite.balance("alice").await, before - 1234);
    // The answer is the record, written the same way as a read of it.
    assert_eq!(suite.http.get(&url).await.body, answers[0].body);
}

#[tokio::test]
async fn a_declined_capture_leaves_no_claim_so_the_order_can_be_paid_afterwards() {
    let suite = Suite::start(&[Payment]).await;
    let url = suite.url(Payment, &format!("/payments/{}", Uuid::new_v4()));
    let carol = suite.balance("carol").await;

    suite.http.put(&url, &capture("carol", carol + 1)).await.assert_problem(402);
    assert_eq!(suite.http.get(&url).await.status, 404, "nothing of the declined capture is left");
    let paid = suite.http.put(&url, &capture("carol", 100)).await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    assert_eq!(suite.balance("carol").await, carol - 100);
}
