//! Inventory's SQL: small functions on a connection; the caller owns the transaction.

use chrono::{DateTime, Utc};
use saga_shared::{
    api::{Product, RecordState, Reservation, ReservationRequest, ReservationStatus},
    ledger::StepTable,
};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// The step ledger table.
pub const RESERVATIONS: StepTable = StepTable("reservations");

/// A product row locked for this transaction.
#[derive(Debug, sqlx::FromRow)]
pub struct StockRow {
    pub sku: String,
    pub price_cents: i64,
    pub available: i32,
}

/// Locks the products of `skus` in sku order (so concurrent multi-line reservations cannot
/// deadlock) and returns those that exist.
pub async fn lock_products(conn: &mut PgConnection, skus: &[String]) -> Result<Vec<StockRow>, sqlx::Error> {
    sqlx::query_as(
        r#"select sku, price_cents, available from products
           where sku = any($1) order by sku for update"#,
    )
    .bind(skus)
    .fetch_all(conn)
    .await
}

/// Takes `quantity` of each sku (each sku once) from `available` into `reserved`, only where
/// enough is available.
/// Returns how many products were updated: fewer than `lines` means the reservation must fail.
pub async fn take_stock(conn: &mut PgConnection, lines: &[(String, i64)]) -> Result<u64, sqlx::Error> {
    let (skus, quantities): (Vec<&str>, Vec<i64>) = lines.iter().map(|(s, q)| (s.as_str(), *q)).unzip();
    Ok(sqlx::query(
        r#"update products p
           set available = p.available - r.quantity, reserved = p.reserved + r.quantity
           from unnest($1::text[], $2::bigint[]) as r(sku, quantity)
           where p.sku = r.sku and p.available >= r.quantity"#,
    )
    .bind(&skus)
    .bind(&quantities)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Gives reserved quantities back to `available`.
pub async fn return_stock(conn: &mut PgConnection, lines: &[(String, i64)]) -> Result<u64, sqlx::Error> {
    let (skus, quantities): (Vec<&str>, Vec<i64>) = lines.iter().map(|(s, q)| (s.as_str(), *q)).unzip();
    Ok(sqlx::query(
        r#"update products p
           set available = p.available + r.quantity, reserved = p.reserved - r.quantity
           from unnest($1::text[], $2::bigint[]) as r(sku, quantity)
           where p.sku = r.sku and p.reserved >= r.quantity"#,
    )
    .bind(&skus)
    .bind(&quantities)
    .execute(conn)
    .await?
    .rows_affected())
}

#[derive(Debug, sqlx::FromRow)]
struct ReservationRow {
    order_id: Uuid,
    #[sqlx(try_from = "String")]
    state: RecordState,
    tombstone: bool,
    request: Option<Value>,
    total_cents: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The reservation of `order_id`, if any.
pub async fn fetch_reservation(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Reservation>, sqlx::Error> {
    let row: Option<ReservationRow> = sqlx::query_as(
        r#"select order_id, state, tombstone, request, total_cents, created_at, updated_at
           from reservations where order_id = $1"#,
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| {
        let items = row
            .request
            .and_then(|r| serde_json::from_value::<ReservationRequest>(r).ok())
            .map(|r| r.items.as_slice().to_vec())
            .unwrap_or_default();
        Reservation {
            order_id: row.order_id,
            status: ReservationStatus::from(row.state),
            tombstone: row.tombstone,
            items,
            total_cents: row.total_cents.unwrap_or(0),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }))
}

/// One product.
pub async fn fetch_product(conn: &mut PgConnection, sku: &str) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query_as::<_, (String, String, i64, i32, i32)>(
        "select sku, name, price_cents, available, reserved from products where sku = $1",
    )
    .bind(sku)
    .fetch_optional(conn)
    .await
    .map(|row| row.map(product))
}

/// Every product, by sku.
pub async fn list_products(conn: &mut PgConnection) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query_as::<_, (String, String, i64, i32, i32)>(
        "select sku, name, price_cents, available, reserved from products order by sku limit 1000",
    )
    .fetch_all(conn)
    .await
    .map(|rows| rows.into_iter().map(product).collect())
}

fn product((sku, name, price_cents, available, reserved): (String, String, i64, i32, i32)) -> Product {
    Product { sku, name, price_cents, available, reserved }
}
