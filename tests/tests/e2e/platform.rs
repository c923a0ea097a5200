//! What every service shares: probes, metrics, OpenAPI, schema ownership, graceful shutdown.

use saga_tests::{Service, Suite, TestDb};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn every_service_answers_its_probes_metrics_and_openapi_document() {
    let suite = Suite::start(&Service::PARTICIPANTS).await;
    for service in Service::PARTICIPANTS {
        assert_eq!(suite.http.get(&suite.url(service, "/healthz")).await.body["status"], "ok");
        assert_eq!(suite.http.get(&suite.url(service, "/readyz")).await.body["status"], "ready");
        let openapi = suite.http.get(&suite.url(service, "/openapi.json")).await;
        assert!(openapi.body["openapi"].as_str().unwrap().starts_with("3.1"), "{service:?}");
        assert!(openapi.body["paths"].as_object().unwrap().len() >= 4, "{service:?}");
        let metrics =
            suite.http.inner().get(suite.url(service, "/metrics")).send().await.unwrap().text().await.unwrap();
        let expected = format!(
            "http_requests_total{{service=\"{}\",method=\"GET\",route=\"/readyz\",status=\"200\"}}",
            service.name()
        );
        assert!(metrics.contains(&expected), "{service:?} metrics lack {expected}:\n{metrics}");
    }
}

#[tokio::test]
async fn business_counters_and_request_ids_are_exported() {
    let suite = Suite::start(&[Service::Payment]).await;
    let url = suite.url(Service::Payment, &format!("/payments/{}", Uuid::new_v4()));
    let answer = suite.http.put(&url, &json!({ "customer_id": "dave", "amount_cents": 5 })).await;
    assert_eq!(answer.status, 402);
    assert!(answer.headers.contains_key("x-request-id"), "every answer carries a request id");
    suite.http.delete(&url).await;

    let metrics =
        suite.http.inner().get(suite.url(Service::Payment, "/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("payment_captures_total{result=\"declined\"} 1"), "{metrics}");
    assert!(metrics.contains("payment_refunds_total{result=\"tombstone\"} 1"), "{metrics}");
    assert!(
        metrics.contains(
            "http_request_duration_seconds_bucket{service=\"payment\",method=\"PUT\",route=\"/payments/{order_id}\""
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_service_role_cannot_read_another_services_schema() {
    let suite = Suite::start(&[Service::Inventory, Service::Payment]).await;
    let inventory = suite.db.pool_as("inventory").await.unwrap();

    let own: i64 = sqlx::query_scalar("select count(*) from inventory.products").fetch_one(&inventory).await.unwrap();
    let foreign = sqlx::query("select * from payment.payments").fetch_all(&inventory).await;
    let foreign_accounts = sqlx::query("select * from payment.accounts").fetch_all(&inventory).await;
    let create_elsewhere = sqlx::query("create table payment.sneaky (id int)").execute(&inventory).await;

    assert!(own > 0);
    for result in [foreign.map(|_| ()), foreign_accounts.map(|_| ()), create_elsewhere.map(|_| ())] {
        let err = result.expect_err("inventory reached into payment's schema");
        let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "expected permission denied, got {err}");
    }
}

#[tokio::test]
async fn sigterm_stops_a_service_cleanly_and_it_restarts_on_its_data() {
    let mut suite = Suite::start(&[Service::Inventory]).await;
    let url = suite.url(Service::Inventory, &format!("/reservations/{}", Uuid::new_v4()));
    let body = json!({ "items": [{ "sku": "GIZMO-1", "quantity": 1 }] });
    let first = suite.http.put(&url, &body).await;

    let status = suite.terminate(Service::Inventory).await;
    assert!(status.success(), "exit status after SIGTERM: {status}\n{}", suite.log(Service::Inventory));
    suite.spawn(Service::Inventory, &[]).await;

    let replay = suite.http.put(&url, &body).await;
    assert_eq!(replay.status, 200, "the restarted service remembers the order");
    assert_eq!(replay.body, first.body);
}

#[tokio::test]
async fn readiness_fails_with_503_while_the_database_is_unreachable_and_liveness_holds() {
    // A cluster of this test's own, so stopping it disturbs no other test.
    let db = TestDb::with_own_cluster().await.unwrap();
    let mut suite = Suite::start_on(db, &[Service::Payment], &[]).await;
    assert_eq!(suite.http.get(&suite.url(Service::Payment, "/readyz")).await.status, 200);

    assert!(suite.db.stop_own_cluster());

    let ready = suite.http.get(&suite.url(Service::Payment, "/readyz")).await;
    assert_eq!(ready.assert_problem(503), "/problems/not-ready");
    assert_eq!(suite.http.get(&suite.url(Service::Payment, "/healthz")).await.status, 200);
    let capture = suite
        .http
        .put(
            &suite.url(Service::Payment, &format!("/payments/{}", Uuid::new_v4())),
            &json!({ "customer_id": "alice", "amount_cents": 5 }),
        )
        .await;
    assert_eq!(capture.assert_problem(503), "/problems/unavailable", "a lost database is transient, never a 500");
}

/// The layout check of docs/design.md: no crate holds more than 30 % of the workspace's
/// non-test lines (`.rs` files outside each crate's `tests/`), so no crate grows back into
/// "everything else".
#[test]
fn no_crate_holds_more_than_30_percent_of_the_non_test_lines() {
    fn lines_under(dir: &std::path::Path, skip_tests: bool) -> usize {
        let mut total = 0;
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if !(skip_tests && name == "tests") {
                    total += lines_under(&path, false);
                }
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                total += std::fs::read_to_string(&path).unwrap().lines().count();
            }
        }
        total
    }
    let root = saga_tests::repo_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members: Vec<&str> = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list.split(',').map(|m| m.trim().trim_matches('"')).filter(|m| !m.is_empty()).collect())
        .unwrap();
    assert!(members.len() >= 8, "{members:?}");
    // A crate's own `tests/` directory holds its integration tests; the tests crate's `src/`
    // (the harness) counts.
    let counts: Vec<(&str, usize)> = members.iter().map(|m| (*m, lines_under(&root.join(m), true))).collect();
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    for (member, lines) in &counts {
        assert!(lines * 100 <= total * 30, "{member} holds {lines} of {total} non-test lines (over 30 %): {counts:?}");
    }
}
