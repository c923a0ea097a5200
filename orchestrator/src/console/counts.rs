//! `GET /console/counts`: how many sagas the console's filter matches in each status, so the page
//! can say "12 failed, 3 running" above the list and before a bulk action.

use std::collections::BTreeMap;

use axum::extract::State;
use saga_engine::log;
use saga_shared::{AppError, AppJson, AppQuery, Problem, api::SagaStatus};
use serde::Serialize;
use utoipa::ToSchema;

use super::ConsoleState;
use crate::routes::{ListQuery, invalid_query};

/// Each status is counted up to this many (a count above it reads "more than"): a count costs at
/// most this many index entries per status, however large the log.
const COUNT_CAP: i64 = 10_000;

/// Sagas per status.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Counts {
    /// Each status and how many sagas the filter matches in it; a figure above `cap` means
    /// "more than `cap`".
    counts: BTreeMap<SagaStatus, i64>,
    /// The most each status is counted to.
    cap: i64,
}

/// How many sagas `GET /orders` with the same query would list in each status, however many
/// pages. The query is checked as the list checks it, but `status`, `limit` and `before` do not
/// narrow the counts: every status is counted.
#[utoipa::path(get, path = "/console/counts", tag = "console", params(ListQuery),
    responses(
        (status = 200, description = "Sagas per status", body = Counts),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn get_counts(
    State(console): State<ConsoleState>,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<AppJson<Counts>, AppError> {
    query.limit()?;
    let filter = query.filter_text().resolve(&console.step_names, console.stuck_after).map_err(invalid_query)?;
    let counts = log::count_by_status(&console.pool, &filter, COUNT_CAP).await?;
    Ok(AppJson(Counts { counts: counts.into_iter().collect(), cap: COUNT_CAP }))
}
