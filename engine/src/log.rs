//! The durable saga log: SQL over `sagas` and `saga_events`.
//!
//! Every state change is one statement that updates the saga row (fenced on its version) and
//! appends its events, so the log never holds an event for a state that was not written, and a
//! paused or fenced-out instance cannot overwrite newer progress.

use std::{sync::LazyLock, time::Duration};

use chrono::{DateTime, Utc};
use saga_shared::api::{EventKind, EventOutcome, OrderRequest, SagaEvent, SagaStatus};
use serde_json::Value;
use sqlx::{PgPool, types::Json};
use uuid::Uuid;

use super::{
    definition::Outputs,
    machine::{Actor, NewEvent},
    state::{Saga, StepState},
};

const SAGA_COLUMNS: &str = "order_id, request, status, step_index, steps, outputs, failure_reason, dead_letter, \
     version, deadline_at, compensation_deadline_at, next_run_at, created_at, updated_at, trace_context, owner, lease_expires_at";

#[derive(Debug, sqlx::FromRow)]
struct SagaRow {
    order_id: Uuid,
    request: Json<OrderRequest>,
    #[sqlx(try_from = "String")]
    status: SagaStatus,
    step_index: i32,
    steps: Json<Vec<StepState>>,
    outputs: Json<Outputs>,
    failure_reason: Option<String>,
    dead_letter: Option<String>,
    version: i64,
    deadline_at: DateTime<Utc>,
    compensation_deadline_at: Option<DateTime<Utc>>,
    next_run_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    trace_context: Option<String>,
    owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
}

