//! The idempotent step ledger every participant keeps, one row per order, in the same transaction
//! as the step's effect.
//!
//! Each participant's step table has the columns `order_id uuid primary key`, `state text`
//! (`done` | `compensated`), `request jsonb`, `response jsonb`, `tombstone boolean`,
//! `created_at`, `updated_at`, `compensated_at`, plus its own typed columns. The rules:
//! - a replayed `PUT` returns the stored response and changes nothing;
//! - a `PUT` with another body for the same order is refused;
//! - a `DELETE` of something never done inserts a tombstone, so a late `PUT` is refused;
//! - concurrent requests for one order serialize on the primary key: the first insert holds the
//!   row until its transaction ends, the others wait and then see its outcome.

use serde_json::Value;
use sqlx::PgConnection;

use crate::api::RecordState;
use uuid::Uuid;

/// The step's table, qualified by the schema search path (a constant of the service, never input).
#[derive(Debug, Clone, Copy)]
pub struct StepTable(pub &'static str);

/// What a `PUT` found when it tried to claim the order.
#[derive(Debug)]
pub enum ActionClaim {
    /// First time: the row is inserted and locked by this transaction; do the effect now.
    Fresh {
        /// The row's creation time (the transaction's), for the response.
        created_at: chrono::DateTime<chrono::Utc>,
    },
    /// Done before with the same body: answer the stored response (200).
    Replay(Value),
    /// Done before with another body (422).
    Mismatch,
    /// Compensated, or tombstoned before it ever ran (409).
    Compensated,
}

/// Claims `order_id` for a `PUT` with `request` (the normalized request body).
pub async fn claim_action(
    conn: &mut PgConnection,
    table: StepTable,
    order_id: Uuid,
    request: &Value,
) -> Result<ActionClaim, sqlx::Error> {
    let inserted: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        r#"insert into {} (order_id, state, request) values ($1, 'done', $2)
           on conflict (order_id) do nothing returning created_at"#,
        table.0
    )))
    .bind(order_id)
    .bind(request)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(created_at) = inserted {
        return Ok(ActionClaim::Fresh { created_at });
    }
    // Read committed: this statement sees the row the conflicting transaction committed.
    let (state, same_request, response): (String, bool, Option<Value>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        r#"select state, coalesce(request = $2, false), response from {} where order_id = $1"#,
        table.0
    )))
    .bind(order_id)
    .bind(request)
    .fetch_one(&mut *conn)
    .await?;
    Ok(found(parse_state(state)?, same_request, response))
}

/// What an existing ledger row means for a `PUT` with a body that is or is not `same_request`.
fn found(state: RecordState, same_request: bool, response: Option<Value>) -> ActionClaim {
    match (state, same_request, response) {
        (RecordState::Compensated, _, _) => ActionClaim::Compensated,
        (RecordState::Done, false, _) => ActionClaim::Mismatch,
        (RecordState::Done, true, Some(response)) => ActionClaim::Replay(response),
        // A done row always has a response (it is written before commit); be explicit anyway.
        (RecordState::Done, true, None) => ActionClaim::Mismatch,
    }
}

/// Stores the response a replay will return. Call in the claiming transaction, after the effect.
pub async fn store_response(
    conn: &mut PgConnection,
    table: StepTable,
    order_id: Uuid,
    response: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "update {} set response = $2, updated_at = now() where order_id = $1",
        table.0
    )))
    .bind(order_id)
    .bind(response)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a `DELETE` found when it tried to claim the order's compensation.
#[derive(Debug)]
pub enum CompensationClaim {
    /// Never done: a tombstone is now recorded; nothing to undo.
    NeverDone,
    /// Done: the row is locked; undo the effect described by `request`, then `mark_compensated`.
    Undo {
        /// The body of the `PUT` that did the step.
        request: Value,
    },
    /// Compensated before: nothing to do.
    AlreadyCompensated,
}

/// Claims `order_id` for a `DELETE`.
pub async fn claim_compensation(
    conn: &mut PgConnection,
    table: StepTable,
    order_id: Uuid,
) -> Result<CompensationClaim, sqlx::Error> {
    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"insert into {} (order_id, state, tombstone, compensated_at) values ($1, 'compensated', true, now())
           on conflict (order_id) do nothing"#,
        table.0
    )))
    .bind(order_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(CompensationClaim::NeverDone);
    }
    let (state, request): (String, Option<Value>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select state, request from {} where order_id = $1 for update",
        table.0
    )))
    .bind(order_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(match (parse_state(state)?, request) {
        (RecordState::Done, Some(request)) => CompensationClaim::Undo { request },
        _ => CompensationClaim::AlreadyCompensated,
    })
}

