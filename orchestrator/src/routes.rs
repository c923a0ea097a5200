//! The orchestrator's HTTP API: place orders, read them and their timelines, and the operator
//! actions (retry a failed saga, cancel a running one).

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use chrono::Utc;
use saga_shared::{
    api::{OperatorAction, OrderRequest, OrderView, SagaEvent, SagaStatus, StepStatus, StepView},
    error::{ReadErrors, StepErrors},
    server::ServiceSpec,
    AppError, AppJson, AppPath, AppQuery, Problem,
};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    metric_definitions as m,
    saga::{
        definition::StepKind,
        executor::{Executor, BUDGET_NOTE},
        log::{self, Event, Inserted},
        state::Saga,
    },
};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The saga log.
    pub pool: PgPool,
    /// Runs the sagas.
    pub executor: Arc<Executor>,
}

#[derive(OpenApi)]
#[openapi(
    paths(create_order, list_orders, get_order, order_events, retry_order, cancel_order),
    components(schemas(OrderRequest, OrderView, StepView, SagaEvent, SagaStatus, StepStatus, OperatorAction, Problem)),
    tags((name = "orders", description = "Orders and their sagas"))
)]
struct ApiDoc;

/// The orchestrator's business routes and their OpenAPI document.
pub fn spec(state: AppState) -> ServiceSpec {
    let routes = Router::new()
        .route("/orders", post(create_order).get(list_orders))
        .route("/orders/{order_id}", get(get_order))
        .route("/orders/{order_id}/events", get(order_events))
        .route("/orders/{order_id}/retry", post(retry_order))
        .route("/orders/{order_id}/cancel", post(cancel_order))
        .with_state(state);
    ServiceSpec { name: "orchestrator", routes, openapi: ApiDoc::openapi() }
}

/// Longest accepted `Idempotency-Key`.
const MAX_KEY_LENGTH: usize = 255;

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LENGTH && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        AppError::problem(
            StatusCode::BAD_REQUEST,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            format!("the key must be 1-{MAX_KEY_LENGTH} visible ASCII characters"),
        )
    })
}

fn accepted(view: &OrderView) -> Response {
    let location = HeaderValue::from_str(&format!("/orders/{}", view.order_id)).ok();
    let mut response = (StatusCode::ACCEPTED, AppJson(view)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Places an order: its saga is written to the log and starts at once.
#[utoipa::path(post, path = "/orders", tag = "orders",
    params(("Idempotency-Key" = Option<String>, Header, max_length = 255, pattern = "^[\\x21-\\x7e]{1,255}$",
            description = "Same key, same order: no second saga (another body with it: 422)")),
    request_body = OrderRequest,
    responses(
        (status = 202, description = "Accepted; the saga runs. `Location` names the order.", body = OrderView,
         headers(("Location" = String, description = "/orders/{order_id}"))),
        StepErrors,
    ))]
async fn create_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    AppJson(order): AppJson<OrderRequest>,
) -> Result<Response, AppError> {
    let key = idempotency_key(&headers)?;
    let executor = &app.executor;
    let saga = Saga::new(Uuid::now_v7(), order, executor.definition(), Utc::now());
    let lease = executor.lease();
    match log::insert(&app.pool, &saga, key.as_deref(), lease.owner, lease.duration).await? {
        Inserted::Created => {
            metrics::counter!(m::STARTED_TOTAL).increment(1);
            tracing::info!(order_id = %saga.order_id, saga_id = %saga.order_id, "order accepted");
            let view = saga.view();
            executor.spawn(saga);
            Ok(accepted(&view))
        }
        Inserted::Existing(existing) if existing.request == saga.request => Ok(accepted(&existing.view())),
        Inserted::Existing(existing) => Err(AppError::problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-mismatch",
            "Idempotency-Key reused with another body",
            format!("this key placed order {} with another body", existing.order_id),
        )),
    }
}

/// `GET /orders` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only sagas in this status.
    status: Option<SagaStatus>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Lists orders, newest first.
#[utoipa::path(get, path = "/orders", tag = "orders", params(ListQuery),
    responses(
        (status = 200, description = "Orders, newest first", body = Vec<OrderView>),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_orders(
    State(app): State<AppState>,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<AppJson<Vec<OrderView>>, AppError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(AppError::problem(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query string",
            "limit must be 1-500",
        ));
    }
    let sagas = log::list(&app.pool, query.status, limit).await?;
    Ok(AppJson(sagas.iter().map(Saga::view).collect()))
}

