//! Notification's HTTP routes: the order confirmation (the saga step).

use axum::{Router, extract::State, http::StatusCode, routing::get};
use chrono::{DateTime, Utc};
use saga_shared::{
    AppError, AppJson, AppPath, Problem,
    api::{Notification, NotificationRequest, NotificationStatus},
    error::{ReadErrors, StepErrors},
    ledger::StepTable,
    server::{Boot, ServiceSpec},
    step::{self, OutcomeCounter, Step},
    step_batch::Steps,
};
use sqlx::{PgConnection, PgPool};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    db::{self, NOTIFICATIONS},
    metric_definitions::{CANCELLATIONS_TOTAL, CONFIRMATIONS_TOTAL},
};

const CONFIRMATIONS: OutcomeCounter = OutcomeCounter(CONFIRMATIONS_TOTAL);
const CANCELLATIONS: OutcomeCounter = OutcomeCounter(CANCELLATIONS_TOTAL);

#[derive(OpenApi)]
#[openapi(
    paths(send_confirmation, send_cancellation, get_notification),
    components(schemas(NotificationRequest, Notification, NotificationStatus, Problem)),
    tags((name = "notification", description = "Order confirmations and cancellation notices"))
)]
struct ApiDoc;

/// The service's business routes and their OpenAPI document.
pub fn spec(boot: &Boot) -> ServiceSpec {
    let routes = Router::new()
        .route("/notifications/{order_id}", get(get_notification).put(send_confirmation).delete(send_cancellation))
        .with_state(Steps::start(Confirm, boot));
    ServiceSpec { service: crate::SERVICE, routes, openapi: ApiDoc::openapi() }
}

/// Sends (records) the order confirmation.
#[utoipa::path(put, path = "/notifications/{order_id}", tag = "notification",
    params(("order_id" = Uuid, Path, description = "The order")),
    request_body = NotificationRequest,
    responses(
        (status = 201, description = "Confirmation sent", body = Notification),
        (status = 200, description = "Replay: the stored result, nothing changed", body = Notification),
        (status = 409, description = "The order was already cancelled", body = Problem, content_type = "application/problem+json"),
        StepErrors,
    ))]
#[tracing::instrument(skip(steps, body))]
async fn send_confirmation(
    State(steps): State<Steps<Confirm>>,
    AppPath(order_id): AppPath<Uuid>,
    AppJson(body): AppJson<NotificationRequest>,
) -> Result<(StatusCode, AppJson<serde_json::Value>), AppError> {
    steps.act(order_id, body).await
}

/// The notification step: records the confirmation sent to the customer.
struct Confirm;

impl Step for Confirm {
    type Request = NotificationRequest;
    const TABLE: StepTable = NOTIFICATIONS;
    const COUNTER: OutcomeCounter = CONFIRMATIONS;
    const DONE: &'static str = "sent";

    async fn effect(
        &self,
        _: &mut PgConnection,
        order_id: Uuid,
        body: &NotificationRequest,
        created_at: DateTime<Utc>,
    ) -> Result<serde_json::Value, AppError> {
        tracing::info!(customer_id = %body.customer_id, "confirmation sent");
        let notification = Notification {
            order_id,
            status: NotificationStatus::Sent,
            tombstone: false,
            customer_id: Some(body.customer_id.to_string()),
            confirmation: Some(format!("Dear {}, your order {order_id} is confirmed.", body.customer_id)),
            cancellation_notice: None,
            created_at,
            updated_at: created_at,
        };
        Ok(serde_json::to_value(&notification).map_err(anyhow::Error::from)?)
    }
}

/// Compensates the confirmation: sends a cancellation notice if a confirmation went out; if none
/// did, records a tombstone so a late confirmation is refused.
#[utoipa::path(delete, path = "/notifications/{order_id}", tag = "notification",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "Cancellation notice sent (or never confirmed, now tombstoned)", body = Notification),
        StepErrors,
    ))]
#[tracing::instrument(skip(pool))]
async fn send_cancellation(
    State(pool): State<PgPool>,
    AppPath(order_id): AppPath<Uuid>,
) -> Result<AppJson<Notification>, AppError> {
    let undo = async |tx: &mut sqlx::PgConnection, request: NotificationRequest| {
        let notice =
            format!("Dear {}, your order {order_id} was cancelled; any payment is refunded.", request.customer_id);
        Ok(db::record_cancellation_notice(tx, order_id, &notice).await?)
    };
    step::compensate(&pool, NOTIFICATIONS, CANCELLATIONS, "notice_sent", order_id, undo, async |tx| {
        db::fetch_notification(tx, order_id).await
    })
    .await
}

/// The order's notification record.
#[utoipa::path(get, path = "/notifications/{order_id}", tag = "notification",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses((status = 200, description = "The notification record", body = Notification), ReadErrors))]
async fn get_notification(
    State(pool): State<PgPool>,
    AppPath(order_id): AppPath<Uuid>,
) -> Result<AppJson<Notification>, AppError> {
    let mut conn = pool.acquire().await?;
    db::fetch_notification(&mut conn, order_id)
        .await?
        .map(AppJson)
        .ok_or_else(|| AppError::not_found("notification for order", order_id))
}
