//! Payment's HTTP routes: payments (the saga step) and accounts (reads).

use axum::{extract::State, http::StatusCode, routing::get, Router};
use saga_shared::{
    api::{Account, CustomerId, Payment, PaymentRequest},
    error::{ReadErrors, StepErrors},
    ledger::{self, Begun, CompensationClaim},
    server::ServiceSpec,
    AppError, AppJson, AppPath, Problem,
};
use sqlx::PgPool;
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    db::{self, PAYMENTS},
    metric_definitions::{count, CAPTURES_TOTAL, REFUNDS_TOTAL},
};

#[derive(OpenApi)]
#[openapi(
    paths(capture, refund, get_payment, get_account),
    components(schemas(PaymentRequest, Payment, Account, Problem)),
    tags((name = "payment", description = "Payments per order"))
)]
struct ApiDoc;

/// The service's business routes and their OpenAPI document.
pub fn spec(pool: PgPool) -> ServiceSpec {
    let routes = Router::new()
        .route("/payments/{order_id}", get(get_payment).put(capture).delete(refund))
        .route("/accounts/{customer_id}", get(get_account))
        .with_state(pool);
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
#[tracing::instrument(skip(pool, body))]
async fn capture(
    State(pool): State<PgPool>,
    AppPath(order_id): AppPath<Uuid>,
    AppJson(body): AppJson<PaymentRequest>,
) -> Result<(StatusCode, AppJson<serde_json::Value>), AppError> {
    let request = serde_json::to_value(&body).map_err(anyhow::Error::from)?;
    let mut tx = pool.begin().await?;
    let begun = ledger::begin_action(&mut tx, PAYMENTS, order_id, &request)
        .await
        .inspect_err(|_| count(CAPTURES_TOTAL, "refused"))?;
    let created_at = match begun {
        Begun::Fresh { created_at } => created_at,
        Begun::Replay(stored) => {
            count(CAPTURES_TOTAL, "replayed");
            return Ok((StatusCode::OK, AppJson(stored)));
        }
    };

    let customer = body.customer_id.as_str();
    let amount = body.amount_cents.get();
    if !db::debit(&mut tx, customer, amount).await? {
        return Err(match db::decline_reason(&mut tx, customer).await? {
            None => {
                count(CAPTURES_TOTAL, "unknown_customer");
                AppError::problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown-customer",
                    "Unknown customer",
                    format!("no account for customer {customer}"),
                )
            }
            Some(always_decline) => {
                count(CAPTURES_TOTAL, "declined");
                let why = if always_decline { "the card was declined" } else { "the balance is too low" };
                AppError::problem(
                    StatusCode::PAYMENT_REQUIRED,
                    "payment-declined",
                    "Payment declined",
                    format!("capturing {amount} cents from {customer} failed: {why}"),
                )
            }
        });
    }

    let payment = Payment {
        order_id,
        status: "captured".to_owned(),
        tombstone: false,
        customer_id: Some(customer.to_owned()),
        amount_cents: Some(amount),
        created_at,
        updated_at: created_at,
    };
    let response = serde_json::to_value(&payment).map_err(anyhow::Error::from)?;
    ledger::store_response(&mut tx, PAYMENTS, order_id, &response).await?;
    tx.commit().await?;
    count(CAPTURES_TOTAL, "captured");
    tracing::info!(customer, amount, "captured");
    Ok((StatusCode::CREATED, AppJson(response)))
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
    let mut tx = pool.begin().await?;
    let outcome = match ledger::claim_compensation(&mut tx, PAYMENTS, order_id).await? {
        CompensationClaim::NeverDone => "tombstone",
        CompensationClaim::AlreadyCompensated => "replayed",
        CompensationClaim::Undo { request } => {
            let request: PaymentRequest = serde_json::from_value(request)
                .map_err(|e| anyhow::anyhow!("stored payment request is unreadable: {e}"))?;
            if !db::credit(&mut tx, request.customer_id.as_str(), request.amount_cents.get()).await? {
                return Err(anyhow::anyhow!("account {} of order {order_id} is gone", request.customer_id).into());
            }
            ledger::mark_compensated(&mut tx, PAYMENTS, order_id).await?;
            "refunded"
        }
    };
    let payment = db::fetch_payment(&mut tx, order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment {order_id} vanished inside its transaction"))?;
    tx.commit().await?;
    count(REFUNDS_TOTAL, outcome);
    tracing::info!(outcome, "refund");
    Ok(AppJson(payment))
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
