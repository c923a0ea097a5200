//! A participant's step endpoints, the same for every participant: `PUT`, `DELETE` and `GET`
//! `/{resource}/{order_id}`, where the resource is the one the suite's table gives the service
//! (the orchestrator calls it there too).

use axum::{Router, extract::State, routing::get};
use tracing::Instrument as _;
use uuid::Uuid;

use super::{Answer, Step};
use crate::{
    AppError, AppJson, AppPath,
    server::{Boot, ServiceSpec},
    step_batch::Steps,
};

/// A participant's routes and OpenAPI document: its step's endpoints, started on `boot` (with
/// its batch writer when batching is on), added to the service's own `routes` and `openapi`
/// (its other endpoints, and the document's info and tag, named after the service).
pub fn spec<S: Step>(
    step: S,
    boot: &Boot,
    routes: Router,
    mut openapi: utoipa::openapi::OpenApi,
) -> anyhow::Result<ServiceSpec> {
    let service = boot.service;
    let Some(resource) = service.resource() else {
        anyhow::bail!("{} does no step: the suite's table names no resource for it", service.name);
    };
    let path = format!("/{resource}/{{order_id}}");
    let steps = Router::new()
        .route(&path, get(read::<S>).put(act::<S>).delete(compensate::<S>))
        .with_state(Steps::start(step, boot));
    openapi.merge(super::openapi::document::<S>(service.name, &path));
    Ok(ServiceSpec { service, routes: routes.merge(steps), openapi })
}

/// Does the step (see [`super::act`] for the answers), alone or batched.
async fn act<S: Step>(
    State(steps): State<Steps<S>>,
    AppPath(order_id): AppPath<Uuid>,
    AppJson(request): AppJson<S::Request>,
) -> Answer {
    let span = tracing::info_span!("act", order_id = %order_id, otel.name = tracing::field::Empty);
    name_for_export(&span, S::DOCS.act.id);
    steps.act(order_id, request).instrument(span).await
}

/// Compensates the step (see [`super::compensate`]).
async fn compensate<S: Step>(
    State(steps): State<Steps<S>>,
    AppPath(order_id): AppPath<Uuid>,
) -> Result<AppJson<S::Record>, AppError> {
    let span = tracing::info_span!("compensate", order_id = %order_id, otel.name = tracing::field::Empty);
    name_for_export(&span, S::DOCS.undo.id);
    super::compensate(steps.pool(), steps.step(), order_id).instrument(span).await.map(AppJson)
}

/// The order's record, or 404 if the order never reached this step.
async fn read<S: Step>(
    State(steps): State<Steps<S>>,
    AppPath(order_id): AppPath<Uuid>,
) -> Result<AppJson<S::Record>, AppError> {
    let mut conn = steps.pool().acquire().await?;
    steps
        .step()
        .read(&mut conn, order_id)
        .await?
        .map(AppJson)
        .ok_or_else(|| AppError::not_found(&format!("{} for order", S::RECORD), order_id))
}

/// A handler span is exported under the operation's id (`reserve`, `refund`, …), as each
/// service's own handler's span was: a trace then says which step it is without its route. A
/// span's own name must be a literal, the same for every step, so the id goes in `otel.name`,
/// and only while traces are exported (the logs already name the route in the request span).
fn name_for_export(span: &tracing::Span, operation_id: &'static str) {
    if crate::telemetry::enabled() {
        span.record("otel.name", operation_id);
    }
}
