//! The audit of DESIGN.md §5, read straight from every service's schema as superuser, in one
//! consistent snapshot of the database: every saga terminal, every participant's state agreeing
//! with its saga's outcome, each saga's timeline ending once and as its status says (see
//! [`endings`]), no effect without a saga, and stock and money conserved.
//!
//! Conservation needs the stock and balances from before a run: [`snapshot`] records them (as
//! the quantities a run must not change: available + live reservations per sku, balance +
//! captured − refunded per customer), and [`audit`] compares against it. Without one, only what
//! needs no history is checked: each product's `reserved` column equals its live reservations.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context as _, ensure};
use saga_shared::api::SagaStatus;
use saga_suite::poll::Poll;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

/// The statuses of a saga that ended as its orders can: its effects all done or all undone.
/// (`failed` waits for an operator, so its effects may be either.)
const ENDED_AS_ASKED: [SagaStatus; 2] = [SagaStatus::Completed, SagaStatus::Compensated];

/// Statuses as the text array a query binds.
fn status_texts(set: &[SagaStatus]) -> Vec<&'static str> {
    set.iter().map(|status| status.as_str()).collect()
}

/// What a run must not change, per sku and per customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The database it was taken of.
    pub database: String,
    /// When (the database's clock).
    pub taken_at: String,
    /// sku → available + live reservations.
    pub stock: BTreeMap<String, i64>,
    /// customer → balance + captured − refunded.
    pub balances: BTreeMap<String, i64>,
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which invariant.
    pub check: &'static str,
    /// What breaks it: an order id, a sku or a customer.
    pub subject: String,
    /// What was found.
    pub detail: String,
}

/// A saga an audit lists apart: not terminal yet, or failed (waiting for an operator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedSaga {
    /// The order.
    pub order_id: String,
    /// Its saga's status.
    pub status: String,
    /// Why it failed (failed sagas), or nothing.
    pub reason: Option<String>,
}

/// What the audit found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    /// The database audited.
    pub database: String,
    /// Sagas by status.
    pub statuses: BTreeMap<String, i64>,
    /// Sagas still pending, running or compensating.
    pub not_terminal: Vec<ListedSaga>,
    /// Sagas in `failed`: terminal, but an operator must act.
    pub needs_operator: Vec<ListedSaga>,
    /// Whether stock and balances were compared with a snapshot.
    pub against_snapshot: bool,
    /// Broken invariants (empty when all hold); sagas not terminal are among them when the
    /// audit requires every saga to be terminal.
    pub violations: Vec<Violation>,
}

impl AuditReport {
    /// No invariant broken.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Statement timeout of the audit's queries: bounds an audit of a database that is locked up.
const STATEMENT_TIMEOUT: &str = "120s";

/// A read-only transaction on one snapshot of the whole database, so a run still going on
/// cannot show one schema before a change and another after it.
async fn consistent_read(pool: &PgPool) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await.context("cannot begin the audit's transaction")?;
    sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("set local statement_timeout = '{STATEMENT_TIMEOUT}'")))
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Records the stock and balances a later [`audit`] checks conservation against.
pub async fn snapshot(pool: &PgPool) -> anyhow::Result<Snapshot> {
    let mut tx = consistent_read(pool).await?;
    let (database, taken_at): (String, String) =
        sqlx::query_as("select current_database()::text, now()::text").fetch_one(&mut *tx).await?;
    let stock = stock(&mut tx).await?.into_iter().map(|s| (s.sku, s.available + s.live)).collect();
    let balances =
        balances(&mut tx).await?.into_iter().map(|b| (b.customer, b.balance + b.captured - b.refunded)).collect();
    tx.commit().await?;
    Ok(Snapshot { database, taken_at, stock, balances })
}

