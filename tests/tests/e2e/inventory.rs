//! Inventory's contract: reservations are idempotent, compensable, tombstoned, never oversold.

use futures::future::join_all;
use saga_tests::{Service::Inventory, Suite};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

fn reservation(sku: &str, quantity: i64) -> Value {
    json!({ "items": [{ "sku": sku, "quantity": quantity }] })
}

async fn stock(suite: &Suite, sku: &str) -> (i64, i64) {
    let product = suite.http.get(&suite.url(Inventory, &format!("/products/{sku}"))).await;
    assert_eq!(product.status, 200, "{}", product.body);
    (product.body["available"].as_i64().unwrap(), product.body["reserved"].as_i64().unwrap())
}

/// Adds a product straight into inventory's schema (as the inventory role itself).
async fn add_product(suite: &Suite, sku: &str, price_cents: i64, available: i32) {
    let pool: PgPool = suite.db.pool_as("inventory").await.unwrap();
    sqlx::query("insert into products (sku, name, price_cents, available) values ($1, $1, $2, $3)")
        .bind(sku)
        .bind(price_cents)
        .bind(available)
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn reserving_moves_stock_from_available_to_reserved_and_prices_the_order() {
    let suite = Suite::start(&[Inventory]).await;
    let order = Uuid::new_v4();
    let before = stock(&suite, "WIDGET-1").await;

    let body = json!({ "items": [{ "sku": "WIDGET-1", "quantity": 2 }, { "sku": "GADGET-1", "quantity": 1 }] });
    let answer = suite.http.put(&suite.url(Inventory, &format!("/reservations/{order}")), &body).await;

    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["status"], "reserved");
    assert_eq!(answer.body["total_cents"], 2 * 1299 + 4999);
    assert_eq!(stock(&suite, "WIDGET-1").await, (before.0 - 2, before.1 + 2));
    let stored = suite.http.get(&suite.url(Inventory, &format!("/reservations/{order}"))).await;
    assert_eq!(stored.body["status"], "reserved");
    assert_eq!(stored.body["items"], body["items"]);
}

#[tokio::test]
async fn a_replayed_put_returns_the_stored_result_with_200_and_changes_nothing() {
    let suite = Suite::start(&[Inventory]).await;
    let url = suite.url(Inventory, &format!("/reservations/{}", Uuid::new_v4()));
    let first = suite.http.put(&url, &reservation("WIDGET-1", 3)).await;
    let after_first = stock(&suite, "WIDGET-1").await;

    let replay = suite.http.put(&url, &reservation("WIDGET-1", 3)).await;

    assert_eq!(first.status, 201);
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body, first.body, "a replay must return the stored result");
    assert_eq!(stock(&suite, "WIDGET-1").await, after_first);
}

#[tokio::test]
async fn a_put_with_another_body_for_the_same_order_is_refused_with_422() {
    let suite = Suite::start(&[Inventory]).await;
    let url = suite.url(Inventory, &format!("/reservations/{}", Uuid::new_v4()));
    suite.http.put(&url, &reservation("WIDGET-1", 3)).await;
    let after_first = stock(&suite, "WIDGET-1").await;

    let conflicting = suite.http.put(&url, &reservation("WIDGET-1", 4)).await;

    assert_eq!(conflicting.assert_problem(422), "/problems/idempotency-mismatch");
    assert_eq!(stock(&suite, "WIDGET-1").await, after_first);
}

#[tokio::test]
async fn releasing_returns_the_stock_once_however_often_it_is_repeated() {
    let suite = Suite::start(&[Inventory]).await;
    let url = suite.url(Inventory, &format!("/reservations/{}", Uuid::new_v4()));
    let before = stock(&suite, "GIZMO-1").await;
    suite.http.put(&url, &reservation("GIZMO-1", 5)).await;

    let first = suite.http.delete(&url).await;
    let second = suite.http.delete(&url).await;

    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["status"], "released");
    assert_eq!(first.body["tombstone"], false);
    assert_eq!(second.status, 200);
    assert_eq!(second.body["status"], "released");
    assert_eq!(stock(&suite, "GIZMO-1").await, before);
    // A reservation once released cannot be redone.
    suite.http.put(&url, &reservation("GIZMO-1", 5)).await.assert_problem(409);
    assert_eq!(stock(&suite, "GIZMO-1").await, before);
}

#[tokio::test]
async fn releasing_a_reservation_never_made_leaves_a_tombstone_that_refuses_a_late_put() {
    let suite = Suite::start(&[Inventory]).await;
    let url = suite.url(Inventory, &format!("/reservations/{}", Uuid::new_v4()));
    let before = stock(&suite, "WIDGET-1").await;

    let release = suite.http.delete(&url).await;
    let late_put = suite.http.put(&url, &reservation("WIDGET-1", 1)).await;

    assert_eq!(release.status, 200);
    assert_eq!(release.body["status"], "released");
    assert_eq!(release.body["tombstone"], true);
    assert_eq!(late_put.assert_problem(409), "/problems/already-compensated");
    assert_eq!(stock(&suite, "WIDGET-1").await, before, "the late PUT must change nothing");
}

