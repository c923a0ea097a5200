//! The participants' step queue (`shared/src/step_batch`): bounded, so a full queue answers 503
//! `overloaded` with `Retry-After` and runs nothing; a request whose caller hung up while it
//! waited is not run; and a writer that panics is reported by `/readyz` and restarted.
//!
//! To hold requests in the queue, the test locks a product row: inventory's writer blocks on it
//! with the first reservation, and what comes next waits behind it.

use saga_suite::poll::Poll;
use std::time::{Duration, Instant};

use saga_tests::{Answer, Http, Service, Suite};
use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{env_for, metric};

fn reservation(sku: &str) -> Value {
    json!({ "items": [{ "sku": sku, "quantity": 1 }] })
}

fn reservation_url(suite: &Suite, order: Uuid) -> String {
    suite.url(Service::Inventory, &format!("/reservations/{order}"))
}

/// Locks `sku`'s product row until the returned transaction ends, and starts a reservation of
/// it that inventory's writer runs and blocks on: the writer is busy, the queue fills.
async fn block_the_writer(
    suite: &Suite,
    db: &PgPool,
    sku: &str,
) -> (Transaction<'static, Postgres>, JoinHandle<Answer>) {
    let mut lock = db.begin().await.unwrap();
    sqlx::query("select 1 from inventory.products where sku = $1 for update")
        .bind(sku)
        .execute(&mut *lock)
        .await
        .unwrap();
    let first = put_in_background(suite, Uuid::new_v4(), sku);
    let blocked = Poll::new(Duration::from_secs(20), Duration::from_millis(20))
        .holds(async || {
            let waiting: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
            )
            .fetch_one(db)
            .await
            .unwrap();
            waiting > 0
        })
        .await;
    assert!(blocked, "the writer never blocked on the locked row");
    (lock, first)
}

/// `PUT /reservations/{order}` of one `sku`, on a task of its own.
fn put_in_background(suite: &Suite, order: Uuid, sku: &str) -> JoinHandle<Answer> {
    let (http, url, body) = (suite.http.clone(), reservation_url(suite, order), reservation(sku));
    tokio::spawn(async move { http.put(&url, &body).await })
}

