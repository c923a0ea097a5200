//! The audit of DESIGN.md §5, read straight from every service's schema (as superuser): after
//! any run, every saga is terminal and every participant's state agrees with its saga's outcome;
//! stock and money are conserved.

use std::collections::HashMap;

use sqlx::PgPool;

use crate::Suite;

/// Stock and balances before a run.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// sku → available + reserved.
    pub stock: HashMap<String, i64>,
    /// customer → balance.
    pub balances: HashMap<String, i64>,
}

/// What the audit found.
#[derive(Debug, Default)]
pub struct AuditReport {
    /// Sagas by status.
    pub statuses: HashMap<String, i64>,
    /// Broken invariants (empty when all hold).
    pub violations: Vec<String>,
}

impl Suite {
    /// Takes the stock/balance snapshot the audit compares against.
    pub async fn snapshot(&self) -> Snapshot {
        let pool = self.db.superuser_pool().await.expect("superuser pool");
        let stock: Vec<(String, i64)> =
            sqlx::query_as("select sku, (available + reserved)::bigint from inventory.products")
                .fetch_all(&pool)
                .await
                .expect("stock");
        let balances: Vec<(String, i64)> = sqlx::query_as("select customer_id, balance_cents from payment.accounts")
            .fetch_all(&pool)
            .await
            .expect("balances");
        Snapshot { stock: stock.into_iter().collect(), balances: balances.into_iter().collect() }
    }

    /// Checks every invariant against `initial`.
    pub async fn audit(&self, initial: &Snapshot) -> AuditReport {
        let pool = self.db.superuser_pool().await.expect("superuser pool");
        let mut report = AuditReport::default();
        let statuses: Vec<(String, i64)> =
            sqlx::query_as("select status, count(*) from orchestrator.sagas group by status")
                .fetch_all(&pool)
                .await
                .expect("statuses");
        report.statuses = statuses.into_iter().collect();
        for (query, what) in CHECKS {
            let broken: Vec<String> =
                sqlx::query_scalar(query).fetch_all(&pool).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            report.violations.extend(broken.into_iter().map(|id| format!("{what}: {id}")));
        }
        report.violations.extend(conservation(&pool, initial).await);
        report
    }
}

/// Each query returns the ids that break the invariant named beside it.
const CHECKS: [(&str, &str); 7] = [
    (
        "select order_id::text from orchestrator.sagas where status not in ('completed', 'compensated', 'failed')",
        "saga not terminal",
    ),
    (
        r#"select s.order_id::text from orchestrator.sagas s
        where s.status = 'completed' and not (
            exists (select 1 from inventory.reservations r where r.order_id = s.order_id and r.state = 'done')
        and exists (select 1 from payment.payments p where p.order_id = s.order_id and p.state = 'done')
        and exists (select 1 from shipping.shipments h where h.order_id = s.order_id and h.state = 'done')
        and exists (select 1 from notification.notifications n where n.order_id = s.order_id and n.state = 'done'))"#,
        "completed saga without all four effects",
    ),
    (
        r#"select s.order_id::text from orchestrator.sagas s
        where s.status = 'compensated' and (
               exists (select 1 from inventory.reservations r where r.order_id = s.order_id and r.state = 'done')
            or exists (select 1 from payment.payments p where p.order_id = s.order_id and p.state = 'done')
            or exists (select 1 from shipping.shipments h where h.order_id = s.order_id and h.state = 'done')
            or exists (select 1 from notification.notifications n where n.order_id = s.order_id and n.state = 'done'))"#,
        "compensated saga with a live effect",
    ),
    (
        r#"select n.order_id::text from notification.notifications n
        where n.state = 'compensated' and not n.tombstone and n.cancellation_notice is null"#,
        "confirmation compensated without a cancellation notice",
    ),
    (
        r#"select r.order_id::text from inventory.reservations r
        where not exists (select 1 from orchestrator.sagas s where s.order_id = r.order_id)"#,
        "reservation of an order the orchestrator does not know",
    ),
    (
        r#"select p.order_id::text from payment.payments p
        where not exists (select 1 from orchestrator.sagas s where s.order_id = p.order_id)"#,
        "payment of an order the orchestrator does not know",
    ),
    (
        r#"select s.order_id::text from orchestrator.sagas s
        where s.status = 'completed' and (select count(*) from orchestrator.saga_events e
              where e.order_id = s.order_id and e.kind = 'saga' and e.outcome = 'completed') <> 1"#,
        "completed saga whose timeline does not say completed exactly once",
    ),
];

async fn conservation(pool: &PgPool, initial: &Snapshot) -> Vec<String> {
    let mut violations = Vec::new();
    let stock: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        r#"select p.sku, p.available::bigint, p.reserved::bigint,
                  coalesce((select sum((i ->> 'quantity')::bigint) from inventory.reservations r,
                            jsonb_array_elements(r.request -> 'items') i
                            where r.state = 'done' and i ->> 'sku' = p.sku), 0)::bigint
           from inventory.products p"#,
    )
    .fetch_all(pool)
    .await
    .expect("stock");
    for (sku, available, reserved, live) in stock {
        let before = initial.stock.get(&sku).copied().unwrap_or(available + reserved);
        if before != available + live || reserved != live {
            violations.push(format!(
                "stock of {sku}: initial {before}, available {available}, reserved {reserved}, live reservations {live}"
            ));
        }
    }
    let balances: Vec<(String, i64, i64)> = sqlx::query_as(
        r#"select a.customer_id, a.balance_cents,
                  coalesce((select sum(p.amount_cents) from payment.payments p
                            where p.state = 'done' and p.customer_id = a.customer_id), 0)::bigint
           from payment.accounts a"#,
    )
    .fetch_all(pool)
    .await
    .expect("balances");
    for (customer, balance, captured) in balances {
        let before = initial.balances.get(&customer).copied().unwrap_or(balance + captured);
        if before != balance + captured {
            violations.push(format!("balance of {customer}: initial {before}, now {balance}, captured {captured}"));
        }
    }
    violations
}
