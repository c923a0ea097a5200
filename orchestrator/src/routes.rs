//! The orchestrator's HTTP API: place orders, read them and their timelines, and the operator
//! actions (retry a failed saga, cancel a running one).

use saga_shared::ProblemType;
use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use saga_shared::{
    AppError, AppJson, AppPath, AppQuery, Problem,
    api::{
        EventKind, EventOutcome, OperatorAction as OperatorActionBody, OrderRequest, OrderView, SagaEvent, SagaStatus,
        StepStatus, StepView,
    },
    error::{AuthErrors, ReadErrors, StepErrors},
    server::ServiceSpec,
};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::OpenApi;
use uuid::Uuid;

use saga_engine::{
    OrderExecutor,
    drivers::OperateError,
    executor::{Overloaded, Placed},
    log,
    machine::{OperatorAction, OperatorCommand},
    metric_definitions as m,
    state::Saga,
};

use crate::order_list::FilterText;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The saga log.
    pub pool: PgPool,
    /// Runs the sagas.
    pub executor: Arc<OrderExecutor>,
    /// The bearer token operator actions need (`None`: nobody may act).
    pub operator_token: Option<String>,
    /// How long without progress makes a saga stuck (`STUCK_AFTER_MS`, as `saga_stuck`).
    pub stuck_after: std::time::Duration,
}

#[derive(OpenApi)]
#[openapi(
    paths(create_order, list_orders, get_order, order_events, retry_order, cancel_order),
    components(schemas(
        OrderRequest, OrderView, StepView, SagaEvent, SagaStatus, StepStatus, EventKind, EventOutcome,
        OperatorActionBody, Problem
    )),
    modifiers(&OperatorSecurity),
    tags((name = "orders", description = "Orders and their sagas"))
)]
struct ApiDoc;

/// The `step` filters (`GET /orders`, `GET /console/counts`, a batch's filter) take the steps of
/// the suite's table, and nothing else: the document says so with their names (an attribute
/// could only repeat them by hand). Run on the whole document, once every part is merged in.
pub(crate) fn name_steps(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
    let names: Vec<&str> = saga_shared::suite::PARTICIPANTS.iter().filter_map(|s| s.step()).collect();
    let steps = || ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names.clone()));
    for item in openapi.paths.paths.values_mut() {
        for parameter in item.get.iter_mut().flat_map(|get| get.parameters.iter_mut().flatten()) {
            if let RefOr::T(parameter) = parameter
                && parameter.name == "step"
            {
                parameter.schema = Some(steps().into());
            }
        }
    }
    let filter = openapi.components.as_mut().and_then(|c| c.schemas.get_mut("BatchFilter"));
    if let Some(RefOr::T(Schema::Object(filter))) = filter
        && let Some(step) = filter.properties.get_mut("step")
    {
        *step = steps().into();
    }
}

/// Declares the operator token's bearer scheme in the document.
struct OperatorSecurity;

impl utoipa::Modify for OperatorSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("operator_token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The orchestrator's business routes and their OpenAPI document.
pub fn spec(state: AppState) -> ServiceSpec {
    let routes = Router::new()
        .route("/orders", post(create_order).get(list_orders))
        .route("/orders/{order_id}", get(get_order))
        .route("/orders/{order_id}/events", get(order_events))
        .route("/orders/{order_id}/retry", post(retry_order))
        .route("/orders/{order_id}/cancel", post(cancel_order))
        .with_state(state);
    ServiceSpec { service: &saga_shared::suite::ORCHESTRATOR, routes, openapi: ApiDoc::openapi() }
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
            ProblemType::InvalidIdempotencyKey,
            format!("the key must be 1-{MAX_KEY_LENGTH} visible ASCII characters"),
        )
    })
}

