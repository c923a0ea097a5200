//! Batched steps (`saga_shared::step_batch`): concurrent `PUT`s to one participant share one
//! transaction, and each still gets the answer it would get alone.

use futures::future::join_all;
use saga_tests::{
    Service::{self, Inventory, Payment, Shipping},
    Suite,
    payment::capture,
    shipping::shipment,
};
use serde_json::{Value, json};
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
    let transactions = writing_transactions(&pool, "payments", &fresh).await;
    assert!(
        transactions < fresh.len() as i64,
        "40 concurrent captures took {transactions} transactions: none was batched"
    );
}

/// Runs `insert`, then makes every update of `schema.table` whose new row matches `when` a
/// database error (a trigger): not a refusal, so it fails the batch it is in.
async fn break_updates(suite: &Suite, insert: &str, schema: &str, table: &str, when: &str) {
    let db = suite.db.superuser_pool().await.unwrap();
    for statement in [
        insert.to_owned(),
        format!(
            "create function {schema}.explode() returns trigger language plpgsql as \
             $$ begin raise exception 'this row of {table} is broken'; end $$"
        ),
        format!(
            "create trigger explode before update on {schema}.{table} for each row \
             when ({when}) execute function {schema}.explode()"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&db).await.unwrap();
    }
}

/// How many transactions last wrote the rows of `orders` in the ledger `table`.
async fn writing_transactions(pool: &sqlx::PgPool, table: &str, orders: &[Uuid]) -> i64 {
    let query = format!("select count(distinct xmin::text)::bigint from {table} where order_id = any($1)");
    sqlx::query_scalar(sqlx::AssertSqlSafe(query)).bind(orders).fetch_one(pool).await.unwrap()
}

/// A counter's `series` (name and labels, as exported) from the service's `/metrics`.
async fn counter(suite: &Suite, service: Service, series: &str) -> u64 {
    let page = suite.http.inner().get(suite.url(service, "/metrics")).send().await.unwrap().text().await.unwrap();
    let prefix = format!("{series} ");
    let value = page.lines().find_map(|line| line.strip_prefix(&prefix));
    value.unwrap_or_else(|| panic!("no {series} in:\n{page}")).parse().unwrap()
}

/// `step_batches_total{step, result="failed"}` as the service exports it.
async fn failed_batches(suite: &Suite, service: Service, step: &str) -> u64 {
    counter(suite, service, &format!(r#"step_batches_total{{step="{step}",result="failed"}}"#)).await
}

/// Asserts that a burst's `won` orders of the step `table` (its ledger table and its batches'
/// `step` label) were batched for real and decided right in their batches: written by fewer
/// transactions than orders, two or more of the `contested` ones (those that competed for a
/// short row) written by one transaction, and no batch failed (a failed batch runs again order by
/// order, which would hide a wrong decision behind the update's guard).
async fn assert_decided_in_batches(
    suite: &Suite,
    pool: &sqlx::PgPool,
    service: Service,
    table: &str,
    won: &[Uuid],
    contested: &[Uuid],
) {
    let transactions = writing_transactions(pool, table, won).await;
    assert!(transactions < won.len() as i64, "{} {table} took {transactions} transactions", won.len());
    let query = format!(
        "select coalesce(max(n), 0) from (select count(*) as n from {table} where order_id = any($1) group by xmin::text) t"
    );
    let together: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(query)).bind(contested).fetch_one(pool).await.unwrap();
    assert!(together > 1, "the contested {table} were never decided in one batch: the test proves nothing");
    assert_eq!(failed_batches(suite, service, table).await, 0, "no batch of {table} failed");
}

#[tokio::test]
async fn a_batch_that_fails_as_a_whole_is_run_again_one_request_at_a_time() {
    let suite = Suite::start(&[Payment]).await;
    // An account whose debit is a database error (not a refusal): it fails the batch it is in.
    let erin = "insert into payment.accounts (customer_id, balance_cents) values ('erin', 1000)";
    break_updates(&suite, erin, "payment", "accounts", "new.customer_id = 'erin'").await;
    let alice = suite.balance("alice").await;
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
        if failed_batches(&suite, Payment, "payments").await > 0 {
            break;
        }
    }
    assert_eq!(suite.balance("alice").await, alice - 10 * good.len() as i64);
    assert!(failed_batches(&suite, Payment, "payments").await > 0, "a batch failed and was counted");
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
    assert_eq!(writing_transactions(&pool, "payments", &orders).await, 20);
}

