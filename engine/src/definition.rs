//! What a saga is: ordered steps, each with its participant, request, kind, timeout and retries,
//! plus the saga's deadline and compensation budget. The order saga is built here.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use saga_shared::api::{
    Notification, NotificationRequest, OrderRequest, Payment, PaymentRequest, RecordState, Reservation,
    ReservationRequest, Shipment, ShipmentRequest, StepRecord,
};
use saga_shared::suite::{self, Service, step_of};
use serde_json::{Map, Value};

use super::retry::RetryPolicy;
use crate::config::OrchestratorConfig;

/// Outputs of finished steps, by step name.
pub type Outputs = Map<String, Value>;

/// Whether a step can be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Undone (in reverse order) when the saga fails.
    Compensatable,
    /// After the pivot: retried until it succeeds, never undone.
    Retriable,
}

/// The participant resource a step drives: `PUT`/`DELETE`/`GET {base_url}/{resource}/{order_id}`.
#[derive(Debug, Clone)]
pub struct Participant {
    /// The service's name (`inventory`, `payment`, …): its circuit's and its metrics' label.
    pub name: &'static str,
    /// Base URL of the service.
    pub base_url: String,
    /// Resource collection (`reservations`, `payments`, …).
    pub resource: &'static str,
    /// Reads the participant's record (its `GET` answer) as done or compensated, for
    /// reconciliation.
    pub record_state: RecordReader,
}

/// Tells from a participant's record whether its step stands or was compensated.
pub type RecordReader = fn(&Value) -> Result<RecordState, String>;

/// Builds a step's request body from the order and earlier steps' outputs.
pub type RequestBuilder = fn(&OrderRequest, &Outputs) -> Result<Value, String>;

/// One step of a saga.
#[derive(Debug, Clone)]
pub struct StepDefinition {
    /// Name shown in the API, the timeline and metric labels.
    pub name: &'static str,
    /// Who does it.
    pub participant: Participant,
    /// Compensatable or retriable.
    pub kind: StepKind,
    /// Timeout of each attempt (and of each reconciliation or compensation call).
    pub timeout: Duration,
    /// How attempts are retried.
    pub retry: RetryPolicy,
    /// The action's request body.
    pub request: RequestBuilder,
    /// The fields of the participant's record (its answer, or the record a reconciliation
    /// found) kept in the log as the step's output: only what later steps read. The record
    /// itself stays with its participant; the log rewrites its row at every step, so every byte
    /// kept here is written again at each later step.
    pub output: &'static [&'static str],
}

impl StepDefinition {
    /// The step's output, from the participant's record: those of its [`Self::output`] fields
    /// the record has; `None` when that is none (a step with no output leaves no entry).
    pub fn output_of(&self, record: &Value) -> Option<Value> {
        let kept = self
            .output
            .iter()
            .filter_map(|&field| Some((field.to_owned(), record.get(field)?.clone())))
            .collect::<Map<_, _>>();
        (!kept.is_empty()).then_some(Value::Object(kept))
    }
}

/// A saga: its steps in order and its time limits.
#[derive(Debug, Clone)]
pub struct SagaDefinition {
    /// The steps, in execution order.
    pub steps: Vec<StepDefinition>,
    /// A saga still going forward after this long is compensated.
    pub deadline: Duration,
    /// How long compensation is retried before the saga is dead-lettered.
    pub compensation_budget: Duration,
    /// Backoff between compensation attempts.
    pub compensation_retry: RetryPolicy,
}

/// The order saga's step names, in order: the participants' steps (`saga_shared::suite`).
pub const ORDER_STEPS: [&str; 4] =
    [step_of(suite::INVENTORY), step_of(suite::PAYMENT), step_of(suite::SHIPPING), step_of(suite::NOTIFICATION)];

impl SagaDefinition {
    /// The step names, in order.
    pub fn step_names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|step| step.name).collect()
    }

    /// Checks that no compensatable step follows a retriable one (the pivot comes once).
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.steps.is_empty() {
            anyhow::bail!("a saga needs at least one step");
        }
        let mut past_pivot = false;
        for step in &self.steps {
            match step.kind {
                StepKind::Retriable => past_pivot = true,
                StepKind::Compensatable if past_pivot => {
                    anyhow::bail!("step {} is compensatable but follows a retriable step", step.name)
                }
                StepKind::Compensatable => {}
            }
        }
        Ok(())
    }

    /// When a saga accepted at `now` must have finished going forward.
    pub fn deadline_from(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        later(now, self.deadline)
    }

    /// When compensation begun at `now` gives up (the saga is then dead-lettered).
    pub fn compensation_deadline_from(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        later(now, self.compensation_budget)
    }

    /// The order saga: reserve → pay (the reservation's total) → ship → confirm.
    pub fn order_saga(config: &OrchestratorConfig) -> anyhow::Result<Self> {
        let step = |service: &'static Service,
                    record_state: RecordReader,
                    request: RequestBuilder,
                    output: &'static [&'static str]|
         -> anyhow::Result<StepDefinition> {
            let (Some(name), Some(resource)) = (service.step(), service.resource()) else {
                anyhow::bail!("{} is not a participant", service.name);
            };
            let base_url = config.participants.of(service).context("no URL for a participant")?;
            let settings = config.step(name)?;
            Ok(StepDefinition {
                name,
                participant: Participant { name: service.name, base_url: base_url.to_owned(), resource, record_state },
                kind: settings.kind,
                timeout: settings.timeout,
                retry: settings.retry,
                request,
                output,
            })
        };
        let definition = Self {
            steps: vec![
                // `total_cents`: what payment charges.
                step(&suite::INVENTORY, Reservation::state_of, reservation_request, &["total_cents"])?,
                step(&suite::PAYMENT, Payment::state_of, payment_request, &[])?,
                // `tracking_number`: what the order view shows.
                step(&suite::SHIPPING, Shipment::state_of, shipment_request, &["tracking_number"])?,
                step(&suite::NOTIFICATION, Notification::state_of, notification_request, &[])?,
            ],
            deadline: config.saga_deadline,
            compensation_budget: config.compensation_budget,
            compensation_retry: config.compensation_retry,
        };
        definition.validate()?;
        Ok(definition)
    }
}