async fn load(app: &AppState, order_id: Uuid) -> Result<Saga, AppError> {
    log::load(&app.pool, order_id).await?.ok_or_else(|| AppError::not_found("order", order_id))
}

/// `GET /orders/{id}` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct GetQuery {
    /// Long-poll: if the saga is not finished, wait up to this many milliseconds (0–25000) for
    /// it to finish before answering.
    #[param(minimum = 0, maximum = 25000)]
    wait_ms: Option<u64>,
}

/// Longest long-poll: well under the server's default request timeout (30 s), so a long-poll
/// always answers with the order rather than a 503.
const MAX_WAIT_MS: u64 = 25_000;
/// How often a long-poll re-reads the log (a saga finished by another replica wakes nobody here).
const WAIT_RECHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// An order and its saga's steps; optionally waits for the saga to finish.
#[utoipa::path(get, path = "/orders/{order_id}", tag = "orders",
    params(("order_id" = Uuid, Path, description = "The order"), GetQuery),
    responses((status = 200, description = "The order", body = OrderView), ReadErrors))]
async fn get_order(
    State(app): State<AppState>,
    AppPath(order_id): AppPath<Uuid>,
    AppQuery(query): AppQuery<GetQuery>,
) -> Result<AppJson<OrderView>, AppError> {
    let wait_ms = query.wait_ms.unwrap_or(0);
    if wait_ms > MAX_WAIT_MS {
        return Err(AppError::problem(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query string",
            "wait_ms must be 0-25000",
        ));
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(wait_ms);
    loop {
        // Register before reading, so a finish between the read and the wait is not missed.
        let mut waiting = app.executor.waiters().wait(order_id);
        let saga = load(&app, order_id).await?;
        let now = tokio::time::Instant::now();
        if saga.status.is_terminal() || now >= deadline {
            return Ok(AppJson(saga.view()));
        }
        let _ = tokio::time::timeout((deadline - now).min(WAIT_RECHECK), &mut waiting.receiver).await;
    }
}

/// The saga's timeline: every attempt, outcome, compensation and operator action, in order.
#[utoipa::path(get, path = "/orders/{order_id}/events", tag = "orders",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses((status = 200, description = "The timeline, oldest first", body = Vec<SagaEvent>), ReadErrors))]
async fn order_events(
    State(app): State<AppState>,
    AppPath(order_id): AppPath<Uuid>,
) -> Result<AppJson<Vec<SagaEvent>>, AppError> {
    let events = log::events(&app.pool, order_id).await?;
    if events.is_empty() {
        return Err(AppError::not_found("order", order_id));
    }
    Ok(AppJson(events))
}

/// The operator and reason of an action; the body is optional.
fn operator_action(body: &Bytes) -> Result<(String, Option<String>), AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(("operator".to_owned(), None));
    }
    let action: OperatorAction = saga_shared::json::parse_object(body).map_err(AppError::Client)?;
    let operator = action.operator.map_or_else(|| "operator".to_owned(), |o| o.as_str().to_owned());
    Ok((operator, action.reason.map(|r| r.as_str().to_owned())))
}

fn conflict(detail: String) -> AppError {
    AppError::problem(StatusCode::CONFLICT, "invalid-state", "Not possible in the saga's current state", detail)
}

/// Writes an operator's change to a saga (fenced; retried a few times if the executor writes
/// in between), then drives the saga here.
async fn operator_write(
    app: &AppState,
    order_id: Uuid,
    change: impl Fn(&mut Saga) -> Result<Option<Vec<Event>>, AppError>,
) -> Result<OrderView, AppError> {
    for _ in 0..5 {
        let mut saga = load(app, order_id).await?;
        let Some(events) = change(&mut saga)? else {
            return Ok(saga.view()); // nothing to change
        };
        if log::save(&app.pool, &mut saga, app.executor.lease(), true, &events).await? {
            let view = saga.view();
            app.executor.spawn(saga);
            return Ok(view);
        }
    }
    Err(AppError::Unavailable(format!("saga {order_id} kept changing; try again")))
}