impl TryFrom<SagaRow> for Saga {
    type Error = sqlx::Error;
    fn try_from(row: SagaRow) -> Result<Self, Self::Error> {
        Ok(Saga {
            order_id: row.order_id,
            request: row.request.0,
            status: row.status,
            step_index: usize::try_from(row.step_index).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            steps: row.steps.0,
            outputs: row.outputs.0,
            failure_reason: row.failure_reason,
            dead_letter: row.dead_letter,
            version: row.version,
            deadline_at: row.deadline_at,
            compensation_deadline_at: row.compensation_deadline_at,
            next_run_at: row.next_run_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            trace_context: row.trace_context,
            owner: row.owner,
            lease_expires_at: row.lease_expires_at,
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

/// Writes a new saga and its `started` event, owned by `owner` for one lease.
pub async fn insert(
    pool: &PgPool,
    saga: &Saga,
    started: &NewEvent,
    idempotency_key: Option<&str>,
    owner: &str,
    lease: Duration,
) -> Result<Inserted, sqlx::Error> {
    let created: Option<Uuid> = sqlx::query_scalar(
        r#"with ins as (
               insert into sagas (order_id, idempotency_key, request, status, steps, owner, lease_expires_at,
                                  deadline_at, next_run_at, created_at, updated_at, progressed_at, trace_context)
               values ($1, $2, $3, $9, $4, $5, now() + $6 * interval '1 millisecond', $7, $8, $8, $8, $8, $12)
               on conflict (idempotency_key) do nothing
               returning order_id),
           ev as (
               insert into saga_events (order_id, kind, outcome, actor)
               select order_id, $10, $11, $5 from ins)
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
    .bind(saga.status.as_str())
    .bind(started.kind.as_str())
    .bind(started.outcome.as_str())
    .bind(saga.trace_context.as_deref())
    .fetch_optional(pool)
    .await?;
    if created.is_some() {
        return Ok(Inserted::Created);
    }
    // The key is taken; the conflicting insert has committed (we waited for it on the index).
    let existing: SagaRow =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("select {SAGA_COLUMNS} from sagas where idempotency_key = $1")))
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

/// Event columns for `unnest`, with each event's actor resolved (`Actor::Instance` is `instance`).
struct EventColumns<'a> {
    kinds: Vec<&'static str>,
    steps: Vec<Option<&'static str>>,
    attempts: Vec<Option<i32>>,
    outcomes: Vec<&'static str>,
    details: Vec<Option<&'a str>>,
    actors: Vec<&'a str>,
}

impl<'a> EventColumns<'a> {
    fn new(events: impl IntoIterator<Item = &'a NewEvent>, instance: &'a str) -> Self {
        let events = events.into_iter().collect::<Vec<_>>();
        Self {
            kinds: events.iter().map(|e| e.kind.as_str()).collect(),
            steps: events.iter().map(|e| e.step).collect(),
            attempts: events.iter().map(|e| e.attempt.and_then(|a| i32::try_from(a).ok())).collect(),
            outcomes: events.iter().map(|e| e.outcome.as_str()).collect(),
            details: events.iter().map(|e| e.detail.as_deref()).collect(),
            actors: events
                .iter()
                .map(|e| match &e.actor {
                    Actor::Instance => instance,
                    Actor::Operator(name) => name.as_str(),
                })
                .collect(),
        }
    }
}

/// Writes the saga's state and appends `events`, if the row is still at `saga.version`; the
/// saga stays owned by `lease.owner`, who is the actor of the instance's events. Returns false
/// when fenced out (someone else wrote since). On success `saga.version` and `saga.updated_at`
/// are the written ones.
pub async fn save(
    pool: &PgPool,
    saga: &mut Saga,
    lease: Lease<'_>,
    progressed: bool,
    events: &[NewEvent],
) -> Result<bool, sqlx::Error> {
    let written = save_all(pool, &[(saga, progressed, events)], lease).await?;
    Ok(match written.first() {
        Some(&Some((version, updated_at))) => {
            saga.version = version;
            saga.updated_at = updated_at;
            true
        }
        _ => false,
    })
}

/// One save: the saga as it is to be written, whether it progressed, its new events.
pub type Save<'a> = (&'a Saga, bool, &'a [NewEvent]);

/// The group commit's statement (see [`save`]); terminal statuses release the lease. Built once:
/// the statuses come from [`SagaStatus::TERMINAL`].
static SAVE_SQL: LazyLock<String> = LazyLock::new(|| {
    let terminal = SagaStatus::sql_list(&SagaStatus::TERMINAL);
    format!(
        r#"with input as (
               select * from unnest($1::uuid[], $2::int8[], $3::text[], $4::int4[], $5::jsonb[], $6::jsonb[],
                                    $7::text[], $8::timestamptz[], $9::timestamptz[], $10::bool[], $11::text[])
                   with ordinality
                   as i(order_id, version, status, step_index, steps, outputs, failure_reason,
                        compensation_deadline_at, next_run_at, progressed, dead_letter, n)),
           upd as (
               update sagas s set
                   status = i.status, step_index = i.step_index, steps = i.steps, outputs = i.outputs,
                   failure_reason = i.failure_reason, compensation_deadline_at = i.compensation_deadline_at,
                   next_run_at = i.next_run_at, dead_letter = i.dead_letter,
                   owner = case when i.status in ({terminal}) then null else $12 end,
                   lease_expires_at = case when i.status in ({terminal}) then null
                                           else greatest(now(), i.next_run_at) + $13 * interval '1 millisecond' end,
                   version = s.version + 1,
                   updated_at = now(),
                   progressed_at = case when i.progressed then now() else s.progressed_at end,
                   finished_at = case when i.status in ({terminal}) then now() end
               from input i
               where s.order_id = i.order_id and s.version = i.version
               returning i.n, s.version, s.updated_at),
           ev as (
               insert into saga_events (order_id, kind, step, attempt, outcome, detail, actor)
               select i.order_id, e.kind, e.step, e.attempt, e.outcome, e.detail, e.actor
               from unnest($14::int8[], $15::text[], $16::text[], $17::int[], $18::text[], $19::text[], $20::text[])
                    with ordinality as e(save, kind, step, attempt, outcome, detail, actor, m)
               join upd on upd.n = e.save
               join input i on i.n = e.save
               order by e.m)
           select n, version, updated_at from upd"#
    )
});

/// Writes every save of `batch` in one statement: each row is updated if it is still at its
/// saga's version, and only the written saves' events are appended, in each save's order; every
/// written row stays owned by `lease.owner`, the actor of the instance's events. The answer has
/// one entry per save, in the batch's order: the written version and time, or `None` when that
/// save was fenced out. Saves are told apart by their position, not by saga: two saves of one
/// saga at one version (two drivers that should not both exist) get one `Some` and one `None`,
/// and only the written one's events are appended. The executor's saves come here batched by
/// [`super::group_commit`], which never puts two saves of one saga in one batch; [`save`] is the
/// one-saga case.
pub async fn save_all(
    pool: &PgPool,
    batch: &[Save<'_>],
    lease: Lease<'_>,
) -> Result<Vec<Option<(i64, DateTime<Utc>)>>, sqlx::Error> {
    let sagas = batch.iter().map(|(saga, _, _)| *saga);
    let to_json = |value: Result<Value, serde_json::Error>| value.map_err(|e| sqlx::Error::Encode(Box::new(e)));
    let steps = sagas.clone().map(|s| to_json(serde_json::to_value(&s.steps))).collect::<Result<Vec<_>, _>>()?;
    let outputs = sagas.clone().map(|s| to_json(serde_json::to_value(&s.outputs))).collect::<Result<Vec<_>, _>>()?;
    // Each event names its save by the save's ordinal in `input` (1-based, as `with ordinality`).
    let events: Vec<(i64, &NewEvent)> =
        batch.iter().zip(1_i64..).flat_map(|((_, _, events), n)| events.iter().map(move |e| (n, e))).collect();
    let columns = EventColumns::new(events.iter().map(|(_, e)| *e), lease.owner);
    let rows: Vec<(i64, i64, DateTime<Utc>)> = sqlx::query_as(SAVE_SQL.as_str())
        .bind(sagas.clone().map(|s| s.order_id).collect::<Vec<_>>())
        .bind(sagas.clone().map(|s| s.version).collect::<Vec<_>>())
        .bind(sagas.clone().map(|s| s.status.as_str()).collect::<Vec<_>>())
        .bind(sagas.clone().map(|s| i32::try_from(s.step_index).unwrap_or(i32::MAX)).collect::<Vec<_>>())
        .bind(steps)
        .bind(outputs)
        .bind(sagas.clone().map(|s| s.failure_reason.as_deref()).collect::<Vec<_>>())
        .bind(sagas.clone().map(|s| s.compensation_deadline_at).collect::<Vec<_>>())
        .bind(sagas.clone().map(|s| s.next_run_at).collect::<Vec<_>>())
        .bind(batch.iter().map(|(_, progressed, _)| *progressed).collect::<Vec<_>>())
        .bind(sagas.clone().map(|s| s.dead_letter.as_deref()).collect::<Vec<_>>())
        .bind(lease.owner)
        .bind(millis(lease.duration))
        .bind(events.iter().map(|(n, _)| *n).collect::<Vec<_>>())
        .bind(&columns.kinds)
        .bind(&columns.steps)
        .bind(&columns.attempts)
        .bind(&columns.outcomes)
        .bind(&columns.details)
        .bind(&columns.actors)
        .fetch_all(pool)
        .await?;
    let mut written = vec![None; batch.len()];
    for (n, version, updated_at) in rows {
        let slot = usize::try_from(n - 1).ok().and_then(|i| written.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some((version, updated_at));
        }
    }
    Ok(written)
}

/// Appends `events` to the timeline of `order_id` without touching the saga (an operator's
/// request that changes nothing is still on record). `instance` is the actor of instance events.
/// Nothing is appended for a saga that does not exist (the table has no foreign key: each
/// statement that appends checks its own saga, see migration 0006).
pub async fn append(pool: &PgPool, order_id: Uuid, events: &[NewEvent], instance: &str) -> Result<(), sqlx::Error> {
    let columns = EventColumns::new(events, instance);
    sqlx::query(
        r#"insert into saga_events (order_id, kind, step, attempt, outcome, detail, actor)
           select $1, e.kind, e.step, e.attempt, e.outcome, e.detail, e.actor
           from unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[])
                with ordinality as e(kind, step, attempt, outcome, detail, actor, n)
           where exists (select from sagas where order_id = $1)
           order by e.n"#,
    )
    .bind(order_id)
    .bind(&columns.kinds)
    .bind(&columns.steps)
    .bind(&columns.attempts)
    .bind(&columns.outcomes)
    .bind(&columns.details)
    .bind(&columns.actors)
    .execute(pool)
    .await?;
    Ok(())
}

/// A saga taken over by [`claim_due`], and whose lease it was.
#[derive(Debug)]
pub struct Claimed {
    /// The saga, owned by the claimant at `saga.version`.
    pub saga: Saga,
    /// The instance whose lease expired; `None` when the saga had been released.
    pub previous_owner: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    saga: SagaRow,
    previous_owner: Option<String>,
}

/// Claims up to `limit` sagas that have work due and no live owner (released, or lease
/// expired) and returns them owned by `owner`. The claim is recorded in each timeline by the
/// state machine's `Resumed` transition, with the driver's first write. Sagas in `driven_here`
/// are left alone: their driver is alive in the claimant's own process (which may merely have
/// been paused past their lease), and one process never drives a saga twice.
pub async fn claim_due(
    pool: &PgPool,
    owner: &str,
    lease: Duration,
    limit: i64,
    driven_here: &[Uuid],
) -> Result<Vec<Claimed>, sqlx::Error> {
    let columns = SAGA_COLUMNS.split(", ").map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ");
    let rows: Vec<ClaimedRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        r#"with due as (
               select order_id, owner as previous_owner from sagas
               where status in ({open})
                 and next_run_at <= now()
                 and (owner is null or lease_expires_at < now())
                 and not (order_id = any($4))
               order by next_run_at
               limit $3
               for update skip locked)
           update sagas s set owner = $1, lease_expires_at = now() + $2 * interval '1 millisecond',
                              version = s.version + 1
           from due where s.order_id = due.order_id
           returning {columns}, due.previous_owner"#,
        open = SagaStatus::sql_list(&SagaStatus::OPEN)
    )))
    .bind(owner)
    .bind(millis(lease))
    .bind(limit)
    .bind(driven_here)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|row| Ok(Claimed { saga: row.saga.try_into()?, previous_owner: row.previous_owner })).collect()
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