/// `now + duration`, saturating at the end of time (a budget of "forever" must not overflow).
pub(crate) fn later(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn to_value<T: serde::Serialize>(body: &T) -> Result<Value, String> {
    serde_json::to_value(body).map_err(|e| e.to_string())
}

fn reservation_request(order: &OrderRequest, _: &Outputs) -> Result<Value, String> {
    to_value(&ReservationRequest { items: order.items.clone() })
}

/// What the order costs: what the reservation priced (the output of `reserve_inventory`), once
/// it did.
pub fn order_total(outputs: &Outputs) -> Option<i64> {
    outputs.get(ORDER_STEPS[0])?.get("total_cents")?.as_i64()
}

/// Payment charges what the reservation priced.
fn payment_request(order: &OrderRequest, outputs: &Outputs) -> Result<Value, String> {
    let total = order_total(outputs).ok_or("the reservation's output has no total_cents")?;
    let amount_cents = total.try_into().map_err(|e: String| format!("cannot charge the reservation's total: {e}"))?;
    to_value(&PaymentRequest { customer_id: order.customer_id.clone(), amount_cents })
}

fn shipment_request(order: &OrderRequest, _: &Outputs) -> Result<Value, String> {
    to_value(&ShipmentRequest { address: order.shipping_address.clone(), items: order.items.clone() })
}

fn notification_request(order: &OrderRequest, _: &Outputs) -> Result<Value, String> {
    to_value(&NotificationRequest { customer_id: order.customer_id.clone() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use saga_shared::config::Env;
    use serde_json::json;

    use super::*;

    fn order() -> OrderRequest {
        serde_json::from_value(json!({
            "customer_id": "alice",
            "items": [{ "sku": "WIDGET-1", "quantity": 2 }],
            "shipping_address": { "name": "A", "line1": "B", "city": "C", "postal_code": "D", "country": "FR" }
        }))
        .unwrap()
    }

    #[test]
    fn payment_charges_the_total_of_the_reservation() {
        let mut outputs = Outputs::new();
        outputs.insert("reserve_inventory".into(), json!({ "total_cents": 2598 }));
        let body = payment_request(&order(), &outputs).unwrap();
        assert_eq!(body, json!({ "customer_id": "alice", "amount_cents": 2598 }));
    }

    #[test]
    fn a_step_keeps_only_the_fields_later_steps_read() {
        let definition = SagaDefinition::order_saga(
            &OrchestratorConfig::from_env(&Env::from_pairs::<&str, &str>([]), &ORDER_STEPS).unwrap(),
        )
        .unwrap();
        let record = json!({ "order_id": "x", "status": "reserved", "items": [], "total_cents": 2598 });
        let output = definition.steps[0].output_of(&record).unwrap();
        assert_eq!(output, json!({ "total_cents": 2598 }));
        assert_eq!(
            payment_request(&order(), &Map::from_iter([(ORDER_STEPS[0].to_owned(), output)])).unwrap()["amount_cents"],
            2598
        );
        assert_eq!(definition.steps[1].output_of(&json!({ "status": "captured", "amount_cents": 1 })), None);
        assert_eq!(definition.steps[0].output_of(&json!("not an object")), None);
    }

    #[test]
    fn payment_without_a_reservation_output_is_an_error() {
        assert!(payment_request(&order(), &Outputs::new()).is_err());
    }

    #[test]
    fn a_compensatable_step_after_a_retriable_one_is_refused() {
        let env = Env::from_pairs([("STEP_PROCESS_PAYMENT_KIND", "retriable")]);
        let config = OrchestratorConfig::from_env(&env, &ORDER_STEPS).unwrap();
        assert!(SagaDefinition::order_saga(&config).is_err());
        let env = Env::from_pairs([("STEP_SEND_CONFIRMATION_KIND", "retriable")]);
        let config = OrchestratorConfig::from_env(&env, &ORDER_STEPS).unwrap();
        assert!(SagaDefinition::order_saga(&config).is_ok());
    }
}
