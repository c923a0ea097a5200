//! Crashes: the orchestrator SIGKILLed at random points under load, and a replica taking over
//! from a killed one (no more at a time than its admission limit allows). After each, every saga ends, no effect happens twice, and the invariants of
//! DESIGN.md §5 hold.

use saga_shared::api::SagaStatus;
use saga_suite::poll::Poll;
use std::time::Duration;

use futures::future::join_all;
use rand::RngExt;
use saga_tests::{Http, Service, Suite, order_body};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// A mix of orders: mostly happy, some declined (dave), some undeliverable (AQ).
fn mixed_order(n: usize) -> Value {
    match n % 10 {
        7 => order_body("dave", &[("GADGET-1", 1)], "FR"),
        8 => order_body("bob", &[("WIDGET-1", 1), ("GIZMO-1", 1)], "AQ"),
        _ => order_body("loadtest", &[("WIDGET-1", 1)], "FR"),
    }
}

/// Places order `n` with a key of its own, retrying (same key) while the orchestrator is down:
/// every order ends up accepted exactly once.
async fn place_with_retries(http: &Http, url: &str, n: usize) -> Uuid {
    let key = format!("crash-test-{n}");
    let body = mixed_order(n);
    let (http, url) = (http.clone(), url.to_owned());
    let accepted = Poll::new(Duration::from_secs(60), Duration::from_millis(100))
        .until(async move || {
            let response = http.inner().post(&url).header("idempotency-key", &key).json(&body).send().await.ok()?;
            let answer = Http::answer(response).await.ok().filter(|answer| answer.status == 202)?;
            answer.body["order_id"].as_str()?.parse().ok()
        })
        .await;
    accepted.unwrap_or_else(|| panic!("order {n} never accepted"))
}

