//! The durable saga log: SQL over `sagas` and `saga_events`.
//!
//! Every state change is one statement that updates the saga row (fenced on its version) and
//! appends its events, so the log never holds an event for a state that was not written, and a
//! paused or fenced-out instance cannot overwrite newer progress.

use std::time::Duration;

use chrono::{DateTime, Utc};
use saga_shared::api::{OrderRequest, SagaEvent, SagaStatus};
use sqlx::{types::Json, PgPool};
use uuid::Uuid;

use super::{definition::Outputs, state::Saga, state::StepState};

/// One timeline entry to append.
#[derive(Debug, Clone)]
pub struct Event {
    /// `saga`, `action`, `compensation`, `reconcile` or `operator`.
    pub kind: &'static str,
    /// The step concerned.
    pub step: Option<String>,
    /// The attempt number.
    pub attempt: Option<i32>,
    /// What came of it.
    pub outcome: String,
    /// Details.
    pub detail: Option<String>,
    /// Who caused it.
    pub actor: String,
}

const SAGA_COLUMNS: &str = "order_id, request, status, step_index, steps, outputs, failure_reason, version, \
     deadline_at, compensation_deadline_at, next_run_at, created_at, updated_at";

#[derive(Debug, sqlx::FromRow)]
struct SagaRow {
    order_id: Uuid,
    request: Json<OrderRequest>,
    status: String,
    step_index: i32,
    steps: Json<Vec<StepState>>,
    outputs: Json<Outputs>,
    failure_reason: Option<String>,
    version: i64,
    deadline_at: DateTime<Utc>,
    compensation_deadline_at: Option<DateTime<Utc>>,
    next_run_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<SagaRow> for Saga {
    type Error = sqlx::Error;
    fn try_from(row: SagaRow) -> Result<Self, Self::Error> {
        let status = SagaStatus::parse(&row.status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown saga status {:?}", row.status).into()))?;
        Ok(Saga {
            order_id: row.order_id,
            request: row.request.0,
            status,
            step_index: usize::try_from(row.step_index).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            steps: row.steps.0,
            outputs: row.outputs.0,
            failure_reason: row.failure_reason,
            version: row.version,
            deadline_at: row.deadline_at,
            compensation_deadline_at: row.compensation_deadline_at,
            next_run_at: row.next_run_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Outcome of inserting a new saga.
#[derive(Debug)]
pub enum Inserted {
    /// Written, owned by the caller at version 0.
    Created,
    /// The idempotency key was used before: the saga it created.
    Existing(Box<Saga>),
}

/// Writes a new saga (and its `started` event), owned by `owner` for one lease.
pub async fn insert(
    pool: &PgPool,
    saga: &Saga,
    idempotency_key: Option<&str>,
    owner: &str,
    lease: Duration,
) -> Result<Inserted, sqlx::Error> {
    let created: Option<Uuid> = sqlx::query_scalar(
        r#"with ins as (
               insert into sagas (order_id, idempotency_key, request, status, steps, owner, lease_expires_at,
                                  deadline_at, next_run_at, created_at, updated_at, progressed_at)
               values ($1, $2, $3, 'pending', $4, $5, now() + $6 * interval '1 millisecond', $7, $8, $8, $8, $8)
               on conflict (idempotency_key) do nothing
               returning order_id),
           ev as (
               insert into saga_events (order_id, kind, outcome, actor)
               select order_id, 'saga', 'started', $5 from ins)
           select order_id from ins"#,
    )
    .bind(saga.order_id)
    .bind(idempotency_key)
    .bind(Json(&saga.request))
    .bind(Json(&saga.steps))
    .bind(owner)
    .bind(millis(lease))
    .bind(saga.deadline_at)
    .bind(saga.created_at)
    .fetch_optional(pool)
    .await?;
    if created.is_some() {
        return Ok(Inserted::Created);
    }
    // The key is taken; the conflicting insert has committed (we waited for it on the index).
    let existing: SagaRow = sqlx::query_as(&format!("select {SAGA_COLUMNS} from sagas where idempotency_key = $1"))
        .bind(idempotency_key)
        .fetch_one(pool)
        .await?;
    Ok(Inserted::Existing(Box::new(existing.try_into()?)))
}

/// How a write should leave the saga's ownership.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    /// The instance that keeps driving the saga.
    pub owner: &'a str,
    /// How long past the next run the claim holds without another write.
    pub duration: Duration,
}

/// Writes the saga's state and appends `events`, if the row is still at `saga.version`.
/// Returns false when fenced out (someone else wrote since). On success `saga.version` and
/// `saga.updated_at` are the written ones.
pub async fn save(
    pool: &PgPool,
    saga: &mut Saga,
    lease: Lease<'_>,
    progressed: bool,
    events: &[Event],
) -> Result<bool, sqlx::Error> {
    let kinds: Vec<&str> = events.iter().map(|e| e.kind).collect();
    let steps: Vec<Option<&str>> = events.iter().map(|e| e.step.as_deref()).collect();
    let attempts: Vec<Option<i32>> = events.iter().map(|e| e.attempt).collect();
    let outcomes: Vec<&str> = events.iter().map(|e| e.outcome.as_str()).collect();
    let details: Vec<Option<&str>> = events.iter().map(|e| e.detail.as_deref()).collect();
    let actors: Vec<&str> = events.iter().map(|e| e.actor.as_str()).collect();
    let written: Option<(i64, DateTime<Utc>)> = sqlx::query_as(
        r#"with upd as (
               update sagas set
                   status = $3, step_index = $4, steps = $5, outputs = $6, failure_reason = $7,
                   compensation_deadline_at = $8, next_run_at = $9,
                   owner = case when $3 in ('completed', 'compensated', 'failed') then null else $12 end,
                   lease_expires_at = case when $3 in ('completed', 'compensated', 'failed') then null
                                           else greatest(now(), $9) + $10 * interval '1 millisecond' end,
                   version = version + 1,
                   updated_at = now(),
                   progressed_at = case when $11 then now() else progressed_at end,
                   finished_at = case when $3 in ('completed', 'compensated', 'failed') then now() end
               where order_id = $1 and version = $2
               returning version, updated_at),
           ev as (
               insert into saga_events (order_id, kind, step, attempt, outcome, detail, actor)
               select $1, e.kind, e.step, e.attempt, e.outcome, e.detail, e.actor
               from unnest($13::text[], $14::text[], $15::int[], $16::text[], $17::text[], $18::text[])
                    with ordinality as e(kind, step, attempt, outcome, detail, actor, n)
               where exists (select 1 from upd)
               order by e.n)
           select version, updated_at from upd"#,
    )
    .bind(saga.order_id)
    .bind(saga.version)
    .bind(saga.status.as_str())
    .bind(i32::try_from(saga.step_index).unwrap_or(i32::MAX))
    .bind(Json(&saga.steps))
    .bind(Json(&saga.outputs))
    .bind(saga.failure_reason.as_deref())
    .bind(saga.compensation_deadline_at)
    .bind(saga.next_run_at)
    .bind(millis(lease.duration))
    .bind(progressed)
    .bind(lease.owner)
    .bind(&kinds)
    .bind(&steps)
    .bind(&attempts)
    .bind(&outcomes)
    .bind(&details)
    .bind(&actors)
    .fetch_optional(pool)
    .await?;
    Ok(match written {
        Some((version, updated_at)) => {
            saga.version = version;
            saga.updated_at = updated_at;
            true
        }
        None => false,
    })
}

/// Claims up to `limit` sagas that have work due and no live owner (never claimed, lease expired),
/// records the claim in their timelines, and returns them owned by `owner`.
pub async fn claim_due(pool: &PgPool, owner: &str, lease: Duration, limit: i64) -> Result<Vec<Saga>, sqlx::Error> {
    let rows: Vec<SagaRow> = sqlx::query_as(&format!(
        r#"with due as (
               select order_id, owner as previous_owner from sagas
               where status in ('pending', 'running', 'compensating')
                 and next_run_at <= now()
                 and (owner is null or lease_expires_at < now())
               order by next_run_at
               limit $3
               for update skip locked),
           claimed as (
               update sagas s set owner = $1, lease_expires_at = now() + $2 * interval '1 millisecond',
                                  version = s.version + 1
               from due where s.order_id = due.order_id
               returning s.*),
           ev as (
               insert into saga_events (order_id, kind, outcome, detail, actor)
               select due.order_id, 'saga', 'claimed',
                      case when due.previous_owner is null then 'unowned saga resumed'
                           else 'lease of ' || due.previous_owner || ' expired' end, $1
               from due)
           select {SAGA_COLUMNS} from claimed"#
    ))
    .bind(owner)
    .bind(millis(lease))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Saga::try_from).collect()
}

/// Gives up ownership (on shutdown), so another instance can resume the saga at once.
pub async fn release(pool: &PgPool, saga: &Saga) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update sagas set owner = null, lease_expires_at = null, version = version + 1 where order_id = $1 and version = $2",
    )
    .bind(saga.order_id)
    .bind(saga.version)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The saga of `order_id`.