/// Checks every invariant; conservation against `initial` when given. With `require_terminal`,
/// each saga not yet terminal is a violation too.
pub async fn audit(pool: &PgPool, initial: Option<&Snapshot>, require_terminal: bool) -> anyhow::Result<AuditReport> {
    let mut tx = consistent_read(pool).await?;
    let database: String = sqlx::query_scalar("select current_database()::text").fetch_one(&mut *tx).await?;
    if let Some(initial) = initial {
        ensure!(
            initial.database == database,
            "the snapshot is of database {}, not of {database} which this suite uses",
            initial.database
        );
    }
    let mut report = AuditReport { database, against_snapshot: initial.is_some(), ..AuditReport::default() };
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("select status, count(*) from orchestrator.sagas group by status").fetch_all(&mut *tx).await?;
    report.statuses = statuses.into_iter().collect();
    let listed: Vec<(String, String, Option<String>)> = sqlx::query_as(
        r#"select order_id::text, status, coalesce(dead_letter, failure_reason) from orchestrator.sagas
           where status <> all($1) order by created_at, order_id"#,
    )
    .bind(status_texts(&ENDED_AS_ASKED))
    .fetch_all(&mut *tx)
    .await
    .context("cannot list the sagas that are not over")?;
    for (order_id, status, reason) in listed {
        let saga = ListedSaga { order_id, status, reason };
        if saga.status == "failed" {
            report.needs_operator.push(saga);
        } else {
            if require_terminal {
                report.violations.push(Violation {
                    check: "saga not terminal",
                    subject: saga.order_id.clone(),
                    detail: format!("still {}", saga.status),
                });
            }
            report.not_terminal.push(saga);
        }
    }
    report.violations.extend(effects(&mut tx).await?);
    report.violations.extend(endings(&mut tx).await?);
    for (check, query) in CHECKS {
        let broken: Vec<(String, String)> =
            sqlx::query_as(query).fetch_all(&mut *tx).await.with_context(|| format!("cannot check: {check}"))?;
        report.violations.extend(broken.into_iter().map(|(subject, detail)| Violation { check, subject, detail }));
    }
    report.violations.extend(stock_violations(&stock(&mut tx).await?, initial));
    if let Some(initial) = initial {
        report.violations.extend(balance_violations(&balances(&mut tx).await?, initial));
    }
    tx.commit().await?;
    Ok(report)
}

/// Waits up to `timeout` for every saga to be terminal (or failed); returns how many are not.
/// `on_progress` hears (not terminal now, not terminal at the start) after each look.
pub async fn wait_terminal(
    pool: &PgPool,
    timeout: Duration,
    mut on_progress: impl FnMut(u64, u64),
) -> anyhow::Result<u64> {
    let mut first = None;
    let mut open = 0;
    let ended = Poll::new(timeout, Duration::from_millis(250))
        .until(async || {
            let counted: Result<i64, _> =
                sqlx::query_scalar("select count(*) from orchestrator.sagas where status <> all($1)")
                    .bind(status_texts(&SagaStatus::TERMINAL))
                    .fetch_one(pool)
                    .await;
            match counted {
                Ok(count) => open = u64::try_from(count).unwrap_or(0),
                Err(err) => return Some(Err(anyhow::Error::from(err).context("cannot count the sagas in flight"))),
            }
            on_progress(open, *first.get_or_insert(open));
            (open == 0).then_some(Ok(()))
        })
        .await;
    ended.unwrap_or(Ok(())).map(|()| open)
}