async fn wait_all_terminal(pool: &PgPool, timeout: Duration) {
    let mut open: i64 = 0;
    let closed = Poll::new(timeout, Duration::from_millis(200))
        .holds(async || {
            let sql = format!(
                "select count(*) from sagas where status not in ({})",
                SagaStatus::sql_list(&SagaStatus::TERMINAL)
            );
            open = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await.unwrap();
            open == 0
        })
        .await;
    assert!(closed, "{open} sagas still open after {timeout:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_killed_at_random_points_under_load_loses_and_repeats_nothing() {
    // The default retry budget: a restart is not a reason to roll back (the tests' own 2 s
    // budget would run out while a killed orchestrator's leases expire).
    let budget = [("STEP_RETRY_BUDGET_MS", "60000")];
    let mut suite = Suite::start_with_env(&Service::SUITE, &[(Service::Orchestrator, budget[0].0, budget[0].1)]).await;
    let initial = suite.snapshot().await;
    // A slowed shipping step keeps about seven sagas in flight at any instant (50 orders/s,
    // 150 ms each), so every kill interrupts some. Without it a saga took a few milliseconds, and
    // once all four kills fell between sagas (CI, 2026-12-05), leaving recovery nothing to do.
    suite.set_faults(Service::Shipping, &serde_json::json!({ "latency_ms": 150 })).await;
    let url = suite.url(Service::Orchestrator, "/orders");
    let http = Http::new(Duration::from_secs(5));

    let placing = {
        let http = http.clone();
        let url = url.clone();
        // Spread over 4 s (one every 20 ms), so sagas are in flight whenever the kills come (up
        // to 3.6 s in): all at once, they could all finish before the first kill.
        tokio::spawn(async move {
            join_all((0..200).map(|n| {
                let (http, url) = (&http, &url);
                async move {
                    tokio::time::sleep(Duration::from_millis(20 * n as u64)).await;
                    place_with_retries(http, url, n).await
                }
            }))
            .await
        })
    };
    for _ in 0..4 {
        let pause = rand::rng().random_range(100..600);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        suite.kill(Service::Orchestrator).await;
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(0..300))).await;
        suite.spawn(Service::Orchestrator, &budget).await;
    }
    let accepted = placing.await.unwrap();

    let pool = suite.db.pool_as("orchestrator").await.unwrap();
    wait_all_terminal(&pool, Duration::from_secs(90)).await;
    let report = suite.audit(&initial).await;
    assert!(report.violations.is_empty(), "invariants broken: {:#?}", report.violations);
    assert_eq!(accepted.len(), 200);
    let distinct: std::collections::HashSet<_> = accepted.iter().collect();
    assert_eq!(distinct.len(), 200, "one order per key");
    let sagas: i64 = sqlx::query_scalar("select count(*) from sagas").fetch_one(&pool).await.unwrap();
    assert_eq!(sagas, 200, "no lost and no extra saga: {:?}", report.statuses);
    assert_eq!(report.statuses.get("failed"), None, "nothing needs an operator: {:?}", report.statuses);
    assert_eq!(report.statuses.get("completed"), Some(&160), "{:?}", report.statuses);
    let resumed: i64 = sqlx::query_scalar("select count(distinct order_id) from saga_events where outcome = 'claimed'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(resumed > 0, "the kills must have interrupted some sagas, which recovery resumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_finishes_every_saga_of_a_killed_one_exactly_once() {
    let mut suite = Suite::start(&Service::SUITE).await;
    suite.spawn(Service::OrchestratorB, &[]).await;
    let initial = suite.snapshot().await;
    // Slow shipping keeps the sagas in flight when A dies.
    suite.set_faults(Service::Shipping, &serde_json::json!({ "latency_ms": 300 })).await;
    let url = suite.url(Service::Orchestrator, "/orders");
    let http = Http::new(Duration::from_secs(5));

    let accepted = join_all((0..100).map(|n| place_with_retries(&http, &url, n))).await;
    suite.kill(Service::Orchestrator).await;

    let pool = suite.db.pool_as("orchestrator").await.unwrap();
    wait_all_terminal(&pool, Duration::from_secs(60)).await;
    let report = suite.audit(&initial).await;
    assert!(report.violations.is_empty(), "invariants broken: {:#?}", report.violations);
    assert_eq!(accepted.len(), 100);
    let taken_over: i64 = sqlx::query_scalar(
        "select count(distinct order_id) from saga_events where kind = 'saga' and outcome = 'claimed' and actor = 'orchestrator-b'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(taken_over > 0, "B resumed A's sagas");
    let finished_by_b: i64 = sqlx::query_scalar(
        "select count(*) from saga_events where kind = 'saga' and outcome in ('completed', 'compensated') and actor = 'orchestrator-b'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(finished_by_b > 0);
    // Exactly once: one terminal event per saga, whoever wrote it.
    let terminal_events: i64 = sqlx::query_scalar(
        "select count(*) from saga_events where kind = 'saga' and outcome in ('completed', 'compensated', 'failed')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(terminal_events, 100);
}

/// Non-terminal sagas whose lease `owner` holds (or held).
async fn open_sagas_of(pool: &PgPool, owner: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from sagas where owner = $1 and status not in ('completed', 'compensated', 'failed')",
    )
    .bind(owner)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_claims_no_more_sagas_than_the_admission_limit_leaves_room_for() {
    // Patient steps, so the sagas stay in flight (retrying shipping) instead of compensating.
    let budget = ("STEP_RETRY_BUDGET_MS", "60000");
    let mut suite = Suite::start(&Service::PARTICIPANTS).await;
    suite.spawn(Service::Orchestrator, &[budget]).await;
    suite.spawn(Service::OrchestratorB, &[budget, ("MAX_IN_FLIGHT_SAGAS", "2")]).await;
    let initial = suite.snapshot().await;
    suite.set_faults(Service::Shipping, &serde_json::json!({ "hang": true })).await;
    let url = suite.url(Service::Orchestrator, "/orders");
    let http = Http::new(Duration::from_secs(5));
    join_all((0..6).map(|n| place_with_retries(&http, &url, n))).await;
    let pool = suite.db.pool_as("orchestrator").await.unwrap();

    // A dies with six sagas waiting on shipping; once its leases expire, B (limit 2) claims two.
    suite.kill(Service::Orchestrator).await;
    let claimed = Poll::new(Duration::from_secs(20), Duration::from_millis(100))
        .holds(async || open_sagas_of(&pool, "orchestrator-b").await >= 2)
        .await;
    assert!(claimed, "B never claimed A's sagas");
    // Several recovery rounds later (every 200 ms), still only two: the other four wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(open_sagas_of(&pool, "orchestrator-b").await, 2, "B claims only up to its limit");
    assert_eq!(open_sagas_of(&pool, "orchestrator").await, 4, "the rest stay unclaimed");

    // Shipping answers again: B finishes its two, then claims and finishes the rest.
    suite.set_faults(Service::Shipping, &serde_json::json!({})).await;
    wait_all_terminal(&pool, Duration::from_secs(60)).await;
    let report = suite.audit(&initial).await;
    assert!(report.violations.is_empty(), "invariants broken: {:#?}", report.violations);
    assert_eq!(report.statuses.get("completed"), Some(&6), "{:?}", report.statuses);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_with_sigterm_releases_its_sagas_for_another_at_once() {
    let mut suite = Suite::start(&Service::PARTICIPANTS).await;
    // A long lease: only an explicit release (not an expiry) lets B resume A's sagas quickly.
    suite.spawn(Service::Orchestrator, &[("LEASE_MS", "60000")]).await;
    suite.spawn(Service::OrchestratorB, &[("LEASE_MS", "60000")]).await;
    let initial = suite.snapshot().await;
    suite.set_faults(Service::Shipping, &serde_json::json!({ "latency_ms": 400 })).await;
    let url = suite.url(Service::Orchestrator, "/orders");
    let http = Http::new(Duration::from_secs(5));
    join_all((0..30).map(|n| place_with_retries(&http, &url, n))).await;

    let status = suite.terminate(Service::Orchestrator).await;
    assert!(status.success(), "graceful exit: {status}");

    let pool = suite.db.pool_as("orchestrator").await.unwrap();
    wait_all_terminal(&pool, Duration::from_secs(30)).await;
    let report = suite.audit(&initial).await;
    assert!(report.violations.is_empty(), "invariants broken: {:#?}", report.violations);
    let resumed: i64 = sqlx::query_scalar(
        "select count(*) from saga_events where outcome = 'claimed' and detail = 'unowned saga resumed' and actor = 'orchestrator-b'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(resumed > 0, "B resumed released sagas, long before A's 60 s leases could expire");
}

/// The case issue 7 found in a chaos run: shipping commits, the orchestrator dies before it
/// hears back (so its log never records the call), and shipping then refuses connections while
/// the resumed saga retries. A refused connection proves nothing about the call that landed
/// before the crash: the shipment must be cancelled when the saga compensates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_landed_before_the_orchestrator_died_is_compensated_though_its_participant_then_refuses_connections()
 {
    let mut suite = Suite::start(&Service::SUITE).await;
    let initial = suite.snapshot().await;
    // Shipping commits every shipment but never answers: the call is in flight until the
    // orchestrator's step timeout, long enough to kill the orchestrator in between.
    suite.set_faults(Service::Shipping, &serde_json::json!({ "drop_response_rate": 1.0 })).await;
    let order_id = suite.accepted_order(&saga_tests::happy_order()).await;
    let shipment_url = suite.url(Service::Shipping, &format!("/shipments/{order_id}"));
    let created = Poll::new(Duration::from_secs(30), Duration::from_millis(10))
        .holds(async || suite.http.get(&shipment_url).await.status == 200)
        .await;
    assert!(created, "the shipment was never created");
    suite.kill(Service::Orchestrator).await;
    suite.kill(Service::Shipping).await;

    suite.spawn(Service::Orchestrator, &[]).await;
    // The new instance claims the saga once the lease expires and retries until its budget
    // runs out against a shipping service that refuses connections.
    let mut order = Value::Null;
    let ran_out = Poll::new(Duration::from_secs(30), Duration::from_millis(50))
        .holds(async || {
            order = suite.order(order_id).await;
            order["status"] == "compensating"
        })
        .await;
    assert!(ran_out, "the retry budget never ran out: {order}");
    let reason = order["failure_reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("create_shipment failed after"), "the step's budget ran out: {order}");
    suite.spawn(Service::Shipping, &[]).await;
    let order = suite.wait_terminal(order_id, Duration::from_secs(30)).await;

    assert_eq!(order["status"], "compensated", "{order}");
    let shipment = suite.http.get(&shipment_url).await;
    assert_eq!(shipment.body["status"], "cancelled", "the shipment that landed is undone: {}", shipment.body);
    let report = suite.audit(&initial).await;
    assert!(report.violations.is_empty(), "invariants broken: {:#?}", report.violations);
}
