//! Shipping's HTTP routes: shipments (the saga step).

use axum::Router;
use chrono::{DateTime, Utc};
use saga_shared::ProblemType;
use saga_shared::{
    AppError, Problem,
    api::{Shipment, ShipmentRequest, ShipmentStatus},
    ledger::StepTable,
    server::{Boot, ServiceSpec},
    step::{self, Fresh, OperationDocs, OutcomeCounter, Step, StepDocs},
};
use sqlx::PgConnection;
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    db::{self, SHIPMENTS},
    metric_definitions::{self, CANCELLATIONS_TOTAL, SHIPMENTS_TOTAL},
};

const SHIPMENTS_COUNTER: OutcomeCounter = OutcomeCounter(SHIPMENTS_TOTAL);

/// The document's info and tag (the shipment endpoints are the step's: [`step::spec`]).
#[derive(OpenApi)]
#[openapi(components(schemas(Problem)), tags((name = "shipping", description = "Shipments per order")))]
struct ApiDoc;

/// The service's routes and their OpenAPI document.
pub fn spec(boot: &Boot) -> anyhow::Result<ServiceSpec> {
    metric_definitions::describe();
    step::spec(Ship, boot, Router::new(), ApiDoc::openapi())
}

/// A tracking number derived from the order id: the same order always gets the same one.
fn tracking_number(order_id: Uuid) -> String {
    let hex = order_id.simple().to_string().to_ascii_uppercase();
    format!("TRK-{}", &hex[..16])
}

/// The shipping step: books a shipment where a carrier delivers.
struct Ship;

impl Step for Ship {
    type Request = ShipmentRequest;
    type Record = Shipment;
    const TABLE: StepTable = SHIPMENTS;
    const ACT_COUNTER: OutcomeCounter = SHIPMENTS_COUNTER;
    const DONE: &'static str = "created";
    const UNDO_COUNTER: OutcomeCounter = OutcomeCounter(CANCELLATIONS_TOTAL);
    const UNDONE: &'static str = "cancelled";
    const RECORD: &'static str = "shipment";
    const DOCS: StepDocs = StepDocs {
        act: OperationDocs {
            id: "create_shipment",
            summary: "Books the order's shipment.",
            answer: "Shipment created",
        },
        refusals: &[(409, "The order's shipment was already cancelled")],
        undo: OperationDocs {
            id: "cancel_shipment",
            summary: "Cancels the order's shipment (the compensation). Cancelling what was never booked records a\n\
                      tombstone, so a late booking for this order is refused.",
            answer: "Cancelled (or never created, now tombstoned)",
        },
        read: OperationDocs { id: "get_shipment", summary: "The order's shipment.", answer: "The shipment" },
    };

    async fn effect(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        body: &ShipmentRequest,
        created_at: DateTime<Utc>,
    ) -> Result<serde_json::Value, AppError> {
        let reason = db::undeliverable_reason(tx, body.address.country.as_str()).await?;
        ship(order_id, body, created_at, reason.as_deref())
    }

    /// The batch's countries looked up in one statement instead of one per order.
    async fn effects(
        &self,
        tx: &mut PgConnection,
        orders: &[Fresh<'_, ShipmentRequest>],
    ) -> Result<Vec<Result<serde_json::Value, AppError>>, AppError> {
        let countries: Vec<&str> = orders.iter().map(|order| order.request.address.country.as_str()).collect();
        let reasons = db::undeliverable_reasons(tx, &countries).await?;
        let mut results = Vec::with_capacity(orders.len());
        for order in orders {
            let reason = reasons.get(order.request.address.country.as_str()).map(String::as_str);
            match order.span.in_scope(|| ship(order.order_id, order.request, order.created_at, reason)) {
                result @ (Ok(_) | Err(AppError::Client(_))) => results.push(result),
                Err(err) => return Err(err),
            }
        }
        Ok(results)
    }

    /// Nothing has left the warehouse yet in this model: cancelling is the ledger's state
    /// change itself.
    async fn undo(&self, _: &mut PgConnection, _: Uuid, _: ShipmentRequest) -> Result<(), AppError> {
        Ok(())
    }

    async fn read(&self, conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Shipment>, sqlx::Error> {
        db::fetch_shipment(conn, order_id).await
    }
}

/// The shipment's answer, or its refusal (counted) when no carrier delivers to its country
/// (`undeliverable` says why).
fn ship(
    order_id: Uuid,
    body: &ShipmentRequest,
    created_at: DateTime<Utc>,
    undeliverable: Option<&str>,
) -> Result<serde_json::Value, AppError> {
    let country = body.address.country.as_str();
    if let Some(reason) = undeliverable {
        SHIPMENTS_COUNTER.count("undeliverable");
        return Err(AppError::problem(ProblemType::Undeliverable, format!("cannot ship to {country}: {reason}")));
    }
    tracing::info!(country, "shipment created");
    let shipment = Shipment {
        order_id,
        status: ShipmentStatus::Created,
        tombstone: false,
        tracking_number: Some(tracking_number(order_id)),
        country: Some(country.to_owned()),
        created_at,
        updated_at: created_at,
    };
    Ok(serde_json::to_value(&shipment).map_err(anyhow::Error::from)?)
}