#[tokio::test]
async fn a_full_step_queue_answers_503_with_retry_after_and_runs_nothing() {
    let suite =
        Suite::start_with_env(&[Service::Inventory], &env_for(&[Service::Inventory], &[("STEP_QUEUE_LIMIT", "2")]))
            .await;
    let db = suite.db.superuser_pool().await.unwrap();
    let (lock, first) = block_the_writer(&suite, &db, "WIDGET-1").await;

    // Requests one after another until one is refused: the queue holds two.
    let mut queued = Vec::new();
    let refused = loop {
        let order = Uuid::new_v4();
        let request = put_in_background(&suite, order, "GADGET-1");
        tokio::time::sleep(Duration::from_millis(300)).await;
        if request.is_finished() {
            break (order, request.await.unwrap());
        }
        queued.push((order, request));
        assert!(queued.len() <= 2, "a third request was queued behind a limit of 2");
    };

    assert_eq!(queued.len(), 2, "refused with {} queued", queued.len());
    let (refused_order, answer) = refused;
    assert_eq!(answer.assert_problem(503), "/problems/overloaded", "{}", answer.body);
    assert_eq!(answer.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    lock.rollback().await.unwrap();
    assert_eq!(first.await.unwrap().status, 201);
    for (_, request) in queued {
        assert_eq!(request.await.unwrap().status, 201, "a queued request was lost");
    }
    assert_eq!(suite.http.get(&reservation_url(&suite, refused_order)).await.status, 404, "the refused one ran");
    let dropped =
        metric(&suite, Service::Inventory, r#"step_requests_dropped_total{step="reservations",reason="queue_full"}"#)
            .await;
    assert_eq!(dropped, 1.0);
    // Retried, as its Retry-After says, it goes through.
    let again = suite.http.put(&reservation_url(&suite, refused_order), &reservation("GADGET-1")).await;
    assert_eq!(again.status, 201, "{}", again.body);
}

#[tokio::test]
async fn a_request_whose_caller_hung_up_while_it_was_queued_is_not_run() {
    let suite = Suite::start(&[Service::Inventory]).await;
    let db = suite.db.superuser_pool().await.unwrap();
    let (lock, first) = block_the_writer(&suite, &db, "WIDGET-1").await;

    // A caller that gives up after 500 ms, while its request waits behind the blocked batch.
    let gone = Uuid::new_v4();
    let impatient = Http::new(Duration::from_millis(500));
    let gave_up =
        impatient.send(reqwest::Method::PUT, &reservation_url(&suite, gone), Some(&reservation("GADGET-1"))).await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()), "the caller was answered while the writer was blocked");
    drop(impatient);
    // Its connection is closed; the server drops the request's handler when it sees that.
    tokio::time::sleep(Duration::from_millis(500)).await;
    lock.rollback().await.unwrap();

    assert_eq!(first.await.unwrap().status, 201);
    let dropped =
        metric(&suite, Service::Inventory, r#"step_requests_dropped_total{step="reservations",reason="caller_gone"}"#)
            .await;
    assert_eq!(dropped, 1.0, "the abandoned request was not dropped");
    assert_eq!(suite.http.get(&reservation_url(&suite, gone)).await.status, 404, "the abandoned request ran");
    let gadget = suite.http.get(&suite.url(Service::Inventory, "/products/GADGET-1")).await;
    assert_eq!(gadget.body["reserved"], 0, "{}", gadget.body);
}

#[tokio::test]
async fn a_batch_writer_that_panics_makes_the_service_not_ready_until_it_is_restarted() {
    let env = env_for(&[Service::Inventory], &[("STEP_WRITER_RESTART_MS", "2000")]);
    let suite = Suite::start_with_env(&[Service::Inventory], &env).await;
    let readyz = suite.url(Service::Inventory, "/readyz");
    suite.set_faults(Service::Inventory, &json!({ "panic_step_writer": true })).await;

    // The request the writer held when it panicked is answered 503 (transient) and not done.
    let held = Uuid::new_v4();
    let crashed = suite.http.put(&reservation_url(&suite, held), &reservation("WIDGET-1")).await;
    let crashed_at = Instant::now();
    assert_eq!(crashed.assert_problem(503), "/problems/unavailable", "{}", crashed.body);
    let not_ready = suite.http.get(&readyz).await;
    assert_eq!(not_ready.assert_problem(503), "/problems/not-ready");
    assert!(
        not_ready.body["detail"].as_str().unwrap_or_default().contains("reservations writer"),
        "{}",
        not_ready.body
    );
    // A request made while the writer is down waits in the queue for the next one.
    let waiting = put_in_background(&suite, Uuid::new_v4(), "GADGET-1");

    let left = (crashed_at + Duration::from_secs(20)).saturating_duration_since(Instant::now());
    let ready =
        Poll::new(left, Duration::from_millis(100)).holds(async || suite.http.get(&readyz).await.status == 200).await;
    assert!(ready, "the writer was never restarted:\n{}", suite.log(Service::Inventory));
    let down_for = crashed_at.elapsed();

    assert!(down_for >= Duration::from_millis(1500), "ready again after {down_for:?}, before the restart delay");
    assert_eq!(waiting.await.unwrap().status, 201, "the request queued during the restart was lost");
    let retried = suite.http.put(&reservation_url(&suite, held), &reservation("WIDGET-1")).await;
    assert_eq!(retried.status, 201, "the held request had happened after all: {}", retried.body);
    assert_eq!(metric(&suite, Service::Inventory, r#"step_writer_restarts_total{step="reservations"}"#).await, 1.0);
    let faults =
        suite.http.inner().get(suite.url(Service::Inventory, "/admin/faults")).bearer_auth(saga_tests::ADMIN_TOKEN);
    let faults: Value = faults.send().await.unwrap().json().await.unwrap();
    assert_eq!(faults["panic_step_writer"], false, "the fault fires once: {faults}");
}
