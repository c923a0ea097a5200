//! What the operator-race tests (issue 16) need besides the suite: a bounded background load
//! through the project's own load tool, a participant's row held by a transaction of the test's
//! own (so a step's call waits, in flight, for as long as the test likes), and each saga's
//! endings and effects read back.

use saga_shared::api::SagaStatus;
use saga_suite::poll::Poll;
use std::time::Duration;

use sagactl::load::{self, Keys, Kind, LoadConfig, LoadReport, Mix, Pacing, Stop, Targets, progress::progress_bar};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::{Suite, processes::Service};

impl Suite {
    /// Where `sagactl load` finds this suite.
    pub fn load_targets(&self) -> Targets {
        Targets {
            orchestrator: self.url(Service::Orchestrator, ""),
            participants: Service::PARTICIPANTS.map(|service| self.url(service, "")),
        }
    }

    /// Starts `sagactl load` in the background, as `sagactl load --concurrency N --duration D
    /// --fail-ratio 0.2 --post-retries 50` would run it: it places orders for `duration`, then
    /// waits for their sagas (at most a minute each) and stops by itself. POSTs that fail (an
    /// orchestrator that is frozen or busy) are repeated under their `Idempotency-Key`. The
    /// load's customers and SKUs (`load-*`, `LOAD-*`) are never the demo ones (`alice`, ...).
    pub fn background_load(&self, concurrency: usize, duration: Duration) -> JoinHandle<LoadReport> {
        let targets = self.load_targets();
        let config = LoadConfig {
            kind: Kind::Saga,
            pacing: Pacing::Closed { concurrency },
            stop: Stop::Duration(duration),
            warmup: Duration::ZERO,
            mix: Mix { fail_ratio: 0.2, keys: Keys::Uniform, skus: 50, customers: 50, seed: 16 },
            saga_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            post_retries: 50,
        };
        tokio::spawn(async move {
            load::run(&targets, &config, &progress_bar(0, false, false))
                .await
                .expect("the background load could not run")
        })
    }

    /// The four effects of `order_id` as the participants hold them, in saga order
    /// (reservation, payment, shipment, confirmation): `done`, `compensated` or `none`.
    pub async fn effects(&self, order_id: Uuid) -> [String; 4] {
        let pool = self.db.superuser_pool().await.expect("superuser pool");
        let (r, p, h, n): (String, String, String, String) = sqlx::query_as(
            r#"select coalesce((select state from inventory.reservations where order_id = $1), 'none'),
                      coalesce((select state from payment.payments where order_id = $1), 'none'),
                      coalesce((select state from shipping.shipments where order_id = $1), 'none'),
                      coalesce((select state from notification.notifications where order_id = $1), 'none')"#,
        )
        .bind(order_id)
        .fetch_one(&pool)
        .await
        .expect("the effects of an order");
        [r, p, h, n]
    }

    /// How the order's timeline ends: its `saga` events that say `completed`, `compensated` or
    /// `failed`, in order (one, for a saga that ended once).
    pub async fn endings(&self, order_id: Uuid) -> Vec<String> {
        self.timeline(order_id)
            .await
            .into_iter()
            .filter_map(|entry| entry.strip_prefix("saga:").map(str::to_owned))
            // A saga's ending event has its terminal status's name.
            .filter(|outcome| SagaStatus::TERMINAL.iter().any(|status| status.as_str() == outcome))
            .collect()
    }
}

/// A row held `FOR UPDATE` by a transaction of the test's own, from a connection of its own:
/// a participant's transaction that needs the row waits (its call stays in flight) until
/// [`RowLock::release`].
#[derive(Debug)]
pub struct RowLock {
    tx: Transaction<'static, Postgres>,
    /// The backend holding the lock.
    backend: i32,
}

impl RowLock {
    /// Locks `customer`'s account in `payment.accounts` (superuser `pool` of the test's database).
    pub async fn account(pool: &PgPool, customer: &str) -> Self {
        let mut tx = pool.begin().await.expect("begin");
        let backend: i32 = sqlx::query_scalar("select pg_backend_pid()").fetch_one(&mut *tx).await.expect("backend");
        let locked: Option<i64> =
            sqlx::query_scalar("select balance_cents from payment.accounts where customer_id = $1 for update")
                .bind(customer)
                .fetch_optional(&mut *tx)
                .await
                .expect("lock the account");
        assert!(locked.is_some(), "no account for {customer}");
        Self { tx, backend }
    }

    /// Waits until another backend waits for this lock: the participant's call is in flight and
    /// its transaction is stuck on the row. Panics after `timeout`.
    pub async fn wait_until_someone_waits(&self, pool: &PgPool, timeout: Duration) {
        let waited = Poll::new(timeout, Duration::from_millis(10))
            .holds(async || {
                sqlx::query_scalar(
                    "select exists (select 1 from pg_stat_activity where $1 = any (pg_blocking_pids(pid)))",
                )
                .bind(self.backend)
                .fetch_one(pool)
                .await
                .expect("pg_blocking_pids")
            })
            .await;
        assert!(waited, "nobody waited for the locked row within {timeout:?}");
    }

    /// Lets the waiting transaction go on (the test's transaction changed nothing).
    pub async fn release(self) {
        self.tx.rollback().await.expect("release the lock");
    }
}