/// Extends the lease of a saga this instance still holds at `version`, changing nothing else
/// (no new version: nothing about the saga changed). `false` when another instance or an
/// operator wrote it since.
pub async fn renew(pool: &PgPool, order_id: Uuid, version: i64, lease: Lease<'_>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update sagas set lease_expires_at = greatest(lease_expires_at, now() + $4 * interval '1 millisecond')
         where order_id = $1 and version = $2 and owner = $3",
    )
    .bind(order_id)
    .bind(version)
    .bind(lease.owner)
    .bind(millis(lease.duration))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The saga of `order_id`.
pub async fn load(pool: &PgPool, order_id: Uuid) -> Result<Option<Saga>, sqlx::Error> {
    let row: Option<SagaRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("select {SAGA_COLUMNS} from sagas where order_id = $1")))
            .bind(order_id)
            .fetch_optional(pool)
            .await?;
    row.map(Saga::try_from).transpose()
}

/// Which sagas a list, a count or a batch operation is about: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct SagaFilter {
    /// Only sagas in this status.
    pub status: Option<SagaStatus>,
    /// Only sagas whose id lies in this range, both ends included (a search by id prefix; a
    /// range whose first end is after its last matches nothing).
    pub id_range: Option<(Uuid, Uuid)>,
    /// Only this customer's orders.
    pub customer_id: Option<String>,
    /// Only sagas whose current step (forward or backward) has this index.
    pub step_index: Option<i32>,
    /// Only sagas whose failure reason contains this text (any case).
    pub reason: Option<String>,
    /// Only sagas accepted at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only sagas accepted before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Only sagas in flight without progress for this long (what `saga_stuck` counts).
    pub stuck_for: Option<Duration>,
}

