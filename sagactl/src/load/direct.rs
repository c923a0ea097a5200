//! The baseline the orchestrator is measured against (`sagactl bench`): the client calls the four
//! participants' `PUT`s itself, in order, with no saga log, no retries and no compensation.

use std::time::Instant;

use saga_shared::api::{
    AmountCents, Notification, NotificationRequest, OrderRequest, Payment, PaymentRequest, Reservation,
    ReservationRequest, SagaStatus, Shipment, ShipmentRequest,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use uuid::Uuid;

use super::{
    Worker,
    mix::PlannedOrder,
    outcome::{Fate, OrderResult, Outcome},
    saga::describe,
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
    let order: OrderRequest = match serde_json::from_value(order.clone()) {
        Ok(order) => order,
        Err(err) => return Fate::Rejected { status: 422, detail: format!("not an order: {err}") },
    };
    let [inventory, payment, shipping, notification] = &worker.targets.participants;
    let reservation = ReservationRequest { items: order.items.clone() };
    let reservation: Reservation = match put(worker, &format!("{inventory}/reservations/{id}"), &reservation).await {
        Ok(reservation) => reservation,
        Err(fate) => return fate,
    };
    // Payment charges what the reservation priced, as the orchestrator's saga does.
    let amount_cents = match AmountCents::try_from(reservation.total_cents) {
        Ok(amount) => amount,
        Err(err) => return Fate::Rejected { status: 422, detail: format!("cannot charge the reservation: {err}") },
    };
    let payment_body = PaymentRequest { customer_id: order.customer_id.clone(), amount_cents };
    if let Err(fate) = put::<Payment>(worker, &format!("{payment}/payments/{id}"), &payment_body).await {
        return fate;
    }
    let shipment = ShipmentRequest { address: order.shipping_address.clone(), items: order.items.clone() };
    if let Err(fate) = put::<Shipment>(worker, &format!("{shipping}/shipments/{id}"), &shipment).await {
        return fate;
    }
    let notification_body = NotificationRequest { customer_id: order.customer_id };
    if let Err(fate) =
        put::<Notification>(worker, &format!("{notification}/notifications/{id}"), &notification_body).await
    {
        return fate;
    }
    let outcome = Outcome::Completed;
    Fate::Accepted { order_id: id.to_string(), outcome, last_status: SagaStatus::Completed, ended_at: Instant::now() }
}

/// One `PUT`: its body on success, else the fate it gives the chain (a 4xx: rejected; a 5xx or
/// a transport error: failed).
async fn put<R: DeserializeOwned>(worker: &Worker, url: &str, body: &impl Serialize) -> Result<R, Fate> {
    let sent = worker.http.put(url).timeout(worker.request_timeout).json(body).send().await;
    let response = sent.map_err(|err| Fate::PostFailed { error: format!("PUT {url}: {}", describe(&err)) })?;
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        serde_json::from_slice(&bytes)
            .map_err(|err| Fate::PostFailed { error: format!("PUT {url}: {status} with an unexpected body: {err}") })
    } else if status.is_client_error() {
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let detail = answer["detail"].as_str().map_or_else(|| answer.to_string(), str::to_owned);
        Err(Fate::Rejected { status: status.as_u16(), detail })
    } else {
        Err(Fate::PostFailed { error: format!("PUT {url}: {status}") })
    }
}