#[tokio::test]
async fn fifty_concurrent_identical_puts_for_one_order_take_the_stock_once() {
    let suite = Suite::start(&[Inventory]).await;
    let url = suite.url(Inventory, &format!("/reservations/{}", Uuid::new_v4()));
    let before = stock(&suite, "WIDGET-1").await;
    let body = reservation("WIDGET-1", 7);

    let answers = join_all((0..50).map(|_| suite.http.put(&url, &body))).await;

    let created = answers.iter().filter(|a| a.status == 201).count();
    let replayed = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!((created, replayed), (1, 49), "statuses: {:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert!(answers.iter().all(|a| a.body == answers[0].body), "every answer carries the one stored result");
    assert_eq!(stock(&suite, "WIDGET-1").await, (before.0 - 7, before.1 + 7));
}

#[tokio::test]
async fn a_hundred_reservations_racing_for_the_last_ten_units_never_oversell() {
    let suite = Suite::start(&[Inventory]).await;
    add_product(&suite, "LAST-10", 100, 10).await;

    let body = reservation("LAST-10", 1);
    let urls: Vec<String> =
        (0..100).map(|_| suite.url(Inventory, &format!("/reservations/{}", Uuid::new_v4()))).collect();
    let answers = join_all(urls.iter().map(|url| suite.http.put(url, &body))).await;

    let won = answers.iter().filter(|a| a.status == 201).count();
    let lost = answers.iter().filter(|a| a.status == 409).count();
    assert_eq!((won, lost), (10, 90), "statuses: {:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert!(answers.iter().filter(|a| a.status == 409).all(|a| a.body["type"] == "/problems/out-of-stock"));
    assert_eq!(stock(&suite, "LAST-10").await, (0, 10));
    let pool = suite.db.pool_as("inventory").await.unwrap();
    let live: i64 = sqlx::query_scalar(
        "select coalesce(sum((i ->> 'quantity')::bigint), 0)::bigint from reservations, jsonb_array_elements(request -> 'items') i \
         where state = 'done' and i ->> 'sku' = 'LAST-10'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(live, 10, "initial stock = available + live reservations");
}

#[tokio::test]
async fn out_of_stock_is_409_and_an_unknown_sku_is_422_and_neither_changes_anything() {
    let suite = Suite::start(&[Inventory]).await;
    let before = (stock(&suite, "RARE-1").await, stock(&suite, "WIDGET-1").await);
    let order = Uuid::new_v4();
    let url = suite.url(Inventory, &format!("/reservations/{order}"));

    // A multi-line order where one line is short: nothing at all is reserved.
    let short = json!({ "items": [{ "sku": "WIDGET-1", "quantity": 1 }, { "sku": "RARE-1", "quantity": 4 }] });
    let out_of_stock = suite.http.put(&url, &short).await;
    let unknown = suite.http.put(&url, &reservation("NO-SUCH-SKU", 1)).await;

    assert_eq!(out_of_stock.assert_problem(409), "/problems/out-of-stock");
    assert_eq!(unknown.assert_problem(422), "/problems/unknown-sku");
    assert_eq!((stock(&suite, "RARE-1").await, stock(&suite, "WIDGET-1").await), before);
    suite.http.get(&url).await.assert_problem(404);
    // The order was not consumed by the refusals: a valid request still succeeds.
    assert_eq!(suite.http.put(&url, &reservation("WIDGET-1", 1)).await.status, 201);
}

#[tokio::test]
async fn the_same_sku_on_two_lines_is_reserved_as_their_sum() {
    let suite = Suite::start(&[Inventory]).await;
    let before = stock(&suite, "WIDGET-1").await;
    let url = suite.url(Inventory, &format!("/reservations/{}", Uuid::new_v4()));
    let body = json!({ "items": [{ "sku": "WIDGET-1", "quantity": 2 }, { "sku": "WIDGET-1", "quantity": 3 }] });

    assert_eq!(suite.http.put(&url, &body).await.status, 201);
    assert_eq!(stock(&suite, "WIDGET-1").await, (before.0 - 5, before.1 + 5));
    suite.http.delete(&url).await;
    assert_eq!(stock(&suite, "WIDGET-1").await, before);
}

#[tokio::test]
async fn products_can_be_listed_and_an_unknown_product_is_a_404_problem() {
    let suite = Suite::start(&[Inventory]).await;
    let list = suite.http.get(&suite.url(Inventory, "/products")).await;
    assert_eq!(list.status, 200);
    assert!(list.body.as_array().unwrap().iter().any(|p| p["sku"] == "WIDGET-1"));
    suite.http.get(&suite.url(Inventory, "/products/NOPE")).await.assert_problem(404);
    suite.http.get(&suite.url(Inventory, "/products/not%20a%20sku")).await.assert_problem(404);
}
