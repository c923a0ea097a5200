//! Fault injection: each mode has the effect it promises, and only an admin can switch it.

use std::time::Duration;

use reqwest::Method;
use saga_tests::{Http, Service::Inventory, Suite};
use serde_json::{Value, json};
use uuid::Uuid;

fn reservation() -> Value {
    json!({ "items": [{ "sku": "WIDGET-1", "quantity": 1 }] })
}

fn order_url(suite: &Suite) -> String {
    suite.url(Inventory, &format!("/reservations/{}", Uuid::new_v4()))
}

#[tokio::test]
async fn the_fault_api_refuses_callers_without_the_admin_token() {
    let suite = Suite::start(&[Inventory]).await;
    let url = suite.url(Inventory, "/admin/faults");
    let client = suite.http.inner();

    let anonymous = client.put(&url).json(&json!({ "error_rate": 1.0 })).send().await.unwrap();
    let wrong = client.put(&url).bearer_auth("not-the-token").json(&json!({ "error_rate": 1.0 })).send().await.unwrap();
    let read = client.get(&url).send().await.unwrap();

    assert_eq!(Http::answer(anonymous).await.unwrap().assert_problem(401), "/problems/unauthorized");
    assert_eq!(Http::answer(wrong).await.unwrap().assert_problem(403), "/problems/forbidden");
    assert_eq!(read.status(), 401);
    // Nothing was switched on: a reservation still works.
    assert_eq!(suite.http.put(&order_url(&suite), &reservation()).await.status, 201);
}

#[tokio::test]
async fn without_an_admin_token_configured_the_fault_api_does_not_exist() {
    let suite = Suite::start_with_env(&[Inventory], &[(Inventory, "ADMIN_TOKEN", "")]).await;
    let answer = suite.http.send(Method::GET, &suite.url(Inventory, "/admin/faults"), None).await.unwrap();
    answer.assert_problem(404);
}

#[tokio::test]
async fn out_of_range_fault_settings_are_refused_with_422() {
    let suite = Suite::start(&[Inventory]).await;
    let answer = suite
        .http
        .inner()
        .put(suite.url(Inventory, "/admin/faults"))
        .bearer_auth(saga_tests::ADMIN_TOKEN)
        .json(&json!({ "error_rate": 2.0 }))
        .send()
        .await
        .unwrap();
    Http::answer(answer).await.unwrap().assert_problem(422);
}

#[tokio::test]
async fn the_error_rate_fault_answers_503_without_doing_the_step() {
    let suite = Suite::start(&[Inventory]).await;
    suite.set_faults(Inventory, &json!({ "error_rate": 1.0 })).await;
    let url = order_url(&suite);

    let answer = suite.http.put(&url, &reservation()).await;

    assert_eq!(answer.assert_problem(503), "/problems/injected-fault");
    suite.http.get(&url).await.assert_problem(404);
    suite.set_faults(Inventory, &json!({})).await;
    assert_eq!(suite.http.put(&url, &reservation()).await.status, 201, "faults off again");
}

#[tokio::test]
async fn the_latency_fault_delays_writes_past_a_callers_timeout_but_not_reads() {
    let suite = Suite::start(&[Inventory]).await;
    suite.set_faults(Inventory, &json!({ "latency_ms": 2000 })).await;
    let impatient = Http::new(Duration::from_millis(500));
    let url = order_url(&suite);

    let write = impatient.send(Method::PUT, &url, Some(&reservation())).await;
    let read = impatient.send(Method::GET, &suite.url(Inventory, "/products/WIDGET-1"), None).await;
    let patient_write = suite.http.put(&url, &reservation()).await;

    assert!(write.as_ref().is_err_and(reqwest::Error::is_timeout), "write should time out: {write:?}");
    assert_eq!(read.unwrap().status, 200, "reads are not delayed with the default scope");
    // A caller that gave up cancelled its request (nothing happened); a patient one gets through.
    assert_eq!(patient_write.status, 201, "{}", patient_write.body);
}

