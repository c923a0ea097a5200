//! `GET /console/overview`: the console's live figures, read from the saga log in one
//! statement that only touches indexes (rates over a recent window, sagas in flight by status
//! and step, stuck ones, the oldest, and the failed ones an operator must see to).

use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use saga_shared::{AppError, AppJson, AppQuery, Problem, api::SagaStatus};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, types::Json};
use utoipa::{IntoParams, ToSchema};

use super::ConsoleState;
use crate::routes::invalid_query;

/// `GET /console/overview` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct OverviewQuery {
    /// The rates are averaged over this many seconds up to now (1–300, default 10).
    #[param(minimum = 1, maximum = 300)]
    pub(super) window_s: Option<u32>,
}

/// Longest averaging window. Counting the sagas of a window reads an index entry per saga, so
/// the cost grows with the window: five minutes at 1,000 sagas/s is 300,000 entries, and beyond
/// some share of the table Postgres rightly prefers reading all of it.
const MAX_WINDOW_S: u32 = 300;

/// The console's figures.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Overview {
    /// When they were read (the database's clock).
    at: DateTime<Utc>,
    /// The window the rates are averaged over, in seconds.
    window_seconds: u32,
    /// Sagas per second over the window.
    rates: Rates,
    /// Sagas not finished (`pending`, `running`, `compensating`), by status and current step.
    in_flight: Vec<InFlightGroup>,
    /// All sagas in flight.
    in_flight_total: i64,
    /// Of those, the ones without progress for `stuck_after_ms`.
    stuck_total: i64,
    /// `STUCK_AFTER_MS`: how long without progress makes a saga stuck.
    stuck_after_ms: u64,
    /// Age of the oldest saga in flight, in seconds (`null`: none in flight).
    oldest_in_flight_age_seconds: Option<f64>,
    /// Sagas in `failed`: an operator must act (`POST /orders/{id}/retry`).
    requires_intervention: i64,
}

/// Sagas per second, averaged over the window.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Rates {
    /// Orders accepted.
    started: f64,
    /// Sagas that completed.
    completed: f64,
    /// Sagas that compensated.
    compensated: f64,
    /// Sagas that became `failed`.
    failed: f64,
}

/// Sagas in flight with one status and current step.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct InFlightGroup {
    /// `pending`, `running` or `compensating`.
    status: SagaStatus,
    /// The step being done (or, compensating, undone).
    step: String,
    /// How many.
    count: i64,
    /// Of which stuck.
    stuck: i64,
    /// Age of the oldest, in seconds.
    oldest_age_seconds: f64,
}

/// The figures as the database returns them.
#[derive(Debug, sqlx::FromRow)]
struct OverviewRow {
    at: DateTime<Utc>,
    started: i64,
    completed: i64,
    compensated: i64,
    failed: i64,
    requires_intervention: i64,
    in_flight: Json<Vec<InFlightRow>>,
}

#[derive(Debug, Deserialize)]
struct InFlightRow {
    status: SagaStatus,
    step_index: i64,
    count: i64,
    stuck: i64,
    oldest_age_seconds: f64,
}

/// One statement, each part answered from an index: accepted in the window from
/// `sagas_created_id`, finished in the window from `sagas_finished`, in flight from the partial
/// `sagas_due` (its predicate is this one), failed from `sagas_status_created_id`. The cost
/// depends on the sagas in the window and in flight, not on how many the log holds.
async fn read(pool: &PgPool, window: Duration, stuck_after: Duration) -> Result<OverviewRow, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        r#"with flight as (
               select status, step_index, count(*) as count,
                      count(*) filter (where progressed_at < now() - $2 * interval '1 millisecond') as stuck,
                      extract(epoch from now() - min(created_at))::float8 as oldest_age_seconds
               from sagas
               where status in ({open})
               group by status, step_index),
           finished as (
               select count(*) filter (where status = 'completed') as completed,
                      count(*) filter (where status = 'compensated') as compensated,
                      count(*) filter (where status = 'failed') as failed
               from sagas
               where finished_at > now() - $1 * interval '1 millisecond')
           select now() as at,
                  (select count(*) from sagas where created_at > now() - $1 * interval '1 millisecond') as started,
                  finished.completed, finished.compensated, finished.failed,
                  (select count(*) from sagas where status = 'failed') as requires_intervention,
                  (select coalesce(json_agg(flight order by status, step_index), '[]') from flight) as in_flight
           from finished"#,
        open = SagaStatus::sql_list(&SagaStatus::OPEN)
    )))
    .bind(window.as_secs_f64() * 1000.0)
    .bind(stuck_after.as_secs_f64() * 1000.0)
    .fetch_one(pool)
    .await
}

