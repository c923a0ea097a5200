//! Payment's HTTP routes: payments (the saga step) and accounts (reads).

use saga_shared::ProblemType;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::{Router, extract::State, routing::get};
use chrono::{DateTime, Utc};
use saga_shared::{
    AppError, AppJson, AppPath, Problem,
    api::{Account, CustomerId, Payment, PaymentRequest, PaymentStatus},
    error::ReadErrors,
    ledger::StepTable,
    server::{Boot, ServiceSpec},
    step::{self, Fresh, OperationDocs, OutcomeCounter, Step, StepDocs},
};
use sqlx::{PgConnection, PgPool};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    db::{self, PAYMENTS},
    metric_definitions::{self, CAPTURES_TOTAL, REFUNDS_TOTAL},
};

const CAPTURES: OutcomeCounter = OutcomeCounter(CAPTURES_TOTAL);

/// The document's info and tag, and the account read (the payment endpoints are the step's:
/// [`step::spec`]).
#[derive(OpenApi)]
#[openapi(
    paths(get_account),
    components(schemas(Account, Problem)),
    tags((name = "payment", description = "Payments per order"))
)]
struct ApiDoc;

/// The service's routes and their OpenAPI document.
pub fn spec(boot: &Boot) -> anyhow::Result<ServiceSpec> {
    metric_definitions::describe();
    let accounts = Router::new().route("/accounts/{customer_id}", get(get_account)).with_state(boot.pool.clone());
    step::spec(Capture, boot, accounts, ApiDoc::openapi())
}

/// The payment step: debits the customer's balance.
struct Capture;

impl Step for Capture {
    type Request = PaymentRequest;
    type Record = Payment;
    const TABLE: StepTable = PAYMENTS;
    const ACT_COUNTER: OutcomeCounter = CAPTURES;
    const DONE: &'static str = "captured";
    const UNDO_COUNTER: OutcomeCounter = OutcomeCounter(REFUNDS_TOTAL);
    const UNDONE: &'static str = "refunded";
    const RECORD: &'static str = "payment";
    const DOCS: StepDocs = StepDocs {
        act: OperationDocs {
            id: "capture",
            summary: "Captures the order's payment from the customer's balance.",
            answer: "Captured",
        },
        refusals: &[
            (402, "Declined: balance too low or card refused"),
            (409, "The order's payment was already refunded"),
        ],
        undo: OperationDocs {
            id: "refund",
            summary: "Refunds the order's payment (the compensation). Refunding what was never captured records a\n\
                      tombstone, so a late capture for this order is refused.",
            answer: "Refunded (or never captured, now tombstoned)",
        },
        read: OperationDocs { id: "get_payment", summary: "The order's payment.", answer: "The payment" },
    };

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
            return Err(refusal(customer, amount, db::decline_reason(tx, customer).await?));
        }
        captured(order_id, body, created_at)
    }

    /// The batch's accounts locked once, each order decided in turn against the balance the ones
    /// before it left, then one update debits what the accepted orders took: two statements for
    /// the batch instead of one or two per order. A batch of one keeps `effect`'s one statement.
    async fn effects(
        &self,
        tx: &mut PgConnection,
        orders: &[Fresh<'_, PaymentRequest>],
    ) -> Result<Vec<Result<serde_json::Value, AppError>>, AppError> {
        if orders.len() < 2 {
            return step::effects_one_by_one(self, tx, orders).await;
        }
        let customers: Vec<String> = orders
            .iter()
            .map(|order| order.request.customer_id.as_str().to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut accounts: HashMap<String, db::BalanceRow> =
            db::lock_accounts(tx, &customers).await?.into_iter().map(|row| (row.customer_id.clone(), row)).collect();
        let mut debits = BTreeMap::<String, i64>::new();
        let mut results = Vec::with_capacity(orders.len());
        for order in orders {
            let (customer, amount) = (order.request.customer_id.as_str(), order.request.amount_cents.get());
            let result = order.span.in_scope(|| {
                debit_from(&mut accounts, customer, amount)?;
                captured(order.order_id, order.request, order.created_at)
            });
            match result {
                Ok(_) => *debits.entry(customer.to_owned()).or_default() += amount,
                Err(AppError::Client(_)) => {}
                Err(err) => return Err(err),
            }
            results.push(result);
        }
        let debits: Vec<(String, i64)> = debits.into_iter().collect();
        // Every account was locked and checked, so each debit must find its balance; if one does
        // not, an internal error rolls the batch back (not a refusal: see `Step::effect`).
        if !debits.is_empty() && db::debit_all(tx, &debits).await? != debits.len() as u64 {
            return Err(anyhow::anyhow!("a balance changed under a locked debit").into());
        }
        Ok(results)
    }

    /// Credits the captured amount back to the customer's balance.
    async fn undo(&self, tx: &mut PgConnection, order_id: Uuid, request: PaymentRequest) -> Result<(), AppError> {
        if !db::credit(tx, request.customer_id.as_str(), request.amount_cents.get()).await? {
            return Err(anyhow::anyhow!("account {} of order {order_id} is gone", request.customer_id).into());
        }
        Ok(())
    }

    async fn read(&self, conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Payment>, sqlx::Error> {
        db::fetch_payment(conn, order_id).await
    }
}

/// Decides one debit against the locked `accounts` and, if it is accepted, takes it from the
/// balance in memory (the caller writes it). A refusal changes nothing.
fn debit_from(accounts: &mut HashMap<String, db::BalanceRow>, customer: &str, amount: i64) -> Result<(), AppError> {
    match accounts.get_mut(customer) {
        None => Err(refusal(customer, amount, None)),
        Some(account) if account.always_decline || account.balance_cents < amount => {
            Err(refusal(customer, amount, Some(account.always_decline)))
        }
        Some(account) => {
            account.balance_cents -= amount;
            Ok(())
        }
    }
}

/// A captured payment's answer.
fn captured(order_id: Uuid, body: &PaymentRequest, created_at: DateTime<Utc>) -> Result<serde_json::Value, AppError> {
    let (customer, amount) = (body.customer_id.as_str(), body.amount_cents.get());
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

/// The refusal of a debit, counted: `always_decline` is `None` when the customer does not exist.
fn refusal(customer: &str, amount: i64, always_decline: Option<bool>) -> AppError {
    match always_decline {
        None => {
            CAPTURES.count("unknown_customer");
            AppError::problem(ProblemType::UnknownCustomer, format!("no account for customer {customer}"))
        }
        Some(always_decline) => {
            CAPTURES.count("declined");
            let why = if always_decline { "the card was declined" } else { "the balance is too low" };
            AppError::problem(
                ProblemType::PaymentDeclined,
                format!("capturing {amount} cents from {customer} failed: {why}"),
            )
        }
    }
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
