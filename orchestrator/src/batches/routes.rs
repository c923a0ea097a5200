//! `POST /batch-operations` and `GET /batch-operations/{id}`.

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use chrono::Utc;
use saga_shared::{
    AppError, AppJson, AppPath, AppQuery, Problem,
    api::{BatchAction, BatchFilter, BatchItem, BatchRequest, BatchResult, BatchStatus, BatchView, SagaStatus},
    error::{AuthErrors, ReadErrors},
};
use serde::Deserialize;
use utoipa::OpenApi;
use uuid::Uuid;

use super::log::{self, NewBatch};
use crate::{order_list::FilterText, routes::AppState};

/// Most sagas one batch may act on.
const MAX_SAGAS: u32 = 10_000;
/// Sagas a batch acts on when `max` is not given.
const DEFAULT_MAX: u32 = 1_000;

#[derive(OpenApi)]
#[openapi(
    paths(create_batch, get_batch),
    components(schemas(BatchRequest, BatchFilter, BatchAction, BatchView, BatchStatus, BatchItem, BatchResult, SagaStatus)),
    tags((name = "batch-operations", description = "Retry or cancel every saga a filter matches"))
)]
pub struct BatchDoc;

/// The batch routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/batch-operations", post(create_batch))
        .route("/batch-operations/{batch_id}", get(get_batch))
        .with_state(state)
}

/// Starts a batch: the sagas the filter matches now (oldest first, at most `max`) are acted on
/// one at a time, each as `POST /orders/{id}/retry` or `/cancel` would, by whichever
/// orchestrator instance drives the batch; a restart does not lose it. Needs the operator token.
#[utoipa::path(post, path = "/batch-operations", tag = "batch-operations",
    request_body = BatchRequest,
    security(("operator_token" = [])),
    responses(
        (status = 202, description = "Created: the matched sagas will be acted on", body = BatchView),
        (status = 422, description = "Invalid body, filter or max", body = Problem, content_type = "application/problem+json"),
        AuthErrors,
        ReadErrors,
    ))]
async fn create_batch(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, AppJson<BatchView>), AppError> {
    saga_shared::auth::require_bearer(&headers, app.operator_token.as_deref())?;
    let request: BatchRequest = saga_shared::json::parse_object(&body).map_err(AppError::Client)?;
    let max = request.max.unwrap_or(DEFAULT_MAX);
    if !(1..=MAX_SAGAS).contains(&max) {
        return Err(AppError::validation(format!("max must be 1-{MAX_SAGAS}")));
    }
    let filter = &request.filter;
    let text = FilterText {
        status: Some(filter.status),
        order_id_prefix: filter.order_id_prefix.as_deref(),
        customer_id: filter.customer_id.as_deref(),
        step: filter.step.as_deref(),
        reason: filter.reason.as_deref(),
        created_after: filter.created_after,
        created_before: filter.created_before,
        stuck: filter.stuck,
    };
    let mut matches = text
        .resolve(&app.executor.definition().step_names(), app.stuck_after)
        .map_err(|why| AppError::validation(format!("filter.{why}")))?;
    if let Some(seconds) = filter.older_than_s {
        let age = i64::try_from(seconds)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .ok_or_else(|| AppError::validation("filter.older_than_s is too large"))?;
        let cutoff = Utc::now() - age;
        matches.created_before = Some(matches.created_before.map_or(cutoff, |before| before.min(cutoff)));
    }
    let id = Uuid::now_v7();
    let operator = request.operator.as_ref().map_or("operator", |o| o.as_str());
    let batch = NewBatch {
        id,
        action: request.action,
        filter,
        matches,
        max,
        operator,
        reason: request.reason.as_ref().map(|r| r.as_str()),
    };
    let matched = log::create(&app.pool, &batch).await?;
    tracing::info!(batch_id = %id, action = request.action.as_str(), matched, operator, "batch operation created");
    let view = log::view(&app.pool, id, false)
        .await?
        .ok_or_else(|| AppError::from(anyhow::anyhow!("batch {id} vanished after it was written")))?;
    Ok((StatusCode::ACCEPTED, AppJson(view)))
}

/// `GET /batch-operations/{id}`'s options.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BatchQuery {
    /// Include every matched saga and its result.
    #[serde(default)]
    results: bool,
}

/// A batch's progress: how many sagas it matched, acted on, refused, failed and has left.
#[utoipa::path(get, path = "/batch-operations/{batch_id}", tag = "batch-operations",
    params(("batch_id" = Uuid, Path, description = "The batch"), BatchQuery),
    responses((status = 200, description = "The batch and its progress", body = BatchView), ReadErrors))]
async fn get_batch(
    State(app): State<AppState>,
    AppPath(batch_id): AppPath<Uuid>,
    AppQuery(query): AppQuery<BatchQuery>,
) -> Result<AppJson<BatchView>, AppError> {
    let view = log::view(&app.pool, batch_id, query.results).await?;
    view.map(AppJson).ok_or_else(|| AppError::not_found("batch operation", batch_id))
}