/// The step a saga at `index` is on; a saga past its last step is shown on the last.
fn step_name(step_names: &[&'static str], index: i64) -> String {
    usize::try_from(index)
        .ok()
        .and_then(|i| step_names.get(i.min(step_names.len().saturating_sub(1))))
        .map_or_else(|| format!("step {index}"), |name| (*name).to_owned())
}

fn overview(row: OverviewRow, step_names: &[&'static str], window_s: u32, stuck_after: Duration) -> Overview {
    let per_second = |count: i64| count as f64 / f64::from(window_s);
    let in_flight: Vec<InFlightGroup> = row
        .in_flight
        .0
        .into_iter()
        .map(|g| InFlightGroup {
            status: g.status,
            step: step_name(step_names, g.step_index),
            count: g.count,
            stuck: g.stuck,
            oldest_age_seconds: g.oldest_age_seconds,
        })
        .collect();
    Overview {
        at: row.at,
        window_seconds: window_s,
        rates: Rates {
            started: per_second(row.started),
            completed: per_second(row.completed),
            compensated: per_second(row.compensated),
            failed: per_second(row.failed),
        },
        in_flight_total: in_flight.iter().map(|g| g.count).sum(),
        stuck_total: in_flight.iter().map(|g| g.stuck).sum(),
        stuck_after_ms: u64::try_from(stuck_after.as_millis()).unwrap_or(u64::MAX),
        oldest_in_flight_age_seconds: in_flight.iter().map(|g| g.oldest_age_seconds).reduce(f64::max),
        requires_intervention: row.requires_intervention,
        in_flight,
    }
}

/// The console's live figures: rates, sagas in flight by status and step, stuck, oldest, and
/// those that require an operator. Every replica answers the same (all from the database).
#[utoipa::path(get, path = "/console/overview", tag = "console", params(OverviewQuery),
    responses(
        (status = 200, description = "The figures", body = Overview),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn get_overview(
    State(console): State<ConsoleState>,
    AppQuery(query): AppQuery<OverviewQuery>,
) -> Result<AppJson<Overview>, AppError> {
    let window_s = window(query.window_s)?;
    Ok(AppJson(figures(&console, window_s).await?))
}

/// The rate window asked for, checked (default 10 s).
pub(super) fn window(window_s: Option<u32>) -> Result<u32, AppError> {
    let window_s = window_s.unwrap_or(10);
    if !(1..=MAX_WINDOW_S).contains(&window_s) {
        return Err(invalid_query(format!("window_s must be 1-{MAX_WINDOW_S}")));
    }
    Ok(window_s)
}

/// The figures, with rates over `window_s` seconds.
pub(super) async fn figures(console: &ConsoleState, window_s: u32) -> Result<Overview, sqlx::Error> {
    let row = read(&console.pool, Duration::from_secs(window_s.into()), console.stuck_after).await?;
    Ok(overview(row, &console.step_names, window_s, console.stuck_after))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STEPS: [&str; 2] = ["reserve_inventory", "process_payment"];

    fn group(status: SagaStatus, step_index: i64, count: i64, stuck: i64, age: f64) -> InFlightRow {
        InFlightRow { status, step_index, count, stuck, oldest_age_seconds: age }
    }

    fn row(in_flight: Vec<InFlightRow>) -> OverviewRow {
        OverviewRow {
            at: Utc::now(),
            started: 25,
            completed: 20,
            compensated: 4,
            failed: 1,
            requires_intervention: 3,
            in_flight: Json(in_flight),
        }
    }

    #[test]
    fn counts_in_the_window_become_rates_per_second() {
        let view = overview(row(vec![]), &STEPS, 10, Duration::from_secs(60));
        assert_eq!((view.rates.started, view.rates.completed), (2.5, 2.0));
        assert_eq!((view.rates.compensated, view.rates.failed), (0.4, 0.1));
        assert_eq!(view.requires_intervention, 3);
    }

    #[test]
    fn groups_are_named_by_step_and_summed_into_totals() {
        let groups = vec![
            group(SagaStatus::Running, 0, 5, 0, 1.5),
            group(SagaStatus::Compensating, 1, 2, 2, 90.0),
            group(SagaStatus::Running, 7, 1, 1, 3.0),
        ];
        let view = overview(row(groups), &STEPS, 10, Duration::from_millis(2500));
        let steps: Vec<&str> = view.in_flight.iter().map(|g| g.step.as_str()).collect();
        assert_eq!(steps, ["reserve_inventory", "process_payment", "process_payment"]);
        assert_eq!((view.in_flight_total, view.stuck_total), (8, 3));
        assert_eq!(view.oldest_in_flight_age_seconds, Some(90.0));
        assert_eq!(view.stuck_after_ms, 2500);
    }

    #[test]
    fn nothing_in_flight_has_no_oldest_age() {
        let view = overview(row(vec![]), &STEPS, 10, Duration::from_secs(60));
        assert_eq!((view.in_flight_total, view.oldest_in_flight_age_seconds), (0, None));
        assert_eq!(step_name(&STEPS, -1), "step -1");
    }
}