pub async fn load(pool: &PgPool, order_id: Uuid) -> Result<Option<Saga>, sqlx::Error> {
    let row: Option<SagaRow> = sqlx::query_as(&format!("select {SAGA_COLUMNS} from sagas where order_id = $1"))
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    row.map(Saga::try_from).transpose()
}

/// The newest sagas, optionally of one status.
pub async fn list(pool: &PgPool, status: Option<SagaStatus>, limit: i64) -> Result<Vec<Saga>, sqlx::Error> {
    let rows: Vec<SagaRow> = sqlx::query_as(&format!(
        "select {SAGA_COLUMNS} from sagas where ($1::text is null or status = $1) \
         order by created_at desc, order_id desc limit $2"
    ))
    .bind(status.map(SagaStatus::as_str))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Saga::try_from).collect()
}

#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    id: i64,
    at: DateTime<Utc>,
    kind: String,
    step: Option<String>,
    attempt: Option<i32>,
    outcome: String,
    detail: Option<String>,
    actor: String,
}

/// A saga's timeline, oldest first.
pub async fn events(pool: &PgPool, order_id: Uuid) -> Result<Vec<SagaEvent>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "select id, at, kind, step, attempt, outcome, detail, actor from saga_events where order_id = $1 order by id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|e| SagaEvent {
            id: e.id,
            at: e.at,
            kind: e.kind,
            step: e.step,
            attempt: e.attempt,
            outcome: e.outcome,
            detail: e.detail,
            actor: e.actor,
        })
        .collect())
}

/// In-flight sagas grouped by status and step: count, how many made no progress for
/// `stuck_after`, and the age of the oldest (seconds).
#[derive(Debug, sqlx::FromRow)]
pub struct InFlight {
    /// Saga status.
    pub status: String,
    /// Current step index.
    pub step_index: i32,
    /// Sagas in this group.
    pub count: i64,
    /// Of which stuck.
    pub stuck: i64,
    /// Age of the oldest, seconds.
    pub oldest_age_seconds: f64,
}

/// The figures behind the in-flight, stuck and oldest-age gauges.
pub async fn in_flight(pool: &PgPool, stuck_after: Duration) -> Result<Vec<InFlight>, sqlx::Error> {
    sqlx::query_as(
        r#"select status, step_index, count(*) as count,
                  count(*) filter (where progressed_at < now() - $1 * interval '1 millisecond') as stuck,
                  coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as oldest_age_seconds
           from sagas where status in ('pending', 'running', 'compensating')
           group by status, step_index"#,
    )
    .bind(millis(stuck_after))
    .fetch_all(pool)
    .await
}

/// How many sagas are `failed` (need an operator).
pub async fn failed_count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from sagas where status = 'failed'").fetch_one(pool).await
}
