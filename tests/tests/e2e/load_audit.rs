//! The load tool and the audit against real suites: a closed-loop and an open-loop run report
//! every order by the outcome its intent asks for, and an order refused as overloaded is placed
//! again when `Retry-After` says; the audit passes a clean run, lists sagas in flight apart, and
//! names the order of a broken one with a non-zero exit.

use std::time::Duration;

use saga_tests::{Service, Suite, UpSuite};
use sagactl::load::{
    self, Intent, Keys, Kind, LoadConfig, LoadReport, Mix, Pacing, Stop, Targets, progress::progress_bar,
};
use serde_json::Value;

fn targets(suite: &Suite) -> Targets {
    Targets {
        orchestrator: suite.url(Service::Orchestrator, ""),
        participants: Service::PARTICIPANTS.map(|service| suite.url(service, "")),
    }
}

fn config(pacing: Pacing, stop: Stop, fail_ratio: f64, keys: Keys) -> LoadConfig {
    LoadConfig {
        kind: Kind::Saga,
        pacing,
        stop,
        warmup: Duration::ZERO,
        mix: Mix { fail_ratio, keys, skus: 20, customers: 20, seed: 42 },
        saga_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(10),
        post_retries: 0,
    }
}

async fn run_load(suite: &Suite, config: &LoadConfig) -> LoadReport {
    load::run(&targets(suite), config, &progress_bar(0, false, false)).await.expect("load run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_run_reports_every_order_by_the_outcome_its_intent_asks_for() {
    let suite = Suite::start(&Service::SUITE).await;
    let initial = suite.snapshot().await;
    let run = config(Pacing::Closed { concurrency: 4 }, Stop::Orders(40), 0.25, Keys::Uniform);

    let report = run_load(&suite, &run).await;

    assert!(report.ok, "{report:#?}");
    assert_eq!((report.placed, report.accepted, report.rejected, report.post_errors), (40, 40, 0, 0));
    let outcomes = report.outcomes;
    assert_eq!((outcomes.completed, outcomes.compensated, outcomes.failed, outcomes.not_finished), (30, 10, 0, 0));
    assert_eq!(report.by_intent[&Intent::Happy].outcomes.completed, 30);
    for failure in Intent::FAILURES {
        let counts = report.by_intent[&failure];
        assert!(counts.placed >= 2 && counts.outcomes.compensated == counts.placed, "{failure:?}: {counts:?}");
    }
    assert_eq!(report.unexpected_outcomes, 0);
    assert_eq!(report.latency_ms.count, 40);
    assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.max >= report.latency_ms.p99);
    assert!(report.sagas_per_sec > 0.0);
    let audit = suite.audit(&initial).await;
    assert!(audit.ok(), "a clean run breaks no invariant: {:#?}", audit.violations);
    assert_eq!(audit.statuses.get("completed"), Some(&30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_run_places_orders_on_schedule_and_waits_for_every_saga() {
    let suite = Suite::start(&Service::SUITE).await;
    let run = config(
        Pacing::Open { rate: 40.0, max_outstanding: 200 },
        Stop::Duration(Duration::from_secs(2)),
        0.5,
        Keys::Hot,
    );

    let report = run_load(&suite, &run).await;

    assert!(report.ok, "{report:#?}");
    // 40/s for 2 s is 80 orders due; a slow first connection may push the last ones past the end.
    assert!((70..=80).contains(&report.placed), "placed {}", report.placed);
    assert_eq!(report.accepted, report.placed);
    assert_eq!(report.outcomes.compensated, report.placed / 2, "{:?}", report.outcomes);
    assert_eq!(report.outcomes.completed, report.placed - report.placed / 2, "{:?}", report.outcomes);
    assert_eq!(report.latency_ms.count, report.placed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_refused_as_overloaded_is_placed_again_no_sooner_than_retry_after_asks() {
    let mut suite = Suite::start(&Service::PARTICIPANTS).await;
    suite.spawn(Service::Orchestrator, &[("MAX_IN_FLIGHT_SAGAS", "1")]).await;
    // One saga at a time, held 400 ms by shipping: of two orders placed together one is refused
    // (503 overloaded, Retry-After: 1). Its one retry after the usual 100 ms backoff would find
    // the first saga still running and be refused again; a second later it is admitted.
    suite.set_faults(Service::Shipping, &serde_json::json!({ "latency_ms": 400 })).await;
    let mut run = config(Pacing::Closed { concurrency: 2 }, Stop::Orders(2), 0.0, Keys::Uniform);
    run.post_retries = 1;

    let report = run_load(&suite, &run).await;

    assert!(report.ok, "{report:#?}");
    assert_eq!((report.placed, report.accepted, report.post_errors), (2, 2, 0), "{report:#?}");
    assert_eq!(report.outcomes.completed, 2, "{:?}", report.outcomes);
    let metrics = suite.http.inner().get(suite.url(Service::Orchestrator, "/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "saga_orders_refused_total{reason=\"overloaded\"} 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_in_flight_are_listed_apart_and_are_violations_only_when_terminal_is_required() {
    let suite = Suite::start(&Service::SUITE).await;
    // Shipping never answers: the saga cannot end (neither forward nor by compensation).
    suite.set_faults(Service::Shipping, &serde_json::json!({ "hang": true })).await;
    let order_id = suite.accepted_order(&saga_tests::happy_order()).await.to_string();
    let pool = suite.db.superuser_pool().await.unwrap();

    let still_open = sagactl::audit::wait_terminal(&pool, Duration::from_millis(300), |_, _| {}).await.unwrap();
    let lenient = sagactl::audit::audit(&pool, None, false).await.unwrap();
    let strict = sagactl::audit::audit(&pool, None, true).await.unwrap();

    assert_eq!(still_open, 1);
    assert!(lenient.ok(), "{:#?}", lenient.violations);
    assert_eq!(lenient.not_terminal.iter().map(|s| &s.order_id).collect::<Vec<_>>(), [&order_id]);
    assert_eq!(strict.violations.len(), 1, "{:#?}", strict.violations);
    assert_eq!((strict.violations[0].check, &strict.violations[0].subject), ("saga not terminal", &order_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_names_a_compensated_order_whose_reservation_is_live_again_and_exits_non_zero() {
    // Arrange: a suite as `sagactl up` runs it, a snapshot, a load with failures, a clean audit.
    let suite = UpSuite::start(&[], &[]).await;
    let snapshot = suite.state_dir.join("before.json");
    let snapshot = snapshot.to_str().unwrap();
    suite.sagactl_ok(&["audit", "--snapshot", snapshot]).await;
    let load: Value = serde_json::from_str(
        &suite.sagactl_ok(&["load", "--orders", "20", "--concurrency", "4", "--fail-ratio", "0.5", "--json"]).await,
    )
    .unwrap();
    assert_eq!(load["outcomes"]["completed"], 10, "{load}");
    assert_eq!(load["outcomes"]["compensated"], 10, "{load}");
    assert!(suite.sagactl_ok(&["audit", "--against", snapshot]).await.contains("OK: every invariant holds"));

    // Act: a released reservation of a compensated saga made live again, behind everyone's back.
    let state = suite.state();
    let admin_url = state["postgres"]["admin_url"].as_str().unwrap();
    let pool = saga_suite::provision::superuser_pool(admin_url, state["database"].as_str().unwrap(), 2).await.unwrap();
    let order_id: String = sqlx::query_scalar(
        r#"update inventory.reservations set state = 'done'
           where order_id = (select r.order_id from inventory.reservations r
                             join orchestrator.sagas s on s.order_id = r.order_id
                             where s.status = 'compensated' and r.state = 'compensated' and not r.tombstone
                             limit 1)
           returning order_id::text"#,
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let json = suite.sagactl(&["audit", "--against", snapshot, "--json"]).await;
    let human = suite.sagactl(&["audit", "--against", snapshot]).await;

    // Assert
    assert_eq!(json.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let violations = report["violations"].as_array().unwrap();
    assert!(
        violations.iter().any(|v| v["check"] == "compensated saga with a live effect" && v["subject"] == order_id),
        "{report:#}"
    );
    assert!(violations.iter().any(|v| v["check"] == "reserved stock differs from the live reservations"));
    assert!(violations.iter().any(|v| v["check"] == "stock not conserved"));
    assert_eq!(human.status.code(), Some(1));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains(&format!("compensated saga with a live effect: {order_id}: reservation reserved")), "{text}");
}