/// Each query returns (subject, detail) for every case breaking the invariant named beside it.
const CHECKS: [(&str, &str); 3] = [
    (
        "confirmation compensated without a cancellation notice",
        r#"select order_id::text, 'the confirmation was compensated but no cancellation notice is recorded'
           from notification.notifications
           where state = 'compensated' and not tombstone and cancellation_notice is null"#,
    ),
    (
        "effect of an order the orchestrator does not know",
        r#"select x.order_id::text, x.what || ' exists, but no saga has this order id' from (
               select order_id, 'a reservation' as what from inventory.reservations
               union all select order_id, 'a payment' from payment.payments
               union all select order_id, 'a shipment' from shipping.shipments
               union all select order_id, 'a notification' from notification.notifications) x
           where not exists (select 1 from orchestrator.sagas s where s.order_id = x.order_id)"#,
    ),
    (
        "payment differs from its reservation's total",
        r#"select p.order_id::text, format('captured %s cents for a reservation of %s', p.amount_cents, r.total_cents)
           from payment.payments p join inventory.reservations r on r.order_id = p.order_id
           where p.state = 'done' and p.amount_cents <> r.total_cents"#,
    ),
];

/// The four effects of each completed or compensated saga that disagree with its outcome.
async fn effects(conn: &mut PgConnection) -> anyhow::Result<Vec<Violation>> {
    let rows: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        r#"select * from (
               select s.order_id::text, s.status, coalesce(r.state, 'none') as r, coalesce(p.state, 'none') as p,
                      coalesce(h.state, 'none') as h, coalesce(n.state, 'none') as n
               from orchestrator.sagas s
               left join inventory.reservations r on r.order_id = s.order_id
               left join payment.payments p on p.order_id = s.order_id
               left join shipping.shipments h on h.order_id = s.order_id
               left join notification.notifications n on n.order_id = s.order_id
               where s.status = any($1)) e
           where (status = 'completed' and 'done' <> any (array[r, p, h, n]))
              or (status = 'compensated' and 'done' = any (array[r, p, h, n]))"#,
    )
    .bind(status_texts(&ENDED_AS_ASKED))
    .fetch_all(conn)
    .await
    .context("cannot compare the sagas' outcomes with their effects")?;
    Ok(rows
        .into_iter()
        .filter_map(|(order_id, status, r, p, h, n)| effect_violation(order_id, &status, [&r, &p, &h, &n]))
        .collect())
}

/// The effects in saga order, with the words for each state: (noun, done, compensated).
const EFFECTS: [(&str, &str, &str); 4] = [
    ("reservation", "reserved", "released"),
    ("payment", "captured", "refunded"),
    ("shipment", "created", "cancelled"),
    ("confirmation", "sent", "cancelled"),
];

/// A completed saga needs all four effects done; a compensated one, none of them done.
fn effect_violation(order_id: String, status: &str, states: [&str; 4]) -> Option<Violation> {
    let describe = |(noun, done, undone): (&str, &str, &str), state: &str| match state {
        "done" => format!("{noun} {done}"),
        "compensated" => format!("{noun} {undone}"),
        _ => format!("no {noun}"),
    };
    let wrong: Vec<String> = EFFECTS
        .iter()
        .zip(states)
        .filter(|(_, state)| match status {
            "completed" => *state != "done",
            "compensated" => *state == "done",
            _ => false,
        })
        .map(|(&effect, state)| describe(effect, state))
        .collect();
    let check = match status {
        "completed" => "completed saga without all four effects",
        _ => "compensated saga with a live effect",
    };
    (!wrong.is_empty()).then(|| Violation { check, subject: order_id, detail: wrong.join(", ") })
}