/// Payment does a batch's debits in two statements (`Step::effects`): the batch's accounts locked
/// once, each debit decided in turn in memory against what the ones before it left, one update.
/// A balance that covers only some of a burst must never be overdrawn.
#[tokio::test]
async fn a_burst_of_captures_from_a_balance_that_covers_some_is_batched_and_never_overdraws() {
    let suite = Suite::start(&[Payment]).await;
    let db = suite.db.superuser_pool().await.unwrap();
    sqlx::query("insert into payment.accounts (customer_id, balance_cents) values ('frank', 250)")
        .execute(&db)
        .await
        .unwrap();
    let alice = suite.balance("alice").await;
    // 30 captures of 10 from frank (25 fit), interleaved with 30 from alice (all fit) and 3 of 7
    // from frank, which fit only while 7 or more is left.
    let mut burst: Vec<(Uuid, Value)> = (0..60)
        .map(|i| (Uuid::new_v4(), if i % 2 == 0 { capture("frank", 10) } else { capture("alice", 10) }))
        .collect();
    for at in [5, 30, 55] {
        burst.insert(at, (Uuid::new_v4(), capture("frank", 7)));
    }
    let answers = join_all(burst.iter().map(|(id, body)| put(&suite, *id, body))).await;

    let (mut frank_paid, mut frank_won, mut frank_declined, mut won) = (0, Vec::new(), Vec::new(), Vec::new());
    for ((id, body), answer) in burst.iter().zip(&answers) {
        let amount = body["amount_cents"].as_i64().unwrap();
        match (body["customer_id"].as_str().unwrap(), answer.status.as_u16()) {
            ("frank", 201) => {
                frank_paid += amount;
                frank_won.push(*id);
            }
            ("frank", 402) => {
                frank_declined.push(amount);
                assert_eq!(answer.body["type"], "/problems/payment-declined");
                assert_eq!(suite.http.get(&url(&suite, *id)).await.status, 404, "a declined capture leaves no claim");
            }
            ("alice", 201) => {}
            (customer, status) => panic!("order {id} of {customer}: {status} {}", answer.body),
        }
        if answer.status == 201 {
            assert_eq!(answer.body["amount_cents"], amount);
            won.push(*id);
        }
    }
    let frank = suite.balance("frank").await;
    assert_eq!(frank, 250 - frank_paid, "each capture debited exactly once");
    // 321 wanted from 250: some were declined, and none of them would have fit what is left.
    let smallest_declined = frank_declined.iter().min().copied().unwrap();
    assert!(frank < smallest_declined, "{frank} left, yet a capture of {smallest_declined} was declined");
    assert_eq!(suite.balance("alice").await, alice - 30 * 10);
    // Each outcome counted once, as it would be alone.
    let captures = |result: &str| format!(r#"payment_captures_total{{result="{result}"}}"#);
    assert_eq!(counter(&suite, Payment, &captures("captured")).await, won.len() as u64);
    assert_eq!(counter(&suite, Payment, &captures("declined")).await, frank_declined.len() as u64);
    let pool = suite.db.pool_as("payment").await.unwrap();
    assert_decided_in_batches(&suite, &pool, Payment, "payments", &won, &frank_won).await;
}

/// Inventory does a batch's effects in two statements (`Step::effects`): the batch's products
/// locked once, each order decided in turn in memory, one update for what the accepted ones
/// took. Each order must still get what it would get alone, in some order of the burst.
#[tokio::test]
async fn a_burst_of_reservations_over_scarce_and_plentiful_stock_is_batched_and_never_oversells() {
    let suite = Suite::start(&[Inventory]).await;
    let pool = suite.db.pool_as("inventory").await.unwrap();
    for (sku, price, available) in [("SCARCE", 300, 12), ("PLENTY", 7, 1000)] {
        sqlx::query("insert into products (sku, name, price_cents, available) values ($1, $1, $2, $3)")
            .bind(sku)
            .bind(price as i64)
            .bind(available)
            .execute(&pool)
            .await
            .unwrap();
    }
    let line = |sku: &str, quantity: i64| json!({ "sku": sku, "quantity": quantity });
    // 48 orders: a third want only PLENTY (all must win), a third want SCARCE and PLENTY (twelve
    // units of SCARCE to share: a loser takes neither line), a third want 2 SCARCE; plus an
    // unknown sku, which is refused whatever its other lines. The sixteen that want one SCARCE
    // are enough to sell it out exactly, whatever order the batches decide them in.
    let mut burst: Vec<(Uuid, Value)> = (0..48)
        .map(|i| {
            let items = match i % 3 {
                0 => vec![line("PLENTY", 3)],
                1 => vec![line("SCARCE", 1), line("PLENTY", 2)],
                _ => vec![line("SCARCE", 2)],
            };
            (Uuid::new_v4(), json!({ "items": items }))
        })
        .collect();
    let unknown = Uuid::new_v4();
    burst.insert(20, (unknown, json!({ "items": [line("PLENTY", 1), line("NO-SUCH-SKU", 1)] })));
    let url = |order: Uuid| suite.url(Inventory, &format!("/reservations/{order}"));

    let urls: Vec<String> = burst.iter().map(|(order, _)| url(*order)).collect();
    let answers = join_all(urls.iter().zip(&burst).map(|(url, (_, body))| suite.http.put(url, body))).await;

    let (mut scarce, mut plenty, mut won, mut scarce_won) = (0, 0, Vec::new(), Vec::new());
    for ((order, body), answer) in burst.iter().zip(&answers) {
        let wants = |sku: &str| -> i64 {
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| l["sku"] == sku)
                .map(|l| l["quantity"].as_i64().unwrap())
                .sum()
        };
        match answer.status.as_u16() {
            201 => {
                assert_eq!(answer.body["total_cents"], wants("SCARCE") * 300 + wants("PLENTY") * 7, "order {order}");
                scarce += wants("SCARCE");
                plenty += wants("PLENTY");
                won.push(*order);
                if wants("SCARCE") > 0 {
                    scarce_won.push(*order);
                }
            }
            409 => {
                assert!(wants("SCARCE") > 0, "only SCARCE can run out: {}", answer.body);
                assert_eq!(answer.body["type"], "/problems/out-of-stock");
            }
            422 => assert_eq!(*order, unknown, "{}", answer.body),
            other => panic!("order {order}: {other} {}", answer.body),
        }
        if answer.status != 201 {
            assert_eq!(suite.http.get(&url(*order)).await.status, 404, "a refused reservation leaves no claim");
        }
    }
    assert_eq!(answers.iter().filter(|a| a.status == 422).count(), 1, "the unknown sku was refused");
    assert_eq!(scarce, 12, "SCARCE sold out exactly: a later order that fits what is left still wins");
    let scarce_now = suite.http.get(&suite.url(Inventory, "/products/SCARCE")).await.body;
    let plenty_now = suite.http.get(&suite.url(Inventory, "/products/PLENTY")).await.body;
    assert_eq!((scarce_now["available"].as_i64(), scarce_now["reserved"].as_i64()), (Some(0), Some(12)));
    assert_eq!(
        (plenty_now["available"].as_i64(), plenty_now["reserved"].as_i64()),
        (Some(1000 - plenty), Some(plenty))
    );
    // Each outcome counted once, as it would be alone.
    let reservations = |result: &str| format!(r#"inventory_reservations_total{{result="{result}"}}"#);
    assert_eq!(counter(&suite, Inventory, &reservations("reserved")).await, won.len() as u64);
    let out_of_stock = answers.iter().filter(|a| a.status == 409).count() as u64;
    assert_eq!(counter(&suite, Inventory, &reservations("out_of_stock")).await, out_of_stock);
    assert_eq!(counter(&suite, Inventory, &reservations("unknown_sku")).await, 1);
    assert_decided_in_batches(&suite, &pool, Inventory, "reservations", &won, &scarce_won).await;
}

/// The batch's one update fails when one product's row does (a trigger here): the whole batch is
/// run again order by order, and only the broken order fails.
#[tokio::test]
async fn a_reservation_batch_whose_update_fails_is_run_again_one_request_at_a_time() {
    let suite = Suite::start(&[Inventory]).await;
    let broken =
        "insert into inventory.products (sku, name, price_cents, available) values ('BROKEN', 'BROKEN', 1, 1000)";
    break_updates(&suite, broken, "inventory", "products", "new.sku = 'BROKEN'").await;
    let body = |sku: &str| json!({ "items": [{ "sku": sku, "quantity": 1 }] });
    let url = |order: Uuid| suite.url(Inventory, &format!("/reservations/{order}"));
    let before = suite.http.get(&suite.url(Inventory, "/products/WIDGET-1")).await.body;
    let mut good = Vec::new();
    // As with payment's: a few bursts make a shared batch certain enough.
    for _ in 0..5 {
        let burst_good: Vec<Uuid> = (0..30).map(|_| Uuid::new_v4()).collect();
        let broken = Uuid::new_v4();
        let mut burst: Vec<(Uuid, Value)> = burst_good.iter().map(|&id| (id, body("WIDGET-1"))).collect();
        burst.insert(15, (broken, body("BROKEN")));
        let urls: Vec<String> = burst.iter().map(|(id, _)| url(*id)).collect();
        let answers = join_all(urls.iter().zip(&burst).map(|(url, (_, body))| suite.http.put(url, body))).await;

        for ((id, _), answer) in burst.iter().zip(&answers) {
            let expected = if *id == broken { 500 } else { 201 };
            assert_eq!(answer.status, expected, "order {id}: {}", answer.body);
        }
        assert_eq!(suite.http.get(&url(broken)).await.status, 404, "the failed reservation left nothing");
        good.extend(burst_good);
        if failed_batches(&suite, Inventory, "reservations").await > 0 {
            break;
        }
    }
    let after = suite.http.get(&suite.url(Inventory, "/products/WIDGET-1")).await.body;
    let n = good.len() as i64;
    assert_eq!(after["available"].as_i64(), before["available"].as_i64().map(|a| a - n));
    assert_eq!(after["reserved"].as_i64(), before["reserved"].as_i64().map(|r| r + n));
    assert!(failed_batches(&suite, Inventory, "reservations").await > 0, "a batch failed and was counted");
}

/// Shipping decides a batch's orders together (`Step::effects`, one lookup of their countries):
/// each order still gets the answer for its own country, an undeliverable one its refusal and
/// no claim.
#[tokio::test]
async fn a_burst_of_shipments_to_many_countries_is_batched_and_each_undeliverable_one_refused() {
    let suite = Suite::start(&[Shipping]).await;
    let countries = ["GB", "FR", "AQ", "DE", "GB", "JP"];
    let burst: Vec<(Uuid, &str)> = (0..48).map(|i| (Uuid::new_v4(), countries[i % countries.len()])).collect();
    let url = |order: Uuid| suite.url(Shipping, &format!("/shipments/{order}"));
    let urls: Vec<String> = burst.iter().map(|(order, _)| url(*order)).collect();
    let bodies: Vec<Value> = burst.iter().map(|(_, country)| shipment(country)).collect();
    let answers = join_all(urls.iter().zip(&bodies).map(|(url, body)| suite.http.put(url, body))).await;

    let mut created = Vec::new();
    for ((order, country), answer) in burst.iter().zip(&answers) {
        if *country == "AQ" {
            assert_eq!(answer.assert_problem(422), "/problems/undeliverable", "order {order}");
            assert_eq!(suite.http.get(&url(*order)).await.status, 404, "an undeliverable shipment leaves no claim");
        } else {
            assert_eq!(answer.status, 201, "order {order} to {country}: {}", answer.body);
            assert_eq!(answer.body["country"], *country);
            assert_eq!(answer.body["order_id"], order.to_string());
            created.push(*order);
        }
    }
    assert_eq!(created.len(), 40);
    let pool = suite.db.pool_as("shipping").await.unwrap();
    let transactions = writing_transactions(&pool, "shipments", &created).await;
    assert!(transactions < created.len() as i64, "{} shipments took {transactions} transactions", created.len());
}
