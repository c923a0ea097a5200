//! Shipping's HTTP routes: shipments (the saga step).

use axum::{Router, extract::State, http::StatusCode, routing::get};
use chrono::{DateTime, Utc};
use saga_shared::ProblemType;
use saga_shared::{
    AppError, AppJson, AppPath, Problem,
    api::{Address, Shipment, ShipmentRequest, ShipmentStatus},
    error::{ReadErrors, StepErrors},
    ledger::StepTable,
    server::{Boot, ServiceSpec},
    step::{self, Fresh, OutcomeCounter, Step},
    step_batch::Steps,
};
use sqlx::{PgConnection, PgPool};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    db::{self, SHIPMENTS},
    metric_definitions::{CANCELLATIONS_TOTAL, SHIPMENTS_TOTAL},
};

const SHIPMENTS_COUNTER: OutcomeCounter = OutcomeCounter(SHIPMENTS_TOTAL);
const CANCELLATIONS: OutcomeCounter = OutcomeCounter(CANCELLATIONS_TOTAL);

#[derive(OpenApi)]
#[openapi(
    paths(create_shipment, cancel_shipment, get_shipment),
    components(schemas(ShipmentRequest, Address, Shipment, ShipmentStatus, Problem)),
    tags((name = "shipping", description = "Shipments per order"))
)]
struct ApiDoc;

/// The service's business routes and their OpenAPI document.
pub fn spec(boot: &Boot) -> ServiceSpec {
    let routes = Router::new()
        .route("/shipments/{order_id}", get(get_shipment).put(create_shipment).delete(cancel_shipment))
        .with_state(Steps::start(Ship, boot));
    ServiceSpec { service: crate::SERVICE, routes, openapi: ApiDoc::openapi() }
}

/// A tracking number derived from the order id: the same order always gets the same one.
fn tracking_number(order_id: Uuid) -> String {
    let hex = order_id.simple().to_string().to_ascii_uppercase();
    format!("TRK-{}", &hex[..16])
}

/// Books the order's shipment.
#[utoipa::path(put, path = "/shipments/{order_id}", tag = "shipping",
    params(("order_id" = Uuid, Path, description = "The order")),
    request_body = ShipmentRequest,
    responses(
        (status = 201, description = "Shipment created", body = Shipment),
        (status = 200, description = "Replay: the stored result, nothing changed", body = Shipment),
        (status = 409, description = "The order's shipment was already cancelled", body = Problem, content_type = "application/problem+json"),
        StepErrors,
    ))]
#[tracing::instrument(skip(steps, body))]
async fn create_shipment(
    State(steps): State<Steps<Ship>>,
    AppPath(order_id): AppPath<Uuid>,
    AppJson(body): AppJson<ShipmentRequest>,
) -> Result<(StatusCode, AppJson<serde_json::Value>), AppError> {
    steps.act(order_id, body).await
}

/// The shipping step: books a shipment where a carrier delivers.
struct Ship;

impl Step for Ship {
    type Request = ShipmentRequest;
    const TABLE: StepTable = SHIPMENTS;
    const COUNTER: OutcomeCounter = SHIPMENTS_COUNTER;
    const DONE: &'static str = "created";

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

/// Cancels the order's shipment (the compensation). Cancelling what was never booked records a
/// tombstone, so a late booking for this order is refused.
#[utoipa::path(delete, path = "/shipments/{order_id}", tag = "shipping",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "Cancelled (or never created, now tombstoned)", body = Shipment),
        StepErrors,
    ))]
#[tracing::instrument(skip(pool))]
async fn cancel_shipment(
    State(pool): State<PgPool>,
    AppPath(order_id): AppPath<Uuid>,
) -> Result<AppJson<Shipment>, AppError> {
    // Nothing has left the warehouse yet in this model: cancelling is the state change itself.
    let undo = async |_: &mut sqlx::PgConnection, _: ShipmentRequest| Ok(());
    step::compensate(&pool, SHIPMENTS, CANCELLATIONS, "cancelled", order_id, undo, async |tx| {
        db::fetch_shipment(tx, order_id).await
    })
    .await
}

/// The order's shipment.
#[utoipa::path(get, path = "/shipments/{order_id}", tag = "shipping",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses((status = 200, description = "The shipment", body = Shipment), ReadErrors))]
async fn get_shipment(
    State(pool): State<PgPool>,
    AppPath(order_id): AppPath<Uuid>,
) -> Result<AppJson<Shipment>, AppError> {
    let mut conn = pool.acquire().await?;
    db::fetch_shipment(&mut conn, order_id)
        .await?
        .map(AppJson)
        .ok_or_else(|| AppError::not_found("shipment for order", order_id))
}