impl SagaFilter {
    /// Appends ` and …` for each condition to a statement over `sagas` that already has a
    /// `where`. Each combination of filters is its own statement (no `$1 is null or …`), so each
    /// gets a plan on its own index.
    pub fn push_conditions(&self, query: &mut sqlx::QueryBuilder<sqlx::Postgres>) {
        if let Some(status) = self.status {
            query.push(" and status = ").push_bind(status.as_str());
        }
        if let Some((first, last)) = self.id_range {
            query.push(" and order_id between ").push_bind(first).push(" and ").push_bind(last);
        }
        if let Some(customer_id) = &self.customer_id {
            query.push(" and request ->> 'customer_id' = ").push_bind(customer_id.clone());
        }
        if let Some(step_index) = self.step_index {
            query.push(" and step_index = ").push_bind(step_index);
        }
        if let Some(reason) = &self.reason {
            // A substring, not a pattern: the operator's `%` and `_` are literal.
            let escaped = reason.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            // What the view shows as `failure_reason`: the cause, then the dead-letter note.
            query.push(" and concat_ws('; ', failure_reason, dead_letter) ilike ").push_bind(format!("%{escaped}%"));
        }
        if let Some(after) = self.created_after {
            query.push(" and created_at >= ").push_bind(after);
        }
        if let Some(before) = self.created_before {
            query.push(" and created_at < ").push_bind(before);
        }
        if let Some(stuck_for) = self.stuck_for {
            query
                .push(format!(
                    " and status in ({}) and progressed_at < now() - ",
                    SagaStatus::sql_list(&SagaStatus::OPEN)
                ))
                .push_bind(millis(stuck_for))
                .push(" * interval '1 millisecond'");
        }
    }
}