/// The `state` column read back (its check constraint allows only these two).
fn parse_state(state: String) -> Result<RecordState, sqlx::Error> {
    RecordState::try_from(state).map_err(|e| sqlx::Error::Decode(e.into()))
}

/// Marks a claimed `Undo` as compensated, in the same transaction as the undo.
pub async fn mark_compensated(conn: &mut PgConnection, table: StepTable, order_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "update {} set state = 'compensated', compensated_at = now(), updated_at = now() where order_id = $1",
        table.0
    )))
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`claim_action`] for many orders at once (distinct ids), in one round trip when all are new:
/// inserts every claim it can, then reads back the ledger rows of the rest. Returns each order's
/// claim, in the order of `requests`.
///
/// The batch statements here are not prepared (`persistent(false)`), so each is planned for its
/// own arrays and the table as it is now: a prepared statement's generic plan, made while the
/// table was small, joins the array with a scan of the whole table and keeps doing so as the
/// table grows, until the next analyze (seen in a profile of the benchmark: the scan's visibility
/// checks and page pruning were 5 % of the whole machine's samples; gone when unprepared).
pub async fn claim_actions(
    conn: &mut PgConnection,
    table: StepTable,
    requests: &[(Uuid, &Value)],
) -> Result<Vec<ActionClaim>, sqlx::Error> {
    let ids: Vec<Uuid> = requests.iter().map(|(id, _)| *id).collect();
    let bodies: Vec<&Value> = requests.iter().map(|(_, body)| *body).collect();
    let inserted: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        r#"insert into {} (order_id, state, request)
           select order_id, 'done', request from unnest($1::uuid[], $2::jsonb[]) as r(order_id, request)
           on conflict (order_id) do nothing returning order_id, created_at"#,
        table.0
    )))
    .persistent(false)
    .bind(&ids)
    .bind(&bodies)
    .fetch_all(&mut *conn)
    .await?;
    let mut claims: std::collections::HashMap<Uuid, ActionClaim> =
        inserted.into_iter().map(|(id, created_at)| (id, ActionClaim::Fresh { created_at })).collect();
    if claims.len() < requests.len() {
        let (others, other_bodies): (Vec<Uuid>, Vec<&Value>) =
            requests.iter().filter(|(id, _)| !claims.contains_key(id)).map(|(id, body)| (*id, *body)).unzip();
        // Read committed: this statement sees the rows the conflicting transactions committed.
        let rows: Vec<(Uuid, String, bool, Option<Value>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            r#"select t.order_id, t.state, coalesce(t.request = r.request, false), t.response
               from unnest($1::uuid[], $2::jsonb[]) as r(order_id, request) join {} t using (order_id)"#,
            table.0
        )))
        .persistent(false)
        .bind(&others)
        .bind(&other_bodies)
        .fetch_all(&mut *conn)
        .await?;
        for (id, state, same_request, response) in rows {
            claims.insert(id, found(parse_state(state)?, same_request, response));
        }
    }
    requests
        .iter()
        .map(|(id, _)| {
            claims.remove(id).ok_or_else(|| {
                sqlx::Error::Protocol(format!("order {id} was neither claimed nor found in {}", table.0))
            })
        })
        .collect()
}

/// [`store_response`] for many orders in one statement.
pub async fn store_responses(
    conn: &mut PgConnection,
    table: StepTable,
    responses: &[(Uuid, Value)],
) -> Result<(), sqlx::Error> {
    if responses.is_empty() {
        return Ok(());
    }
    let (ids, bodies): (Vec<Uuid>, Vec<&Value>) = responses.iter().map(|(id, body)| (*id, body)).unzip();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"update {} t set response = r.response, updated_at = now()
           from unnest($1::uuid[], $2::jsonb[]) as r(order_id, response) where t.order_id = r.order_id"#,
        table.0
    )))
    .persistent(false)
    .bind(&ids)
    .bind(&bodies)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes back the claims of orders whose effect refused, in the claiming transaction (as the
/// rollback of a transaction of their own would).
pub async fn drop_claims(conn: &mut PgConnection, table: StepTable, order_ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if order_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("delete from {} where order_id = any($1)", table.0)))
        .persistent(false)
        .bind(order_ids)
        .execute(conn)
        .await?;
    Ok(())
}
