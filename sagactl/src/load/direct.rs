//! The baseline the orchestrator is measured against (`sagactl bench`): the client calls the four
//! participants' `PUT`s itself, in order, with no saga log, no retries and no compensation.

use std::time::Instant;

use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    mix::PlannedOrder,
    outcome::{Fate, OrderResult, Outcome},
    saga::describe,
    Worker,
};

/// Runs `order` as the direct chain of `PUT`s. A participant's refusal ends the chain as
/// rejected (what it did so far stays done: nothing compensates here).
pub(super) async fn run_chain(worker: &Worker, order: &PlannedOrder) -> OrderResult {
    let placed_at = Instant::now();
    let fate = chain(worker, &order.body).await;
    OrderResult { intent: order.intent, placed_at, fate, poll_errors: 0, last_poll_error: None }
}

async fn chain(worker: &Worker, order: &Value) -> Fate {
    let id = Uuid::now_v7();
    let [inventory, payment, shipping, notification] = &worker.targets.participants;
    let reservation =
        match put(worker, &format!("{inventory}/reservations/{id}"), &json!({ "items": order["items"] })).await {
            Ok(reservation) => reservation,
            Err(fate) => return fate,
        };
    let Some(total) = reservation["total_cents"].as_i64() else {
        return Fate::PostFailed { error: format!("PUT /reservations/{id}: no total_cents in {reservation}") };
    };
    let calls = [
        (format!("{payment}/payments/{id}"), json!({ "customer_id": order["customer_id"], "amount_cents": total })),
        (
            format!("{shipping}/shipments/{id}"),
            json!({ "address": order["shipping_address"], "items": order["items"] }),
        ),
        (format!("{notification}/notifications/{id}"), json!({ "customer_id": order["customer_id"] })),
    ];
    for (url, body) in calls {
        if let Err(fate) = put(worker, &url, &body).await {
            return fate;
        }
    }
    let outcome = Outcome::Completed;
    Fate::Accepted { order_id: id.to_string(), outcome, last_status: "completed".to_owned(), ended_at: Instant::now() }
}

/// One `PUT`: its body on success, else the fate it gives the chain (a 4xx: rejected; a 5xx or
/// a transport error: failed).
async fn put(worker: &Worker, url: &str, body: &Value) -> Result<Value, Fate> {
    let sent = worker.http.put(url).timeout(worker.request_timeout).json(body).send().await;
    let response = sent.map_err(|err| Fate::PostFailed { error: format!("PUT {url}: {}", describe(&err)) })?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(answer)
    } else if status.is_client_error() {
        let detail = answer["detail"].as_str().map_or_else(|| answer.to_string(), str::to_owned);
        Err(Fate::Rejected { status: status.as_u16(), detail })
    } else {
        Err(Fate::PostFailed { error: format!("PUT {url}: {status}") })
    }
}