/// Resumes a `failed` saga: compensation (or a retriable step) is tried again with a new budget.
#[utoipa::path(post, path = "/orders/{order_id}/retry", tag = "orders",
    params(("order_id" = Uuid, Path, description = "The order")),
    request_body(content = Option<OperatorAction>, description = "Optional: who acts and why"),
    responses(
        (status = 202, description = "Resumed", body = OrderView),
        (status = 409, description = "The saga is not failed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        ReadErrors,
    ))]
async fn retry_order(
    State(app): State<AppState>,
    AppPath(order_id): AppPath<Uuid>,
    body: Bytes,
) -> Result<Response, AppError> {
    let (operator, reason) = operator_action(&body)?;
    let view = operator_write(&app, order_id, |saga| {
        if saga.status != SagaStatus::Failed {
            return Err(conflict(format!("only a failed saga can be retried; this one is {}", saga.status.as_str())));
        }
        let index = saga.step_index.min(saga.steps.len().saturating_sub(1));
        let stuck_forward = app.executor.definition().steps.get(index).is_some_and(|s| s.kind == StepKind::Retriable)
            && saga.steps[index].status != StepStatus::Succeeded;
        if stuck_forward {
            saga.status = SagaStatus::Running;
            saga.steps[index].status = StepStatus::Retrying;
        } else {
            saga.status = SagaStatus::Compensating;
            saga.compensation_deadline_at = Some(app.executor.definition().compensation_deadline_from(Utc::now()));
        }
        if let Some(reason) = &mut saga.failure_reason {
            if let Some(cause) = reason.split(BUDGET_NOTE).next() {
                *reason = cause.to_owned();
            }
        }
        saga.next_run_at = Utc::now();
        Ok(Some(vec![Event {
            kind: "operator",
            step: None,
            attempt: None,
            outcome: "retry".to_owned(),
            detail: reason.clone(),
            actor: operator.clone(),
        }]))
    })
    .await?;
    Ok((StatusCode::ACCEPTED, AppJson(view)).into_response())
}

/// Compensates a saga on purpose. The step in progress may have happened, so it is undone too.
/// Cancelling a saga that is already compensating or compensated changes nothing.
#[utoipa::path(post, path = "/orders/{order_id}/cancel", tag = "orders",
    params(("order_id" = Uuid, Path, description = "The order")),
    request_body(content = Option<OperatorAction>, description = "Optional: who acts and why"),
    responses(
        (status = 202, description = "Compensating", body = OrderView),
        (status = 409, description = "Completed or failed: cannot be cancelled", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        ReadErrors,
    ))]
async fn cancel_order(
    State(app): State<AppState>,
    AppPath(order_id): AppPath<Uuid>,
    body: Bytes,
) -> Result<Response, AppError> {
    let (operator, reason) = operator_action(&body)?;
    let view = operator_write(&app, order_id, |saga| match saga.status {
        SagaStatus::Completed => Err(conflict("the order is completed; it cannot be cancelled".to_owned())),
        SagaStatus::Failed => Err(conflict("the saga failed; use POST /orders/{id}/retry".to_owned())),
        SagaStatus::Compensating | SagaStatus::Compensated => Ok(None),
        SagaStatus::Pending | SagaStatus::Running => {
            if let Some(step) = saga.steps.get_mut(saga.step_index) {
                if matches!(step.status, StepStatus::Pending | StepStatus::Retrying | StepStatus::Unknown) {
                    // An attempt may be in flight right now: treat it as possibly done.
                    step.status = StepStatus::Unknown;
                    step.ambiguous = true;
                }
            }
            let why =
                format!("cancelled by {operator}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default());
            saga.status = SagaStatus::Compensating;
            saga.failure_reason = Some(why.clone());
            saga.compensation_deadline_at = Some(app.executor.definition().compensation_deadline_from(Utc::now()));
            saga.next_run_at = Utc::now();
            Ok(Some(vec![
                Event {
                    kind: "operator",
                    step: None,
                    attempt: None,
                    outcome: "cancel".to_owned(),
                    detail: reason.clone(),
                    actor: operator.clone(),
                },
                Event {
                    kind: "saga",
                    step: None,
                    attempt: None,
                    outcome: "compensating".to_owned(),
                    detail: Some(why),
                    actor: operator.clone(),
                },
            ]))
        }
    })
    .await?;
    Ok((StatusCode::ACCEPTED, AppJson(view)).into_response())
}
