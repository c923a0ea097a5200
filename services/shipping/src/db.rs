//! Shipping's SQL: small functions on a connection; the caller owns the transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use saga_shared::{
    api::{RecordState, Shipment, ShipmentStatus},
    ledger::StepTable,
};
use sqlx::PgConnection;
use uuid::Uuid;

/// The step ledger table.
pub const SHIPMENTS: StepTable = StepTable("shipments");

/// Why no carrier delivers to `country`, if none does.
pub async fn undeliverable_reason(conn: &mut PgConnection, country: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("select reason from undeliverable_countries where country = $1")
        .bind(country)
        .fetch_optional(conn)
        .await
}

/// Why no carrier delivers to each of `countries` that none does, keyed by country.
pub async fn undeliverable_reasons(
    conn: &mut PgConnection,
    countries: &[&str],
) -> Result<HashMap<String, String>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("select country, reason from undeliverable_countries where country = any($1)")
            .bind(countries)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().collect())
}

#[derive(Debug, sqlx::FromRow)]
struct ShipmentRow {
    order_id: Uuid,
    #[sqlx(try_from = "String")]
    state: RecordState,
    tombstone: bool,
    tracking_number: Option<String>,
    country: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The shipment of `order_id`, if any.
pub async fn fetch_shipment(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Shipment>, sqlx::Error> {
    let row: Option<ShipmentRow> = sqlx::query_as(
        r#"select order_id, state, tombstone, tracking_number, country, created_at, updated_at
           from shipments where order_id = $1"#,
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| Shipment {
        order_id: row.order_id,
        status: ShipmentStatus::from(row.state),
        tombstone: row.tombstone,
        tracking_number: row.tracking_number,
        country: row.country,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }))
}
