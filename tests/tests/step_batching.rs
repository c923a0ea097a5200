//! Batched steps (`saga_shared::step_batch`): concurrent `PUT`s to one participant share one
//! transaction, and each still gets the answer it would get alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::future::join_all;
use saga_tests::{payment::capture, Service::Payment, Suite};
use serde_json::Value;
use uuid::Uuid;

fn url(suite: &Suite, order: Uuid) -> String {
    suite.url(Payment, &format!("/payments/{order}"))
}

async fn put(suite: &Suite, order: Uuid, body: &Value) -> saga_tests::Answer {
    suite.http.put(&url(suite, order), body).await
}

#[tokio::test]
async fn a_burst_of_mixed_captures_is_batched_and_each_gets_the_answer_it_would_get_alone() {
    let suite = Suite::start(&[Payment]).await;
    let (alice, carol) = (suite.balance("alice").await, suite.balance("carol").await);
    // Set up before the burst: a captured order (its replay and a changed body come in the
    // burst) and a refunded one (a late capture of it must be refused).
    let (done, refunded) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(suite.http.put(&url(&suite, done), &capture("alice", 100)).await.status, 201);
    assert_eq!(suite.http.delete(&url(&suite, refunded)).await.status, 200);

    // (order, body, expected status): 40 fresh captures among refusals of every kind.
    let fresh: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    let mut burst: Vec<(Uuid, Value, u16)> = fresh.iter().map(|&id| (id, capture("alice", 10), 201)).collect();
    let refusals = [
        (Uuid::new_v4(), capture("dave", 10), 402),   // the card is always declined
        (Uuid::new_v4(), capture("nobody", 10), 422), // no such customer
        (done, capture("alice", 100), 200),           // a replay
        (done, capture("alice", 999), 422),           // another body for a done order
        (refunded, capture("alice", 10), 409),        // compensated before it ran
        (Uuid::new_v4(), capture("carol", carol + 1), 402), // more than the balance
    ];
    for (i, refusal) in refusals.into_iter().enumerate() {
        burst.insert(i * 7, refusal);
    }

    let answers = join_all(burst.iter().map(|(id, body, _)| put(&suite, *id, body))).await;

    for ((id, body, expected), answer) in burst.iter().zip(&answers) {
        assert_eq!(answer.status, *expected, "order {id} with {body}: {}", answer.body);
    }
    assert_eq!(suite.balance("alice").await, alice - 100 - 40 * 10, "each fresh capture debited once");
    for (id, _, expected) in &burst {
        let record = suite.http.get(&url(&suite, *id)).await;
        match expected {
            201 => assert_eq!(record.body["status"], "captured"),
            402 | 422 if *id != done => assert_eq!(record.status, 404, "a refused capture leaves no claim"),
            _ => {}
        }
    }
    // Batched for real: the fresh captures were written by fewer transactions than orders.
    let pool = suite.db.pool_as("payment").await.unwrap();
    let transactions = writing_transactions(&pool, &fresh).await;
    assert!(
        transactions < fresh.len() as i64,
        "40 concurrent captures took {transactions} transactions: none was batched"
    );
}

/// How many transactions last wrote the payments of `orders`.
async fn writing_transactions(pool: &sqlx::PgPool, orders: &[Uuid]) -> i64 {
    sqlx::query_scalar("select count(distinct xmin::text)::bigint from payments where order_id = any($1)")
        .bind(orders)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_that_fails_as_a_whole_is_run_again_one_request_at_a_time() {
    let suite = Suite::start(&[Payment]).await;
    let db = suite.db.superuser_pool().await.unwrap();
    // An account whose debit is a database error (not a refusal): it fails the batch it is in.
    for statement in [
        "insert into payment.accounts (customer_id, balance_cents) values ('erin', 1000)",
        "create function payment.explode() returns trigger language plpgsql as \
         $$ begin raise exception 'erin''s account is broken'; end $$",
        "create trigger explode before update on payment.accounts for each row \
         when (new.customer_id = 'erin') execute function payment.explode()",
    ] {
        sqlx::query(statement).execute(&db).await.unwrap();
    }
    let alice = suite.balance("alice").await;
    let metrics_url = suite.url(Payment, "/metrics");
    let failed_batch = r#"step_batches_total{step="payments",result="failed"} "#;
    let mut good = Vec::new();
    // The broken capture fails a batch unless it happens to run alone (first in, to an idle
    // writer): a few bursts make a shared batch certain enough.
    for _ in 0..5 {
        let burst_good: Vec<Uuid> = (0..30).map(|_| Uuid::new_v4()).collect();
        let broken = Uuid::new_v4();
        let mut burst: Vec<(Uuid, Value)> = burst_good.iter().map(|&id| (id, capture("alice", 10))).collect();
        burst.insert(15, (broken, capture("erin", 10)));
        let answers = join_all(burst.iter().map(|(id, body)| put(&suite, *id, body))).await;

        for ((id, _), answer) in burst.iter().zip(&answers) {
            let expected = if *id == broken { 500 } else { 201 };
            assert_eq!(answer.status, expected, "order {id}: {}", answer.body);
        }
        assert_eq!(suite.http.get(&url(&suite, broken)).await.status, 404, "the failed capture left nothing");
        good.extend(burst_good);
        let metrics = suite.http.inner().get(&metrics_url).send().await.unwrap().text().await.unwrap();
        if metrics.lines().any(|line| line.starts_with(failed_batch) && !line.ends_with(" 0")) {
            break;
        }
    }
    assert_eq!(suite.balance("alice").await, alice - 10 * good.len() as i64);
    let metrics = suite.http.inner().get(&metrics_url).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|line| line.starts_with(failed_batch) && !line.ends_with(" 0")),
        "a batch failed and was counted:\n{metrics}"
    );
    // A replay of any of them is still a replay.
    assert_eq!(suite.http.put(&url(&suite, good[0]), &capture("alice", 10)).await.status, 200);
}

#[tokio::test]
async fn with_batching_off_each_capture_has_a_transaction_of_its_own() {
    let suite = Suite::start_with_env(&[Payment], &[(Payment, "STEP_BATCHING", "off")]).await;
    let alice = suite.balance("alice").await;
    let orders: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();

    let body = capture("alice", 10);
    let answers = join_all(orders.iter().map(|id| put(&suite, *id, &body))).await;

    assert!(answers.iter().all(|a| a.status == 201));
    assert_eq!(suite.balance("alice").await, alice - 20 * 10);
    let pool = suite.db.pool_as("payment").await.unwrap();
    assert_eq!(writing_transactions(&pool, &orders).await, 20);
}
