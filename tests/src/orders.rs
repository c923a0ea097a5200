//! Placing and watching orders through the orchestrator's API.

use saga_shared::api::SagaStatus;
use saga_suite::poll::Poll;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Suite, client::Answer, processes::Service};

/// An order body: `customer` buys `items` (sku, quantity), shipped to `country`.
pub fn order_body(customer: &str, items: &[(&str, i64)], country: &str) -> Value {
    json!({
        "customer_id": customer,
        "items": items.iter().map(|(sku, quantity)| json!({ "sku": sku, "quantity": quantity })).collect::<Vec<_>>(),
        "shipping_address": { "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London",
                              "postal_code": "SW1Y 4JH", "country": country }
    })
}

/// A happy order: alice buys one widget, shipped to France.
pub fn happy_order() -> Value {
    order_body("alice", &[("WIDGET-1", 1)], "FR")
}

impl Suite {
    /// `POST /orders`, optionally with an `Idempotency-Key`.
    pub async fn place_order(&self, body: &Value, key: Option<&str>) -> Answer {
        let mut request = self.http.inner().post(self.url(Service::Orchestrator, "/orders")).json(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        crate::Http::answer(request.send().await.expect("POST /orders")).await.expect("answer")
    }

    /// Places an order that must be accepted, and returns its id.
    pub async fn accepted_order(&self, body: &Value) -> Uuid {
        let answer = self.place_order(body, None).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        answer.body["order_id"].as_str().and_then(|id| id.parse().ok()).expect("order_id")
    }

    /// `GET /orders/{id}`.
    pub async fn order(&self, order_id: Uuid) -> Value {
        let answer = self.http.get(&self.url(Service::Orchestrator, &format!("/orders/{order_id}"))).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body
    }

    /// Polls until the order's status is one of `statuses`, or panics after `timeout`.
    pub async fn wait_for(&self, order_id: Uuid, statuses: &[SagaStatus], timeout: Duration) -> Value {
        let url = self.url(Service::Orchestrator, &format!("/orders/{order_id}"));
        let mut last = None;
        let found = Poll::new(timeout, Duration::from_millis(50))
            .until(async || {
                let answer = self.http.send(Method::GET, &url, None).await.ok()?;
                if statuses.iter().any(|s| answer.body["status"] == s.as_str()) {
                    return Some(answer.body);
                }
                last = Some(answer.body);
                None
            })
            .await;
        match (found, last) {
            (Some(order), _) => order,
            (None, Some(last)) => panic!(
                "order {order_id} not {statuses:?} after {timeout:?}: {last}\n{}",
                self.log(Service::Orchestrator)
            ),
            (None, None) => panic!("order {order_id}: orchestrator unreachable after {timeout:?}"),
        }
    }

    /// Polls until the order is terminal.
    pub async fn wait_terminal(&self, order_id: Uuid, timeout: Duration) -> Value {
        self.wait_for(order_id, &SagaStatus::TERMINAL, timeout).await
    }

    /// The order's timeline.
    pub async fn events(&self, order_id: Uuid) -> Vec<Value> {
        let answer = self.http.get(&self.url(Service::Orchestrator, &format!("/orders/{order_id}/events"))).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body.as_array().cloned().unwrap_or_default()
    }

    /// The timeline as `kind:step:outcome` strings (steps omitted where none), for assertions.
    pub async fn timeline(&self, order_id: Uuid) -> Vec<String> {
        self.events(order_id)
            .await
            .iter()
            .map(|e| match e["step"].as_str() {
                Some(step) => {
                    format!("{}:{}:{}", e["kind"].as_str().unwrap_or(""), step, e["outcome"].as_str().unwrap_or(""))
                }
                None => format!("{}:{}", e["kind"].as_str().unwrap_or(""), e["outcome"].as_str().unwrap_or("")),
            })
            .collect()
    }
}

impl Suite {
    /// `POST /orders/{id}/{action}` (`retry` or `cancel`) with the operator token, and an
    /// optional operator body.
    pub async fn operator_action(&self, order_id: Uuid, action: &str, body: Option<&Value>) -> Answer {
        self.operator_action_as(order_id, action, Some(crate::ADMIN_TOKEN), body).await
    }

    /// Like [`Suite::operator_action`], with `token` as the bearer token (`None`: no header).
    pub async fn operator_action_as(
        &self,
        order_id: Uuid,
        action: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let url = self.url(Service::Orchestrator, &format!("/orders/{order_id}/{action}"));
        let mut request = self.http.inner().request(Method::POST, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        crate::Http::answer(request.send().await.expect("operator action")).await.expect("answer")
    }

    /// Polls until step `index` of the order has `status` (read from the saga log).
    pub async fn wait_for_step(&self, order_id: Uuid, index: usize, status: &str) {
        let pool = self.db.pool_as("orchestrator").await.expect("pool");
        let mut current: Option<String> = None;
        let reached = Poll::new(Duration::from_secs(30), Duration::from_millis(20))
            .holds(async || {
                current = sqlx::query_scalar("select steps -> $2::int ->> 'status' from sagas where order_id = $1")
                    .bind(order_id)
                    .bind(index as i32)
                    .fetch_optional(&pool)
                    .await
                    .expect("saga row")
                    .flatten();
                current.as_deref() == Some(status)
            })
            .await;
        assert!(reached, "step {index} of {order_id} never became {status} (is {current:?})");
    }
}
