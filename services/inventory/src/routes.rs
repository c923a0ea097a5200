//! Inventory's HTTP routes: reservations (the saga step) and products (reads).

use saga_shared::ProblemType;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::{Router, extract::State, routing::get};
use chrono::{DateTime, Utc};
use saga_shared::{
    AppError, AppJson, AppPath, Problem,
    api::{AmountCents, Product, Reservation, ReservationRequest, ReservationStatus, Sku},
    error::ReadErrors,
    ledger::StepTable,
    server::{Boot, ServiceSpec},
    step::{self, Fresh, OperationDocs, OutcomeCounter, Step, StepDocs},
};
use sqlx::{PgConnection, PgPool};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::{
    db::{self, RESERVATIONS},
    metric_definitions::{self, RELEASES_TOTAL, RESERVATIONS_TOTAL},
};

const RESERVATIONS_COUNTER: OutcomeCounter = OutcomeCounter(RESERVATIONS_TOTAL);

/// The document's info and tag, and the product reads (the reservation endpoints are the
/// step's: [`step::spec`]).
#[derive(OpenApi)]
#[openapi(
    paths(get_product, list_products),
    components(schemas(Product, Problem)),
    tags((name = "inventory", description = "Stock reservations per order"))
)]
struct ApiDoc;

/// The service's routes and their OpenAPI document.
pub fn spec(boot: &Boot) -> anyhow::Result<ServiceSpec> {
    metric_definitions::describe();
    let products = Router::new()
        .route("/products", get(list_products))
        .route("/products/{sku}", get(get_product))
        .with_state(boot.pool.clone());
    step::spec(Reserve, boot, products, ApiDoc::openapi())
}

/// The reservation step: takes each line's stock, all lines or none.
struct Reserve;

impl Step for Reserve {
    type Request = ReservationRequest;
    type Record = Reservation;
    const TABLE: StepTable = RESERVATIONS;
    const ACT_COUNTER: OutcomeCounter = RESERVATIONS_COUNTER;
    const DONE: &'static str = "reserved";
    const UNDO_COUNTER: OutcomeCounter = OutcomeCounter(RELEASES_TOTAL);
    const UNDONE: &'static str = "released";
    const RECORD: &'static str = "reservation";
    const DOCS: StepDocs = StepDocs {
        act: OperationDocs {
            id: "reserve",
            summary: "Reserves every line of the order, or nothing.",
            answer: "Reserved",
        },
        refusals: &[(409, "Out of stock, or the order's reservation was already released")],
        undo: OperationDocs {
            id: "release",
            summary: "Releases the order's reservation (the compensation). Releasing what was never reserved\n\
                      records a tombstone, so a late reservation for this order is refused.",
            answer: "Released (or never reserved, now tombstoned)",
        },
        read: OperationDocs { id: "get_reservation", summary: "The order's reservation.", answer: "The reservation" },
    };

    async fn effect(
        &self,
        tx: &mut PgConnection,
        order_id: Uuid,
        body: &ReservationRequest,
        created_at: DateTime<Utc>,
    ) -> Result<serde_json::Value, AppError> {
        let lines = body.items.merged();
        let skus: Vec<String> = lines.iter().map(|(sku, _)| sku.clone()).collect();
        let mut stock = lock_stock(tx, &skus).await?;
        let answer = reserve_from(&mut stock, &lines, order_id, body, created_at)?;
        write_taken(tx, &lines).await?;
        Ok(answer)
    }