/// 503 `overloaded` with `Retry-After: 1`: past the admission limit, an order is refused before
/// anything is written, so a retry (with the same `Idempotency-Key`) is safe. Refusing keeps
/// the sagas already accepted fast instead of queueing every new one behind them.
fn overloaded(Overloaded { in_flight, limit }: Overloaded) -> Response {
    let problem = AppError::problem(
        ProblemType::Overloaded,
        format!("{in_flight} sagas in flight here, the limit is {limit} (MAX_IN_FLIGHT_SAGAS); retry later"),
    );
    let mut response = problem.into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
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
    // Held until the saga's driver counts it.
    let _admission = match executor.admit() {
        Ok(admission) => admission,
        Err(over) => {
            metrics::counter!(m::REFUSED_TOTAL, "reason" => "overloaded").increment(1);
            return Ok(overloaded(over));
        }
    };
    let order_id = Uuid::now_v7();
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    match executor.place(order_id, order, key.as_deref(), saga_shared::telemetry::traceparent()).await? {
        Placed::Created(view) | Placed::Replayed(view) => Ok(accepted(&view)),
        Placed::KeyReused(existing) => Err(AppError::problem(
            ProblemType::IdempotencyMismatch,
            format!("this key placed order {existing} with another body"),
        )),
    }
}

/// `GET /orders` query (also `GET /console/counts`'s).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only sagas in this status.
    status: Option<SagaStatus>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Next page: only orders that come after this one in the list (pass the last `order_id` of
    /// the page before). An id that names no order is a 422.
    before: Option<Uuid>,
    /// Search: only orders whose id starts with these hex digits (dashes ignored; more digits
    /// than an id has match nothing). The pattern is exactly what `order_list::id_prefix` accepts.
    #[param(pattern = "^[0-9a-fA-F][0-9a-fA-F-]{0,35}$", max_length = 36)]
    order_id_prefix: Option<String>,
    /// Only this customer's orders.
    #[param(max_length = 64)]
    customer_id: Option<String>,
    /// Only sagas at this step (`reserve_inventory`, `process_payment`, `create_shipment`,
    /// `send_confirmation`): the one going forward, or being compensated.
    step: Option<String>,
    /// Only sagas whose failure reason contains this text (any case).
    #[param(max_length = 200)]
    reason: Option<String>,
    /// Only orders accepted at or after this time (RFC 3339).
    created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only orders accepted before this time (RFC 3339).
    created_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Only sagas in flight without progress for `STUCK_AFTER_MS` (what `saga_stuck` counts).
    stuck: Option<bool>,
}

impl ListQuery {
    /// The page size asked for, checked (default 50).
    pub(crate) fn limit(&self) -> Result<i64, AppError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(invalid_query("limit must be 1-500"));
        }
        Ok(limit)
    }

    /// The filter part of the query.
    pub(crate) fn filter_text(&self) -> FilterText<'_> {
        FilterText {
            status: self.status,
            order_id_prefix: self.order_id_prefix.as_deref(),
            customer_id: self.customer_id.as_deref(),
            step: self.step.as_deref(),
            reason: self.reason.as_deref(),
            created_after: self.created_after,
            created_before: self.created_before,
            stuck: self.stuck.unwrap_or(false),
        }
    }
}

/// 400 `invalid-query`: a query parameter that is malformed or out of range.
pub(crate) fn invalid_query(detail: impl Into<String>) -> AppError {
    AppError::problem(ProblemType::InvalidQuery, detail)
}

