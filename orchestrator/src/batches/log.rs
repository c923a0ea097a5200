//! The batch operations' SQL: a batch and its matched sagas are written in one transaction;
//! a batch is claimed under a lease like a saga; each saga's result is written once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use saga_engine::log::SagaFilter;
use saga_shared::api::{BatchAction, BatchFilter, BatchItem, BatchResult, BatchStatus, BatchView};
use sqlx::{PgPool, types::Json};
use uuid::Uuid;

/// A batch to create: what the request asked, resolved.
#[derive(Debug)]
pub struct NewBatch<'a> {
    pub id: Uuid,
    pub action: BatchAction,
    /// As asked (kept with the batch).
    pub filter: &'a BatchFilter,
    /// What it means now (the age made a time).
    pub matches: SagaFilter,
    pub max: u32,
    pub operator: &'a str,
    pub reason: Option<&'a str>,
}

/// Writes the batch and the sagas it matches (oldest first, at most `max`) in one transaction;
/// returns how many it matched.
pub async fn create(pool: &PgPool, batch: &NewBatch<'_>) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "insert into batch_operations (id, action, filter, max_sagas, operator, reason) values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(batch.id)
    .bind(batch.action.as_str())
    .bind(Json(batch.filter))
    .bind(i32::try_from(batch.max).unwrap_or(i32::MAX))
    .bind(batch.operator)
    .bind(batch.reason)
    .execute(&mut *tx)
    .await?;
    let mut select =
        sqlx::QueryBuilder::new("insert into batch_operation_items (batch_id, order_id, position) select ");
    select
        .push_bind(batch.id)
        .push(", order_id, row_number() over (order by created_at, order_id) from (select order_id, created_at from sagas where true");
    batch.matches.push_conditions(&mut select);
    select.push(" order by created_at, order_id limit ").push_bind(i64::from(batch.max)).push(") matched");
    let matched = select.build().execute(&mut *tx).await?.rows_affected();
    // Nothing matched: done at once, no worker needed.
    sqlx::query(
        "update batch_operations set matched = $2, \
         status = case when $2 = 0 then 'done' else status end, \
         finished_at = case when $2 = 0 then now() end where id = $1",
    )
    .bind(batch.id)
    .bind(i32::try_from(matched).unwrap_or(i32::MAX))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(matched)
}

/// A batch this instance now drives.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub action: BatchAction,
    pub operator: String,
    pub reason: Option<String>,
}

/// Claims the oldest running batch nobody drives (or that this instance drove before a
/// failure), for one lease.
pub async fn claim(pool: &PgPool, owner: &str, lease: Duration) -> Result<Option<Claimed>, sqlx::Error> {
    sqlx::query_as(
        r#"update batch_operations set owner = $1, lease_expires_at = now() + $2 * interval '1 millisecond'
           where id = (select id from batch_operations
                       where status = 'running' and (owner is null or owner = $1 or lease_expires_at < now())
                       order by created_at limit 1 for update skip locked)
           returning id, action, operator, reason"#,
    )
    .bind(owner)
    .bind(lease.as_secs_f64() * 1000.0)
    .fetch_optional(pool)
    .await
}