    /// The batch's products locked once, each order decided in turn against the stock the ones
    /// before it left, then one update takes what the accepted orders took: two statements for
    /// the batch instead of two per order, and one new version of a hot product's row instead of
    /// one per order.
    async fn effects(
        &self,
        tx: &mut PgConnection,
        orders: &[Fresh<'_, ReservationRequest>],
    ) -> Result<Vec<Result<serde_json::Value, AppError>>, AppError> {
        let lines: Vec<Vec<(String, i64)>> = orders.iter().map(|order| order.request.items.merged()).collect();
        let skus: Vec<String> =
            lines.iter().flatten().map(|(sku, _)| sku.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let mut stock = lock_stock(tx, &skus).await?;
        let mut taken = BTreeMap::<String, i64>::new();
        let mut results = Vec::with_capacity(orders.len());
        for (order, lines) in orders.iter().zip(&lines) {
            let result = order
                .span
                .in_scope(|| reserve_from(&mut stock, lines, order.order_id, order.request, order.created_at));
            match result {
                Ok(_) => {
                    for (sku, quantity) in lines {
                        *taken.entry(sku.clone()).or_default() += quantity;
                    }
                }
                Err(AppError::Client(_)) => {}
                Err(err) => return Err(err),
            }
            results.push(result);
        }
        let taken: Vec<(String, i64)> = taken.into_iter().collect();
        if !taken.is_empty() {
            write_taken(tx, &taken).await?;
        }
        Ok(results)
    }

    /// Gives every line's stock back, under the same locks a reservation takes.
    async fn undo(&self, tx: &mut PgConnection, order_id: Uuid, request: ReservationRequest) -> Result<(), AppError> {
        let lines = request.items.merged();
        let skus: Vec<String> = lines.iter().map(|(sku, _)| sku.clone()).collect();
        db::lock_products(tx, &skus).await?;
        if db::return_stock(tx, &lines).await? != lines.len() as u64 {
            // Reserved counts are only ever raised by the reservation being undone here, so
            // this means the data was edited by hand: refuse rather than invent stock.
            return Err(anyhow::anyhow!("reserved stock does not cover order {order_id}'s reservation").into());
        }
        Ok(())
    }

    async fn read(&self, conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Reservation>, sqlx::Error> {
        db::fetch_reservation(conn, order_id).await
    }
}

/// Locks the products of `skus` (sorted) and keys them by sku.
async fn lock_stock(tx: &mut PgConnection, skus: &[String]) -> Result<HashMap<String, db::StockRow>, sqlx::Error> {
    Ok(db::lock_products(tx, skus).await?.into_iter().map(|row| (row.sku.clone(), row)).collect())
}

/// Decides one order against the locked `stock` and, if it is accepted, takes its lines from
/// `stock` (in memory: the caller writes them) and returns its answer. A refusal changes nothing.
fn reserve_from(
    stock: &mut HashMap<String, db::StockRow>,
    lines: &[(String, i64)],
    order_id: Uuid,
    body: &ReservationRequest,
    created_at: DateTime<Utc>,
) -> Result<serde_json::Value, AppError> {
    check_lines(lines, stock)?;
    let total_cents = total_cents(lines, stock)?;
    for (sku, quantity) in lines {
        let row = stock.get_mut(sku).ok_or_else(|| anyhow::anyhow!("sku {sku} checked but not locked"))?;
        // check_lines saw at least `quantity` available, so this stays within 0..=available.
        row.available = i32::try_from(i64::from(row.available) - quantity).map_err(anyhow::Error::from)?;
    }
    tracing::info!(total_cents, "reserved");
    let reservation = Reservation {
        order_id,
        status: ReservationStatus::Reserved,
        tombstone: false,
        items: body.items.as_slice().to_vec(),
        total_cents,
        created_at,
        updated_at: created_at,
    };
    Ok(serde_json::to_value(&reservation).map_err(anyhow::Error::from)?)
}

/// The order's price, refused (422, before anything is taken) unless payment can charge it: a
/// total of zero (free products only) is not a payment, and one that overflows, or exceeds
/// the largest amount payment takes, could never be charged; reserving it would only strand
/// the stock until the saga gave it back. Every sku of `lines` is in `stock` (checked).
fn total_cents(lines: &[(String, i64)], stock: &HashMap<String, db::StockRow>) -> Result<i64, AppError> {
    let total = lines.iter().try_fold(0_i64, |total, (sku, quantity)| {
        stock.get(sku).and_then(|row| row.price_cents.checked_mul(*quantity)).and_then(|line| total.checked_add(line))
    });
    match total {
        Some(total) if AmountCents::try_from(total).is_ok() => Ok(total),
        _ => {
            RESERVATIONS_COUNTER.count("invalid_total");
            let why = match total {
                Some(0) => "is zero".to_owned(),
                Some(total) => format!("is {total} cents; a payment takes 1 to {} cents", AmountCents::MAX),
                None => "overflows".to_owned(),
            };
            Err(AppError::problem(ProblemType::InvalidTotal, format!("the order's total {why}")))
        }
    }
}

/// Writes what was decided in memory: every line must find its stock, since the rows are locked
/// and were checked. Not a refusal if one does not (see `Step::effect`): an internal error that
/// rolls the transaction back.
async fn write_taken(tx: &mut PgConnection, lines: &[(String, i64)]) -> Result<(), AppError> {
    if db::take_stock(tx, lines).await? != lines.len() as u64 {
        return Err(anyhow::anyhow!("stock changed under a locked reservation").into());
    }
    Ok(())
}

/// Refuses the reservation (rolling the claim back) when a sku is unknown or short of stock.
fn check_lines(lines: &[(String, i64)], stock: &HashMap<String, db::StockRow>) -> Result<(), AppError> {
    let unknown: Vec<&str> =
        lines.iter().filter(|(sku, _)| !stock.contains_key(sku)).map(|(s, _)| s.as_str()).collect();
    if !unknown.is_empty() {
        RESERVATIONS_COUNTER.count("unknown_sku");
        return Err(AppError::problem(ProblemType::UnknownSku, format!("no product with sku {}", unknown.join(", "))));
    }
    let short: Vec<String> = lines
        .iter()
        .filter_map(|(sku, q)| {
            let row = stock.get(sku)?;
            (i64::from(row.available) < *q).then(|| format!("{sku}: {q} requested, {} available", row.available))
        })
        .collect();
    if !short.is_empty() {
        RESERVATIONS_COUNTER.count("out_of_stock");
        return Err(out_of_stock(short.join("; ")));
    }
    Ok(())
}

fn out_of_stock(detail: String) -> AppError {
    AppError::problem(ProblemType::OutOfStock, detail)
}

/// One product's price and stock.
#[utoipa::path(get, path = "/products/{sku}", tag = "inventory",
    params(("sku" = Sku, Path, description = "Product code")),
    responses((status = 200, description = "The product", body = Product), ReadErrors))]
async fn get_product(State(pool): State<PgPool>, AppPath(sku): AppPath<String>) -> Result<AppJson<Product>, AppError> {
    let sku = Sku::try_from(sku).map_err(|_| AppError::not_found("product", "with that sku"))?;
    let mut conn = pool.acquire().await?;
    db::fetch_product(&mut conn, sku.as_str()).await?.map(AppJson).ok_or_else(|| AppError::not_found("product", sku))
}

/// Every product's price and stock.
#[utoipa::path(get, path = "/products", tag = "inventory",
    responses(
        (status = 200, description = "All products", body = Vec<Product>),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_products(State(pool): State<PgPool>) -> Result<AppJson<Vec<Product>>, AppError> {
    let mut conn = pool.acquire().await?;
    Ok(AppJson(db::list_products(&mut conn).await?))
}