/// Each saga's timeline against its status: how many times it ends, and how.
///
/// A timeline's *endings* are its `saga` events that say `completed`, `compensated` or `failed`.
/// An operator's `retry` (accepted only on a `failed` saga) starts a new run of the saga, so the
/// timeline is read as runs separated by retries: each run before a retry ends exactly once,
/// `failed`; the last run ends exactly once, as the saga's status says, if the saga is terminal,
/// and not at all while it is in flight. Only the sagas whose timeline is not simply their one
/// ending are read back (a retried saga, or a broken one); [`ending_violation`] decides.
async fn endings(conn: &mut PgConnection) -> anyhow::Result<Vec<Violation>> {
    let rows: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        r#"with marks as (
               select order_id,
                      array_agg(case when kind = 'operator' then 'retry' else outcome end order by id) as marks
               from orchestrator.saga_events
               where (kind = 'saga' and outcome = any($1))
                  or (kind = 'operator' and outcome = 'retry')
               group by order_id)
           select s.order_id::text, s.status, coalesce(m.marks, '{}'::text[])
           from orchestrator.sagas s left join marks m on m.order_id = s.order_id
           where coalesce(m.marks, '{}'::text[])
                 <> case when s.status = any($1) then array[s.status] else '{}'::text[] end
           order by s.created_at, s.order_id"#,
    )
    // A saga's ending event has its terminal status's name.
    .bind(status_texts(&SagaStatus::TERMINAL))
    .fetch_all(conn)
    .await
    .context("cannot compare the sagas' timelines with their statuses")?;
    Ok(rows.into_iter().filter_map(|(order_id, status, marks)| ending_violation(order_id, &status, &marks)).collect())
}

/// The check of a timeline that ends more than once in one run.
const TWO_ENDINGS: &str = "saga whose timeline ends more than once";
/// The check of a timeline whose ending is not the saga's status (or is missing, or a retry
/// that did not follow a `failed`).
const WRONG_ENDING: &str = "saga whose timeline's ending disagrees with its status";

/// `marks`: the timeline's endings (`completed`, `compensated`, `failed`) and operator retries
/// (`retry`), in order. See [`endings`] for the rule.
fn ending_violation(order_id: String, status: &str, marks: &[String]) -> Option<Violation> {
    let terminal = matches!(status, "completed" | "compensated" | "failed");
    let runs: Vec<&[String]> = marks.split(|mark| mark == "retry").collect();
    let last = runs.len() - 1;
    let timeline = if marks.is_empty() { "none".to_owned() } else { marks.join(", ") };
    let violation = |check, why: String| {
        Some(Violation {
            check,
            subject: order_id.clone(),
            detail: format!("{why} (status {status}; endings and retries: {timeline})"),
        })
    };
    if runs.iter().any(|run| run.len() > 1) {
        return violation(TWO_ENDINGS, "its timeline ends more than once".to_owned());
    }
    for run in &runs[..last] {
        if run.first().map(String::as_str) != Some("failed") {
            let ended = run.first().map_or("did not end", |_| "did not fail");
            return violation(WRONG_ENDING, format!("an operator retry follows a run that {ended}"));
        }
    }
    match (runs[last].first().map(String::as_str), terminal) {
        (Some(ending), true) if ending == status => None,
        (None, false) => None,
        (Some(ending), true) => violation(WRONG_ENDING, format!("its timeline ends {ending}")),
        (None, true) => violation(WRONG_ENDING, "its timeline never ends".to_owned()),
        (Some(ending), false) => violation(WRONG_ENDING, format!("its timeline ends {ending} though it is in flight")),
    }
}

/// A product's stock now.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct Stock {
    sku: String,
    available: i64,
    reserved: i64,
    /// Quantities of the sku in live (`done`) reservations.
    live: i64,
}

async fn stock(conn: &mut PgConnection) -> anyhow::Result<Vec<Stock>> {
    sqlx::query_as(
        r#"select p.sku, p.available::bigint as available, p.reserved::bigint as reserved,
                  coalesce(l.live, 0)::bigint as live
           from inventory.products p
           left join (select i ->> 'sku' as sku, sum((i ->> 'quantity')::bigint) as live
                      from inventory.reservations r, jsonb_array_elements(r.request -> 'items') i
                      where r.state = 'done' group by 1) l on l.sku = p.sku
           order by p.sku"#,
    )
    .fetch_all(conn)
    .await
    .context("cannot read the stock")
}