#[tokio::test]
async fn the_hang_fault_never_answers_writes_and_with_scope_all_not_reads_either() {
    let suite = Suite::start(&[Inventory]).await;
    let impatient = Http::new(Duration::from_millis(500));
    let url = order_url(&suite);

    suite.set_faults(Inventory, &json!({ "hang": true })).await;
    let write = impatient.send(Method::PUT, &url, Some(&reservation())).await;
    let read = impatient.send(Method::GET, &url, None).await;
    suite.set_faults(Inventory, &json!({ "hang": true, "scope": "all" })).await;
    let hung_read = impatient.send(Method::GET, &url, None).await;

    assert!(write.is_err_and(|e| e.is_timeout()));
    assert_eq!(read.unwrap().status, 404, "the hung write did nothing");
    assert!(hung_read.is_err_and(|e| e.is_timeout()));
}

#[tokio::test]
async fn the_drop_response_fault_commits_the_step_but_the_caller_sees_a_timeout() {
    let suite = Suite::start(&[Inventory]).await;
    suite.set_faults(Inventory, &json!({ "drop_response_rate": 1.0 })).await;
    let before = suite.http.get(&suite.url(Inventory, "/products/WIDGET-1")).await.body["available"].as_i64().unwrap();
    let url = order_url(&suite);

    let write = Http::new(Duration::from_millis(1000)).send(Method::PUT, &url, Some(&reservation())).await;

    assert!(write.is_err_and(|e| e.is_timeout()), "the caller must not learn the outcome");
    let stored = suite.http.get(&url).await;
    assert_eq!(stored.status, 200, "the effect happened");
    assert_eq!(stored.body["status"], "reserved");
    let after = suite.http.get(&suite.url(Inventory, "/products/WIDGET-1")).await.body["available"].as_i64().unwrap();
    assert_eq!(after, before - 1);
}

#[tokio::test]
async fn faults_can_be_switched_on_at_start_up_by_environment_variables() {
    let suite = Suite::start_with_env(&[Inventory], &[(Inventory, "FAULT_ERROR_RATE", "1")]).await;

    suite.http.put(&order_url(&suite), &reservation()).await.assert_problem(503);
    let current = suite
        .http
        .inner()
        .get(suite.url(Inventory, "/admin/faults"))
        .bearer_auth(saga_tests::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(Http::answer(current).await.unwrap().body["error_rate"], 1.0);
}

/// The metrics middleware sits outside the request timeout: a request the server times out is
/// counted with its 503, and one whose caller hung up first is counted as 499.
#[tokio::test]
async fn requests_that_time_out_or_are_abandoned_are_counted() {
    let suite = Suite::start_with_env(&[Inventory], &[(Inventory, "REQUEST_TIMEOUT_MS", "300")]).await;
    suite.set_faults(Inventory, &json!({ "hang": true })).await;
    let impatient = Http::new(Duration::from_millis(100));

    let timed_out = suite.http.put(&order_url(&suite), &reservation()).await;
    let abandoned = impatient.send(Method::PUT, &order_url(&suite), Some(&reservation())).await;

    assert_eq!(timed_out.assert_problem(503), "/problems/timeout");
    assert!(abandoned.is_err_and(|e| e.is_timeout()));
    let route = "route=\"/reservations/{order_id}\"";
    let counted = |metrics: &str, status: &str| {
        metrics.lines().any(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("method=\"PUT\"")
                && l.contains(route)
                && l.contains(&format!("status=\"{status}\""))
                && l.ends_with(" 1")
        })
    };
    // The abandoned request is recorded once the server notices the closed connection.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = suite.http.inner().get(suite.url(Inventory, "/metrics")).send().await.unwrap().text().await.unwrap();
        if counted(&metrics, "503") && counted(&metrics, "499") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed-out and abandoned requests not both counted:\n{metrics}");
}
