//! Shipping's HTTP routes: shipments (the saga step).

use axum::{extract::State, http::StatusCode, routing::get, Router};
use saga_shared::{
    api::{Address, Shipment, ShipmentRequest},
    error::{ReadErrors, StepErrors},
    ledger::{self, Begun, CompensationClaim},
    server::ServiceSpec,
    AppError, AppJson, AppPath, Problem,
};
use sqlx::PgPool;
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    db::{self, SHIPMENTS},
    metric_definitions::{count, CANCELLATIONS_TOTAL, SHIPMENTS_TOTAL},
};

#[derive(OpenApi)]
#[openapi(
    paths(create_shipment, cancel_shipment, get_shipment),
    components(schemas(ShipmentRequest, Address, Shipment, Problem)),
    tags((name = "shipping", description = "Shipments per order"))
)]
struct ApiDoc;

/// The service's business routes and their OpenAPI document.
pub fn spec(pool: PgPool) -> ServiceSpec {
    let routes = Router::new()
        .route("/shipments/{order_id}", get(get_shipment).put(create_shipment).delete(cancel_shipment))
        .with_state(pool);
    ServiceSpec { name: crate::NAME, routes, openapi: ApiDoc::openapi() }
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
#[tracing::instrument(skip(pool, body))]
async fn create_shipment(
    State(pool): State<PgPool>,
    AppPath(order_id): AppPath<Uuid>,
    AppJson(body): AppJson<ShipmentRequest>,
) -> Result<(StatusCode, AppJson<serde_json::Value>), AppError> {
    let request = serde_json::to_value(&body).map_err(anyhow::Error::from)?;
    let mut tx = pool.begin().await?;
    let begun = ledger::begin_action(&mut tx, SHIPMENTS, order_id, &request)
        .await
        .inspect_err(|_| count(SHIPMENTS_TOTAL, "refused"))?;
    let created_at = match begun {
        Begun::Fresh { created_at } => created_at,
        Begun::Replay(stored) => {
            count(SHIPMENTS_TOTAL, "replayed");
            return Ok((StatusCode::OK, AppJson(stored)));
        }
    };

    let country = body.address.country.as_str();
    if let Some(reason) = db::undeliverable_reason(&mut tx, country).await? {
        count(SHIPMENTS_TOTAL, "undeliverable");
        return Err(AppError::problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "undeliverable",
            "Undeliverable address",
            format!("cannot ship to {country}: {reason}"),
        ));
    }

    let shipment = Shipment {
        order_id,
        status: "created".to_owned(),
        tombstone: false,
        tracking_number: Some(tracking_number(order_id)),
        country: Some(country.to_owned()),
        created_at,
        updated_at: created_at,
    };
    let response = serde_json::to_value(&shipment).map_err(anyhow::Error::from)?;
    ledger::store_response(&mut tx, SHIPMENTS, order_id, &response).await?;
    tx.commit().await?;
    count(SHIPMENTS_TOTAL, "created");
    tracing::info!(country, "shipment created");
    Ok((StatusCode::CREATED, AppJson(response)))
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
    let mut tx = pool.begin().await?;
    let outcome = match ledger::claim_compensation(&mut tx, SHIPMENTS, order_id).await? {
        CompensationClaim::NeverDone => "tombstone",
        CompensationClaim::AlreadyCompensated => "replayed",
        CompensationClaim::Undo { .. } => {
            // Nothing has left the warehouse yet in this model: cancelling is the state change.
            ledger::mark_compensated(&mut tx, SHIPMENTS, order_id).await?;
            "cancelled"
        }
    };
    let shipment = db::fetch_shipment(&mut tx, order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("shipment {order_id} vanished inside its transaction"))?;
    tx.commit().await?;
    count(CANCELLATIONS_TOTAL, outcome);
    tracing::info!(outcome, "shipment cancellation");
    Ok(AppJson(shipment))
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
