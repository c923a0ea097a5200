//! Payment's HTTP routes: payments (the saga step) and accounts (reads).

use axum::{extract::State, http::StatusCode, routing::get, Router};
use chrono::{DateTime, Utc};
use saga_shared::{
    api::{Account, CustomerId, Payment, PaymentRequest, PaymentStatus},
    error::{ReadErrors, StepErrors},
    ledger::StepTable,
    server::ServiceSpec,
    step::{self, OutcomeCounter, Step},
    step_batch::Steps,
    AppError, AppJson, AppPath, Problem,
};
use sqlx::{PgConnection, PgPool};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    db::{self, PAYMENTS},
    metric_definitions::{CAPTURES_TOTAL, REFUNDS_TOTAL},
};

const CAPTURES: OutcomeCounter = OutcomeCounter(CAPTURES_TOTAL);
const REFUNDS: OutcomeCounter = OutcomeCounter(REFUNDS_TOTAL);

#[derive(OpenApi)]
#[openapi(
    paths(capture, refund, get_payment, get_account),
    components(schemas(PaymentRequest, Payment, PaymentStatus, Account, Problem)),
    tags((name = "payment", description = "Payments per order"))
)]
struct ApiDoc;

/// The service's business routes and their OpenAPI document.
pub fn spec(pool: PgPool, batched: bool) -> ServiceSpec {
    let routes = Router::new()
        .route("/payments/{order_id}", get(get_payment).put(capture).delete(refund))
        .route("/accounts/{customer_id}", get(get_account))
        .with_state(Steps::start(pool, Capture, batched));
    ServiceSpec { name: crate::NAME, routes, openapi: ApiDoc::openapi() }
}

/// Captures the order's payment from the customer's balance.
#[utoipa::path(put, path = "/payments/{order_id}", tag = "payment",
    params(("order_id" = Uuid, Path, description = "The order")),
    request_body = PaymentRequest,
    responses(
        (status = 201, description = "Captured", body = Payment),
        (status = 200, description = "Replay: the stored result, nothing changed", body = Payment),
        (status = 402, description = "Declined: balance too low or card refused", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order's payment was already refunded", body = Problem, content_type = "application/problem+json"),
        StepErrors,
    ))]
#[tracing::instrument(skip(steps, body))]
async fn capture(
    State(steps): State<Steps<Capture>>,
    AppPath(order_id): AppPath<Uuid>,
    AppJson(body): AppJson<PaymentRequest>,
) -> Result<(StatusCode, AppJson<serde_json::Value>), AppError> {
    steps.act(order_id, body).await
}

/// The payment step: debits the customer's balance.
struct Capture;

impl Step for Capture {
    type Request = PaymentRequest;
    const TABLE: StepTable = PAYMENTS;
    const COUNTER: OutcomeCounter = CAPTURES;
    const DONE: &'static str = "captured";

    async fn effect(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        body: &PaymentRequest,
        created_at: DateTime<Utc>,
    ) -> Result<serde_json::Value, AppError> {
        let customer = body.customer_id.as_str();
        let amount = body.amount_cents.get();
        // A refused debit updates nothing, so its refusal is one (see `Step::effect`).
        if !db::debit(tx, customer, amount).await? {
            return Err(decline(tx, customer, amount).await?);
        }
        tracing::info!(customer, amount, "captured");
        let payment = Payment {
            order_id,
            status: PaymentStatus::Captured,
            tombstone: false,
            customer_id: Some(customer.to_owned()),
            amount_cents: Some(amount),
            created_at,
            updated_at: created_at,
        };
        Ok(serde_json::to_value(&payment).map_err(anyhow::Error::from)?)
    }
}

async fn decline(tx: &mut sqlx::PgConnection, customer: &str, amount: i64) -> Result<AppError, AppError> {
    Ok(match db::decline_reason(tx, customer).await? {
        None => {
            CAPTURES.count("unknown_customer");
            AppError::problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-customer",
                "Unknown customer",
                format!("no account for customer {customer}"),
            )
        }
        Some(always_decline) => {
            CAPTURES.count("declined");
            let why = if always_decline { "the card was declined" } else { "the balance is too low" };
            AppError::problem(
                StatusCode::PAYMENT_REQUIRED,
                "payment-declined",
                "Payment declined",
                format!("capturing {amount} cents from {customer} failed: {why}"),
            )
        }
    })
}

/// Refunds the order's payment (the compensation). Refunding what was never captured records a
/// tombstone, so a late capture for this order is refused.
#[utoipa::path(delete, path = "/payments/{order_id}", tag = "payment",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "Refunded (or never captured, now tombstoned)", body = Payment),
        StepErrors,
    ))]
#[tracing::instrument(skip(pool))]
async fn refund(State(pool): State<PgPool>, AppPath(order_id): AppPath<Uuid>) -> Result<AppJson<Payment>, AppError> {
    let undo = async |tx: &mut sqlx::PgConnection, request: PaymentRequest| {
        if !db::credit(tx, request.customer_id.as_str(), request.amount_cents.get()).await? {
            return Err(anyhow::anyhow!("account {} of order {order_id} is gone", request.customer_id).into());
        }
        Ok(())
    };
    step::compensate(&pool, PAYMENTS, REFUNDS, "refunded", order_id, undo, async |tx| {
        db::fetch_payment(tx, order_id).await
    })
    .await
}

/// The order's payment.
#[utoipa::path(get, path = "/payments/{order_id}", tag = "payment",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses((status = 200, description = "The payment", body = Payment), ReadErrors))]
async fn get_payment(
    State(pool): State<PgPool>,
    AppPath(order_id): AppPath<Uuid>,
) -> Result<AppJson<Payment>, AppError> {
    let mut conn = pool.acquire().await?;
    db::fetch_payment(&mut conn, order_id)
        .await?
        .map(AppJson)
        .ok_or_else(|| AppError::not_found("payment for order", order_id))
}

/// A customer's balance.
#[utoipa::path(get, path = "/accounts/{customer_id}", tag = "payment",
    params(("customer_id" = CustomerId, Path, description = "The customer")),
    responses((status = 200, description = "The account", body = Account), ReadErrors))]
async fn get_account(
    State(pool): State<PgPool>,
    AppPath(customer_id): AppPath<String>,
) -> Result<AppJson<Account>, AppError> {
    let customer_id = CustomerId::try_from(customer_id).map_err(|_| AppError::not_found("account", "with that id"))?;
    let mut conn = pool.acquire().await?;
    db::fetch_account(&mut conn, customer_id.as_str())
        .await?
        .map(AppJson)
        .ok_or_else(|| AppError::not_found("account", customer_id))
}
