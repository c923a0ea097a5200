//! Notification's SQL: small functions on a connection; the caller owns the transaction.

use chrono::{DateTime, Utc};
use saga_shared::{
    api::{Notification, NotificationStatus, RecordState},
    ledger::StepTable,
};
use sqlx::PgConnection;
use uuid::Uuid;

/// The step ledger table.
pub const NOTIFICATIONS: StepTable = StepTable("notifications");

/// Records the cancellation notice sent for a confirmed order.
pub async fn record_cancellation_notice(
    conn: &mut PgConnection,
    order_id: Uuid,
    notice: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("update notifications set cancellation_notice = $2 where order_id = $1")
        .bind(order_id)
        .bind(notice)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct NotificationRow {
    order_id: Uuid,
    #[sqlx(try_from = "String")]
    state: RecordState,
    tombstone: bool,
    customer_id: Option<String>,
    confirmation: Option<String>,
    cancellation_notice: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The notification record of `order_id`, if any.
pub async fn fetch_notification(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Notification>, sqlx::Error> {
    let row: Option<NotificationRow> = sqlx::query_as(
        r#"select order_id, state, tombstone, customer_id, confirmation, cancellation_notice, created_at, updated_at
           from notifications where order_id = $1"#,
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| Notification {
        order_id: row.order_id,
        status: NotificationStatus::from(row.state),
        tombstone: row.tombstone,
        customer_id: row.customer_id,
        confirmation: row.confirmation,
        cancellation_notice: row.cancellation_notice,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }))
}
