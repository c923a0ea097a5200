//! Bad input on every step endpoint gets a 4xx problem+json and changes nothing.

use std::time::Duration;

use reqwest::Method;
use saga_tests::{Http, Service, Suite};
use serde_json::{Value, json};
use uuid::Uuid;

/// A valid body for each service's `PUT`, to derive broken ones from.
fn valid_body(service: Service) -> Value {
    match service {
        Service::Inventory => json!({ "items": [{ "sku": "WIDGET-1", "quantity": 1 }] }),
        Service::Payment => json!({ "customer_id": "alice", "amount_cents": 100 }),
        Service::Shipping => json!({
            "address": { "name": "A", "line1": "B", "city": "C", "postal_code": "D", "country": "FR" },
            "items": [{ "sku": "WIDGET-1", "quantity": 1 }]
        }),
        Service::Notification => json!({ "customer_id": "alice" }),
        Service::Orchestrator | Service::OrchestratorB => unreachable!("only participants have step endpoints"),
    }
}

fn resource(service: Service) -> &'static str {
    match service {
        Service::Inventory => "reservations",
        Service::Payment => "payments",
        Service::Shipping => "shipments",
        Service::Notification => "notifications",
        Service::Orchestrator | Service::OrchestratorB => unreachable!("only participants have step endpoints"),
    }
}

/// Broken variants of the valid body that each service must refuse with 422.
fn invalid_bodies(service: Service) -> Vec<(&'static str, Value)> {
    let mut with_unknown_field = valid_body(service);
    with_unknown_field["surprise"] = json!(true);
    let mut cases = vec![("empty object", json!({})), ("unknown field", with_unknown_field), ("array", json!([]))];
    match service {
        Service::Inventory => cases.extend([
            ("zero quantity", json!({ "items": [{ "sku": "WIDGET-1", "quantity": 0 }] })),
            ("negative quantity", json!({ "items": [{ "sku": "WIDGET-1", "quantity": -3 }] })),
            ("quantity as string", json!({ "items": [{ "sku": "WIDGET-1", "quantity": "2" }] })),
            ("no items", json!({ "items": [] })),
            ("51 lines", json!({ "items": vec![json!({ "sku": "WIDGET-1", "quantity": 1 }); 51] })),
            ("lowercase sku", json!({ "items": [{ "sku": "widget", "quantity": 1 }] })),
            ("missing quantity", json!({ "items": [{ "sku": "WIDGET-1" }] })),
        ]),
        Service::Payment => cases.extend([
            ("zero amount", json!({ "customer_id": "alice", "amount_cents": 0 })),
            ("negative amount", json!({ "customer_id": "alice", "amount_cents": -100 })),
            ("fractional amount", json!({ "customer_id": "alice", "amount_cents": 1.5 })),
            ("missing customer", json!({ "amount_cents": 100 })),
        ]),
        Service::Shipping => cases.extend([
            ("missing address", json!({ "items": [{ "sku": "WIDGET-1", "quantity": 1 }] })),
            ("lowercase country", {
                let mut b = valid_body(service);
                b["address"]["country"] = json!("fr");
                b
            }),
            ("blank city", {
                let mut b = valid_body(service);
                b["address"]["city"] = json!("   ");
                b
            }),
            ("NUL in name", {
                let mut b = valid_body(service);
                b["address"]["name"] = json!("a\u{0}b");
                b
            }),
        ]),
        Service::Notification => cases.extend([("customer as number", json!({ "customer_id": 7 }))]),
        Service::Orchestrator | Service::OrchestratorB => unreachable!("only participants have step endpoints"),
    }
    cases
}

async fn assert_nothing_recorded(suite: &Suite, service: Service, url: &str, case: &str) {
    let answer = suite.http.get(url).await;
    assert_eq!(answer.status, 404, "{service:?} {case}: something was recorded: {}", answer.body);
}

#[tokio::test]
async fn every_step_endpoint_refuses_invalid_values_with_422_problem_json() {
    let suite = Suite::start(&Service::PARTICIPANTS).await;
    for service in Service::PARTICIPANTS {
        for (case, body) in invalid_bodies(service) {
            let url = suite.url(service, &format!("/{}/{}", resource(service), Uuid::new_v4()));
            let answer = suite.http.put(&url, &body).await;
            assert_eq!(answer.status, 422, "{service:?} {case}: {}", answer.body);
            answer.assert_problem(422);
            assert!(answer.body["detail"].is_string(), "{service:?} {case}: a 422 must say what is wrong");
            assert_nothing_recorded(&suite, service, &url, case).await;
        }
    }
}

#[tokio::test]
async fn malformed_json_wrong_content_type_and_huge_bodies_are_refused_with_problem_json() {
    let suite = Suite::start(&Service::PARTICIPANTS).await;
    for service in Service::PARTICIPANTS {
        let url = suite.url(service, &format!("/{}/{}", resource(service), Uuid::new_v4()));
        let valid = serde_json::to_vec(&valid_body(service)).unwrap();

        let malformed = suite.http.send_raw(Method::PUT, &url, "application/json", b"{,}".to_vec()).await.unwrap();
        let not_json = suite.http.send_raw(Method::PUT, &url, "text/plain", valid.clone()).await.unwrap();
        // The server answers 413 without reading the body and closes the connection: send it on
        // a client of its own so the shared client's pooled connections are not raced.
        let huge = Http::new(Duration::from_secs(30))
            .send_raw(Method::PUT, &url, "application/json", vec![b' '; 2 * 1024 * 1024])
            .await
            .unwrap();

        assert_eq!(malformed.assert_problem(400), "/problems/malformed-json", "{service:?}");
        assert_eq!(not_json.assert_problem(415), "/problems/unsupported-media-type", "{service:?}");
        assert_eq!(huge.assert_problem(413), "/problems/body-too-large", "{service:?}");
        assert_nothing_recorded(&suite, service, &url, "raw bodies").await;
    }
}

#[tokio::test]
async fn a_malformed_order_id_is_a_400_and_an_unknown_route_a_404_both_problem_json() {
    let suite = Suite::start(&Service::PARTICIPANTS).await;
    for service in Service::PARTICIPANTS {
        let bad_id = suite.url(service, &format!("/{}/not-a-uuid", resource(service)));
        suite.http.put(&bad_id, &valid_body(service)).await.assert_problem(400);
        suite.http.delete(&bad_id).await.assert_problem(400);
        suite.http.get(&bad_id).await.assert_problem(400);
        suite.http.get(&suite.url(service, "/no/such/route")).await.assert_problem(404);
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_that_names_the_allowed_ones() {
    let suite = Suite::start(&[Service::Inventory]).await;
    let url = suite.url(Service::Inventory, &format!("/reservations/{}", Uuid::new_v4()));
    let answer = suite.http.send(Method::POST, &url, Some(&valid_body(Service::Inventory))).await.unwrap();
    assert_eq!(answer.assert_problem(405), "/problems/method-not-allowed");
    let allow = answer.headers.get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(allow.contains("PUT") && allow.contains("DELETE"), "Allow: {allow:?}");
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_refused_with_422() {
    let suite = Suite::start(&[Service::Payment]).await;
    let url = suite.url(Service::Payment, &format!("/payments/{}", Uuid::new_v4()));
    // serde would read a struct from an array: ["alice", 100] must not be a payment.
    for body in [json!(["alice", 100]), json!("alice"), json!(7), json!(null)] {
        let answer = suite.http.put(&url, &body).await;
        assert_eq!(answer.assert_problem(422), "/problems/validation", "{body}");
    }
    assert_nothing_recorded(&suite, Service::Payment, &url, "non-object bodies").await;
}
