//! Notification's HTTP routes: the order confirmation (the saga step).

use axum::Router;
use chrono::{DateTime, Utc};
use saga_shared::{
    AppError, Problem,
    api::{Notification, NotificationRequest, NotificationStatus},
    ledger::StepTable,
    server::{Boot, ServiceSpec},
    step::{self, OperationDocs, OutcomeCounter, Step, StepDocs},
};
use sqlx::PgConnection;
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    db::{self, NOTIFICATIONS},
    metric_definitions::{self, CANCELLATIONS_TOTAL, CONFIRMATIONS_TOTAL},
};

/// The document's info and tag (the notification endpoints are the step's: [`step::spec`]).
#[derive(OpenApi)]
#[openapi(
    components(schemas(Problem)),
    tags((name = "notification", description = "Order confirmations and cancellation notices"))
)]
struct ApiDoc;

/// The service's routes and their OpenAPI document.
pub fn spec(boot: &Boot) -> anyhow::Result<ServiceSpec> {
    metric_definitions::describe();
    step::spec(Confirm, boot, Router::new(), ApiDoc::openapi())
}

/// The notification step: records the confirmation sent to the customer.
struct Confirm;

impl Step for Confirm {
    type Request = NotificationRequest;
    type Record = Notification;
    const TABLE: StepTable = NOTIFICATIONS;
    const ACT_COUNTER: OutcomeCounter = OutcomeCounter(CONFIRMATIONS_TOTAL);
    const DONE: &'static str = "sent";
    const UNDO_COUNTER: OutcomeCounter = OutcomeCounter(CANCELLATIONS_TOTAL);
    const UNDONE: &'static str = "notice_sent";
    const RECORD: &'static str = "notification";
    const DOCS: StepDocs = StepDocs {
        act: OperationDocs {
            id: "send_confirmation",
            summary: "Sends (records) the order confirmation.",
            answer: "Confirmation sent",
        },
        refusals: &[(409, "The order was already cancelled")],
        undo: OperationDocs {
            id: "send_cancellation",
            summary: "Compensates the confirmation: sends a cancellation notice if a confirmation went out; if none\n\
                      did, records a tombstone so a late confirmation is refused.",
            answer: "Cancellation notice sent (or never confirmed, now tombstoned)",
        },
        read: OperationDocs {
            id: "get_notification",
            summary: "The order's notification record.",
            answer: "The notification record",
        },
    };

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

    /// Sends (records) the cancellation notice for the confirmation that went out.
    async fn undo(&self, tx: &mut PgConnection, order_id: Uuid, request: NotificationRequest) -> Result<(), AppError> {
        let notice =
            format!("Dear {}, your order {order_id} was cancelled; any payment is refunded.", request.customer_id);
        Ok(db::record_cancellation_notice(tx, order_id, &notice).await?)
    }

    async fn read(&self, conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Notification>, sqlx::Error> {
        db::fetch_notification(conn, order_id).await
    }
}