fn stock_violations(stock: &[Stock], initial: Option<&Snapshot>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let now: BTreeMap<&str, &Stock> = stock.iter().map(|s| (s.sku.as_str(), s)).collect();
    for s in stock {
        if s.reserved != s.live {
            violations.push(Violation {
                check: "reserved stock differs from the live reservations",
                subject: s.sku.clone(),
                detail: format!("reserved {}, live reservations {}", s.reserved, s.live),
            });
        }
    }
    for (sku, &before) in initial.map(|i| &i.stock).into_iter().flatten() {
        let detail = match now.get(sku.as_str()) {
            None => format!("initial {before}, and the product is gone"),
            Some(s) if s.available + s.live != before => {
                format!("initial {before} ≠ available {} + live reservations {}", s.available, s.live)
            }
            Some(_) => continue,
        };
        violations.push(Violation { check: "stock not conserved", subject: sku.clone(), detail });
    }
    violations
}

/// A customer's money now.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct Balance {
    customer: String,
    balance: i64,
    /// Every payment ever captured, refunded or not.
    captured: i64,
    /// Captured payments refunded since.
    refunded: i64,
}

async fn balances(conn: &mut PgConnection) -> anyhow::Result<Vec<Balance>> {
    sqlx::query_as(
        r#"select a.customer_id as customer, a.balance_cents as balance,
                  coalesce(sum(p.amount_cents) filter (where not p.tombstone), 0)::bigint as captured,
                  coalesce(sum(p.amount_cents) filter (where p.state = 'compensated' and not p.tombstone), 0)::bigint
                      as refunded
           from payment.accounts a left join payment.payments p on p.customer_id = a.customer_id
           group by a.customer_id, a.balance_cents order by a.customer_id"#,
    )
    .fetch_all(conn)
    .await
    .context("cannot read the balances")
}

