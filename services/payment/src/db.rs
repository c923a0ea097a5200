//! Payment's SQL: small functions on a connection; the caller owns the transaction.

use chrono::{DateTime, Utc};
use saga_shared::{
    api::{Account, Payment, PaymentStatus, RecordState},
    ledger::StepTable,
};
use sqlx::PgConnection;
use uuid::Uuid;

/// The step ledger table.
pub const PAYMENTS: StepTable = StepTable("payments");

/// Takes `amount` from the customer's balance if it covers it and the card is not declined.
/// Returns whether the money was taken.
pub async fn debit(conn: &mut PgConnection, customer_id: &str, amount: i64) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        r#"update accounts set balance_cents = balance_cents - $2
           where customer_id = $1 and not always_decline and balance_cents >= $2"#,
    )
    .bind(customer_id)
    .bind(amount)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// An account as a batch of debits sees it, locked.
#[derive(Debug, sqlx::FromRow)]
pub struct BalanceRow {
    pub customer_id: String,
    pub balance_cents: i64,
    pub always_decline: bool,
}

/// Locks the accounts of `customers` in the order of their ids, as every batch does, so that two
/// batches wanting the same accounts queue rather than deadlock over them.
pub async fn lock_accounts(conn: &mut PgConnection, customers: &[String]) -> Result<Vec<BalanceRow>, sqlx::Error> {
    sqlx::query_as(
        r#"select customer_id, balance_cents, always_decline from accounts
           where customer_id = any($1) order by customer_id for update"#,
    )
    .bind(customers)
    .fetch_all(conn)
    .await
}

/// Takes each `(customer, amount)` from its balance (one entry per customer), only where the
/// balance covers it and the card is not declined. Returns how many accounts were debited: fewer
/// than `debits` means the batch must fail.
pub async fn debit_all(conn: &mut PgConnection, debits: &[(String, i64)]) -> Result<u64, sqlx::Error> {
    let (customers, amounts): (Vec<&str>, Vec<i64>) = debits.iter().map(|(c, a)| (c.as_str(), *a)).unzip();
    Ok(sqlx::query(
        r#"update accounts a set balance_cents = a.balance_cents - d.amount
           from unnest($1::text[], $2::bigint[]) as d(customer_id, amount)
           where a.customer_id = d.customer_id and not a.always_decline and a.balance_cents >= d.amount"#,
    )
    .bind(&customers)
    .bind(&amounts)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Gives `amount` back to the customer. Returns whether the account exists.
pub async fn credit(conn: &mut PgConnection, customer_id: &str, amount: i64) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query("update accounts set balance_cents = balance_cents + $2 where customer_id = $1")
        .bind(customer_id)
        .bind(amount)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(updated == 1)
}

/// Why a debit was refused: `None` when the customer does not exist, else `always_decline`.
pub async fn decline_reason(conn: &mut PgConnection, customer_id: &str) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("select always_decline from accounts where customer_id = $1")
        .bind(customer_id)
        .fetch_optional(conn)
        .await
}

/// One account.
pub async fn fetch_account(conn: &mut PgConnection, customer_id: &str) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as::<_, (String, i64)>("select customer_id, balance_cents from accounts where customer_id = $1")
        .bind(customer_id)
        .fetch_optional(conn)
        .await
        .map(|row| row.map(|(customer_id, balance_cents)| Account { customer_id, balance_cents }))
}

#[derive(Debug, sqlx::FromRow)]
struct PaymentRow {
    order_id: Uuid,
    #[sqlx(try_from = "String")]
    state: RecordState,
    tombstone: bool,
    customer_id: Option<String>,
    amount_cents: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The payment of `order_id`, if any.
pub async fn fetch_payment(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Payment>, sqlx::Error> {
    let row: Option<PaymentRow> = sqlx::query_as(
        r#"select order_id, state, tombstone, customer_id, amount_cents, created_at, updated_at
           from payments where order_id = $1"#,
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| Payment {
        order_id: row.order_id,
        status: PaymentStatus::from(row.state),
        tombstone: row.tombstone,
        customer_id: row.customer_id,
        amount_cents: row.amount_cents,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }))
}