/// The sagas `filter` selects, newest first (ties broken by id, so the order is total), at most
/// `limit`, after the position `before` (keyset pagination: a page is one short index scan
/// however deep it is and however many sagas there are).
pub async fn list(
    pool: &PgPool,
    filter: &SagaFilter,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Saga>, sqlx::Error> {
    let mut query = sqlx::QueryBuilder::new(format!("select {SAGA_COLUMNS} from sagas where true"));
    filter.push_conditions(&mut query);
    if let Some((created_at, order_id)) = before {
        query.push(" and (created_at, order_id) < (").push_bind(created_at).push(", ").push_bind(order_id).push(")");
    }
    query.push(" order by created_at desc, order_id desc limit ").push_bind(limit);
    let rows: Vec<SagaRow> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(Saga::try_from).collect()
}

/// How many sagas `filter` selects in each status (its own status condition aside), each
/// counted up to `cap` + 1: a count above `cap` means "more than `cap`". Each status is counted
/// on its own index range (`sagas_status_created_id`) and stops at `cap` + 1 matches, so without
/// other conditions a count costs at most that many index entries per status however large the
/// log (a customer, step or reason condition reads the status's entries until enough match, as
/// the list does).
pub async fn count_by_status(
    pool: &PgPool,
    filter: &SagaFilter,
    cap: i64,
) -> Result<Vec<(SagaStatus, i64)>, sqlx::Error> {
    let filter = SagaFilter { status: None, ..filter.clone() };
    let mut query = sqlx::QueryBuilder::new("");
    for (i, status) in SagaStatus::ALL.iter().enumerate() {
        if i > 0 {
            query.push(" union all ");
        }
        query
            .push("(select ")
            .push_bind(status.as_str())
            .push("::text, count(*) from (select 1 from sagas where status = ")
            .push_bind(status.as_str());
        filter.push_conditions(&mut query);
        // The newest first, as the index keeps them: without an order, a status that holds most
        // of the table could be read from the table itself, which stops early but still counts
        // as a scan of all of it.
        query.push(" order by created_at desc limit ").push_bind(cap.saturating_add(1)).push(") counted)");
    }
    let rows: Vec<(String, i64)> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter()
        .map(|(status, count)| {
            SagaStatus::try_from(status).map(|s| (s, count)).map_err(|e| sqlx::Error::Decode(e.into()))
        })
        .collect()
}

/// Where `order_id` sits in the list (its `created_at` and id), to page after it; `None` when
/// there is no such saga.
pub async fn list_position(pool: &PgPool, order_id: Uuid) -> Result<Option<(DateTime<Utc>, Uuid)>, sqlx::Error> {
    sqlx::query_as("select created_at, order_id from sagas where order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    id: i64,
    at: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    kind: EventKind,
    step: Option<String>,
    attempt: Option<i32>,
    #[sqlx(try_from = "String")]
    outcome: EventOutcome,
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
    #[sqlx(try_from = "String")]
    pub status: SagaStatus,
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
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        r#"select status, step_index, count(*) as count,
                  count(*) filter (where progressed_at < now() - $1 * interval '1 millisecond') as stuck,
                  coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as oldest_age_seconds
           from sagas where status in ({open})
           group by status, step_index"#,
        open = SagaStatus::sql_list(&SagaStatus::OPEN)
    )))
    .bind(millis(stuck_after))
    .fetch_all(pool)
    .await
}

/// How many sagas are `failed` (need an operator).
pub async fn failed_count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from sagas where status = 'failed'").fetch_one(pool).await
}