fn balance_violations(balances: &[Balance], initial: &Snapshot) -> Vec<Violation> {
    let now: BTreeMap<&str, &Balance> = balances.iter().map(|b| (b.customer.as_str(), b)).collect();
    let mut violations = Vec::new();
    for (customer, &before) in &initial.balances {
        let detail = match now.get(customer.as_str()) {
            None => format!("initial {before}, and the account is gone"),
            Some(b) if b.balance + b.captured - b.refunded != before => {
                format!("initial {before} ≠ balance {} + captured {} − refunded {}", b.balance, b.captured, b.refunded)
            }
            Some(_) => continue,
        };
        violations.push(Violation { check: "balance not conserved", subject: customer.clone(), detail });
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completed_saga_needs_all_four_effects_and_a_compensated_one_none() {
        let id = || "0190-order".to_owned();
        assert_eq!(effect_violation(id(), "completed", ["done"; 4]), None);
        assert_eq!(effect_violation(id(), "compensated", ["compensated", "compensated", "none", "none"]), None);
        let broken = effect_violation(id(), "completed", ["done", "compensated", "done", "none"]);
        assert_eq!(broken.map(|v| v.detail), Some("payment refunded, no confirmation".to_owned()));
        let live = effect_violation(id(), "compensated", ["done", "compensated", "none", "none"]);
        assert_eq!(
            live,
            Some(Violation {
                check: "compensated saga with a live effect",
                subject: id(),
                detail: "reservation reserved".to_owned()
            })
        );
    }

    fn ending(status: &str, marks: &[&str]) -> Option<(&'static str, String)> {
        let marks: Vec<String> = marks.iter().map(|&m| m.to_owned()).collect();
        ending_violation("0190-order".to_owned(), status, &marks).map(|v| (v.check, v.detail))
    }

    #[test]
    fn a_terminal_saga_ends_once_as_its_status_says_and_one_in_flight_not_at_all() {
        assert_eq!(ending("completed", &["completed"]), None);
        assert_eq!(ending("compensated", &["compensated"]), None);
        assert_eq!(ending("failed", &["failed"]), None);
        assert_eq!(ending("running", &[]), None);
        assert_eq!(ending("compensating", &[]), None);
        let two = ending("completed", &["compensated", "completed"]);
        assert_eq!(
            two,
            Some((
                TWO_ENDINGS,
                "its timeline ends more than once (status completed; endings and retries: compensated, completed)"
                    .to_owned()
            ))
        );
        assert_eq!(ending("completed", &["completed", "completed"]).map(|v| v.0), Some(TWO_ENDINGS));
        assert_eq!(ending("completed", &["compensated"]).map(|v| v.0), Some(WRONG_ENDING));
        assert_eq!(
            ending("compensated", &[]).map(|v| v.1).as_deref().map(|d| d.starts_with("its timeline never ends")),
            Some(true)
        );
        assert_eq!(ending("running", &["completed"]).map(|v| v.0), Some(WRONG_ENDING));
    }

    #[test]
    fn an_operator_retry_of_a_failed_saga_starts_a_run_that_ends_once_again() {
        assert_eq!(ending("compensated", &["failed", "retry", "compensated"]), None);
        assert_eq!(ending("failed", &["failed", "retry", "failed"]), None);
        assert_eq!(ending("completed", &["failed", "retry", "failed", "retry", "completed"]), None);
        assert_eq!(ending("compensating", &["failed", "retry"]), None);
        // Two endings after the retry, or before it.
        assert_eq!(
            ending("compensated", &["failed", "retry", "compensated", "compensated"]).map(|v| v.0),
            Some(TWO_ENDINGS)
        );
        assert_eq!(
            ending("compensated", &["compensated", "failed", "retry", "compensated"]).map(|v| v.0),
            Some(TWO_ENDINGS)
        );
        // A retry only resumes a failed saga.
        let after_completed = ending("completed", &["completed", "retry", "completed"]);
        assert_eq!(
            after_completed.map(|v| (v.0, v.1.starts_with("an operator retry follows a run that did not fail"))),
            Some((WRONG_ENDING, true))
        );
        assert_eq!(ending("compensated", &["retry", "compensated"]).map(|v| v.0), Some(WRONG_ENDING));
        // The last run's ending is the status.
        assert_eq!(ending("failed", &["failed", "retry", "compensated"]).map(|v| v.0), Some(WRONG_ENDING));
    }

    fn snapshot(stock: &[(&str, i64)], balances: &[(&str, i64)]) -> Snapshot {
        Snapshot {
            database: "saga".to_owned(),
            taken_at: "now".to_owned(),
            stock: stock.iter().map(|&(k, v)| (k.to_owned(), v)).collect(),
            balances: balances.iter().map(|&(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    #[test]
    fn stock_is_conserved_when_available_and_live_reservations_add_up_to_the_snapshot() {
        let stock = |available, reserved, live| Stock { sku: "W".to_owned(), available, reserved, live };
        let initial = snapshot(&[("W", 10)], &[]);
        assert!(stock_violations(&[stock(7, 3, 3)], Some(&initial)).is_empty());
        assert!(stock_violations(&[stock(7, 3, 3)], None).is_empty());
        let checks = |s| stock_violations(&[s], Some(&initial)).iter().map(|v| v.check).collect::<Vec<_>>();
        assert_eq!(checks(stock(8, 3, 3)), ["stock not conserved"]);
        assert_eq!(checks(stock(7, 2, 3)), ["reserved stock differs from the live reservations"]);
        assert_eq!(stock_violations(&[], Some(&initial))[0].detail, "initial 10, and the product is gone");
    }

    #[test]
    fn a_balance_is_conserved_when_balance_plus_captured_minus_refunded_is_the_snapshot() {
        let balance = |balance, captured, refunded| Balance { customer: "c".to_owned(), balance, captured, refunded };
        let initial = snapshot(&[], &[("c", 1000)]);
        assert!(balance_violations(&[balance(900, 300, 200)], &initial).is_empty());
        let broken = balance_violations(&[balance(1000, 300, 200)], &initial);
        assert_eq!(broken[0].detail, "initial 1000 ≠ balance 1000 + captured 300 − refunded 200");
    }
}