/// Extends the lease while `owner` still holds it; `false` once another instance took it.
pub async fn renew(pool: &PgPool, id: Uuid, owner: &str, lease: Duration) -> Result<bool, sqlx::Error> {
    let renewed = sqlx::query(
        "update batch_operations set lease_expires_at = now() + $3 * interval '1 millisecond' \
         where id = $1 and owner = $2 and status = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(lease.as_secs_f64() * 1000.0)
    .execute(pool)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

/// Gives the batch up (this process stops), for another instance to go on with.
pub async fn release(pool: &PgPool, id: Uuid, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update batch_operations set owner = null, lease_expires_at = null where id = $1 and owner = $2")
        .bind(id)
        .bind(owner)
        .execute(pool)
        .await?;
    Ok(())
}

/// The next sagas still to be acted on, in order.
pub async fn pending(pool: &PgPool, id: Uuid, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select order_id from batch_operation_items where batch_id = $1 and result is null order by position limit $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Whether `order_id`'s timeline already has an operator event of this batch (its detail starts
/// with `marker`): the action landed, but the process died before writing its result.
pub async fn acted_before(pool: &PgPool, order_id: Uuid, marker: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from saga_events where order_id = $1 and kind = 'operator' \
         and left(detail, length($2)) = $2)",
    )
    .bind(order_id)
    .bind(marker)
    .fetch_one(pool)
    .await
}

/// Writes one saga's result, once (a result already written stays), and only while `owner`
/// still drives the batch (an instance that lost it must not write over its successor).
pub async fn record(
    pool: &PgPool,
    id: Uuid,
    owner: &str,
    order_id: Uuid,
    result: BatchResult,
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update batch_operation_items set result = $3, detail = $4, acted_at = now() \
         where batch_id = $1 and order_id = $2 and result is null \
           and exists (select 1 from batch_operations where id = $1 and owner = $5)",
    )
    .bind(id)
    .bind(order_id)
    .bind(result.as_str())
    .bind(detail)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks the batch done once no saga of it is left, if `owner` still holds it.
pub async fn finish(pool: &PgPool, id: Uuid, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update batch_operations set status = 'done', finished_at = now(), owner = null, lease_expires_at = null \
         where id = $1 and owner = $2 \
           and not exists (select 1 from batch_operation_items where batch_id = $1 and result is null)",
    )
    .bind(id)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct BatchRow {
    id: Uuid,
    #[sqlx(try_from = "String")]
    action: BatchAction,
    #[sqlx(try_from = "String")]
    status: BatchStatus,
    filter: Json<BatchFilter>,
    max_sagas: i32,
    operator: String,
    reason: Option<String>,
    matched: i32,
    owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    done: i64,
    refused: i64,
    failed: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct ItemRow {
    order_id: Uuid,
    result: Option<String>,
    detail: Option<String>,
    acted_at: Option<DateTime<Utc>>,
}

/// The batch and its progress (with each saga's result when `results`); `None` if unknown.
pub async fn view(pool: &PgPool, id: Uuid, results: bool) -> Result<Option<BatchView>, sqlx::Error> {
    let row: Option<BatchRow> = sqlx::query_as(
        r#"select b.id, b.action, b.status, b.filter, b.max_sagas, b.operator, b.reason, b.matched, b.owner,
                  b.lease_expires_at, b.created_at, b.finished_at,
                  count(*) filter (where i.result = 'done') as done,
                  count(*) filter (where i.result = 'refused') as refused,
                  count(*) filter (where i.result = 'failed') as failed
           from batch_operations b left join batch_operation_items i on i.batch_id = b.id
           where b.id = $1 group by b.id"#,
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let items = if results {
        let rows: Vec<ItemRow> = sqlx::query_as(
            "select order_id, result, detail, acted_at from batch_operation_items where batch_id = $1 order by position",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        Some(
            rows.into_iter()
                .map(|item| BatchItem {
                    order_id: item.order_id,
                    result: item.result.as_deref().and_then(BatchResult::parse),
                    detail: item.detail,
                    acted_at: item.acted_at,
                })
                .collect(),
        )
    } else {
        None
    };
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let matched = count(i64::from(row.matched));
    let acted = count(row.done) + count(row.refused) + count(row.failed);
    let live = row.lease_expires_at.is_some_and(|until| until > Utc::now());
    Ok(Some(BatchView {
        id: row.id,
        action: row.action,
        status: row.status,
        filter: row.filter.0,
        max: u32::try_from(row.max_sagas).unwrap_or(0),
        operator: row.operator,
        reason: row.reason,
        matched,
        done: count(row.done),
        refused: count(row.refused),
        failed: count(row.failed),
        pending: matched.saturating_sub(acted),
        owner: row.owner.filter(|_| live),
        created_at: row.created_at,
        finished_at: row.finished_at,
        results: items,
    }))
}