/// Lists orders, newest first, a page at a time: filter by status, search by id prefix, and
/// page with `before` (keyset pagination, so any page costs the same).
#[utoipa::path(get, path = "/orders", tag = "orders", params(ListQuery),
    responses(
        (status = 200, description = "Orders, newest first", body = Vec<OrderView>),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`before` names no order", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_orders(
    State(app): State<AppState>,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<AppJson<Vec<OrderView>>, AppError> {
    let limit = query.limit()?;
    let filter =
        query.filter_text().resolve(&app.executor.definition().step_names(), app.stuck_after).map_err(invalid_query)?;
    let before = match query.before {
        Some(order_id) => Some(
            log::list_position(&app.pool, order_id)
                .await?
                .ok_or_else(|| AppError::validation(format!("before: no order {order_id}")))?,
        ),
        None => None,
    };
    let sagas = log::list(&app.pool, &filter, before, limit).await?;
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
/// How often a long-poll re-reads the log of a saga this process does not drive (one driven by
/// another replica, or waiting for recovery, wakes nobody here).
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
        return Err(invalid_query("wait_ms must be 0-25000"));
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(wait_ms);
    let view = app.executor.waiters().long_poll(order_id, deadline, WAIT_RECHECK, || load(&app, order_id)).await?;
    Ok(AppJson(view))
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

/// The operator action a request asks for: authorized by the bearer token, then who and why
/// from the optional body.
fn operator_action(
    app: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    command: OperatorCommand,
) -> Result<OperatorAction, AppError> {
    saga_shared::auth::require_bearer(headers, app.operator_token.as_deref())?;
    let action: OperatorActionBody = if body.iter().all(u8::is_ascii_whitespace) {
        OperatorActionBody::default()
    } else {
        saga_shared::json::parse_object(body).map_err(AppError::Client)?
    };
    Ok(OperatorAction {
        command,
        operator: action.operator.map_or_else(|| "operator".to_owned(), String::from),
        reason: action.reason.map(String::from),
    })
}

/// Hands an operator's action to the saga's one driver in this process ([`OrderExecutor::operate`])
/// and answers with the saga as the action left it.
async fn operate(app: &AppState, order_id: Uuid, action: OperatorAction) -> Result<OrderView, AppError> {
    app.executor.operate(order_id, action).await.map_err(|err| match err {
        OperateError::NotFound(order_id) => AppError::not_found("order", order_id),
        OperateError::Refused(refusal) => AppError::problem(ProblemType::InvalidState, refusal.to_string()),
        OperateError::Database(err) => AppError::from(err),
        err @ (OperateError::Busy(_) | OperateError::ShuttingDown) => AppError::Unavailable(err.to_string()),
    })
}

/// Resumes a `failed` saga: compensation (or a step past the pivot) is tried again with a new
/// budget. Needs the operator token.
#[utoipa::path(post, path = "/orders/{order_id}/retry", tag = "orders",
    params(("order_id" = Uuid, Path, description = "The order")),
    request_body(content = Option<OperatorActionBody>, description = "Optional: who acts and why"),
    security(("operator_token" = [])),
    responses(
        (status = 202, description = "Resumed", body = OrderView),
        (status = 409, description = "The saga is not failed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        AuthErrors,
        ReadErrors,
    ))]
async fn retry_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    AppPath(order_id): AppPath<Uuid>,
    body: Bytes,
) -> Result<Response, AppError> {
    let action = operator_action(&app, &headers, &body, OperatorCommand::Retry)?;
    let view = operate(&app, order_id, action).await?;
    Ok((StatusCode::ACCEPTED, AppJson(view)).into_response())
}

/// Compensates a saga on purpose. The step in progress may have happened, so it is undone too.
/// Cancelling a saga that is already compensating or compensated changes nothing (the request
/// is still recorded). Needs the operator token.
#[utoipa::path(post, path = "/orders/{order_id}/cancel", tag = "orders",
    params(("order_id" = Uuid, Path, description = "The order")),
    request_body(content = Option<OperatorActionBody>, description = "Optional: who acts and why"),
    security(("operator_token" = [])),
    responses(
        (status = 202, description = "Compensating", body = OrderView),
        (status = 409, description = "Completed, failed, or past its pivot: cannot be cancelled", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        AuthErrors,
        ReadErrors,
    ))]
async fn cancel_order(
    State(app): State<AppState>,
    headers: HeaderMap,
    AppPath(order_id): AppPath<Uuid>,
    body: Bytes,
) -> Result<Response, AppError> {
    let action = operator_action(&app, &headers, &body, OperatorCommand::Cancel)?;
    let view = operate(&app, order_id, action).await?;
    Ok((StatusCode::ACCEPTED, AppJson(view)).into_response())
}
