//! What the executor needs of the durable saga log, as a trait: [`PgStore`] is the real log in
//! Postgres ([`super::log`]); the executor simulation (`engine/tests/executor_sim.rs`)
//! plugs in a log in memory with the same fencing, so the real executor, group commit and
//! driver registry run under a seeded scheduler with faults the real database cannot be made to
//! show on demand (a commit whose acknowledgement is lost, a write stalled past the lease).

use std::{future::Future, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    log::{self, Claimed, Inserted, Lease, Save},
    machine::NewEvent,
    state::Saga,
};

/// A written save: the row's new version and time.
pub type Written = (i64, DateTime<Utc>);

/// The saga log as the executor uses it. Every write that changes a saga is fenced on the
/// version the writer holds.
pub trait SagaStore: Send + Sync + 'static {
    /// Writes a new saga and its `started` event, owned by `owner` for `lease`.
    fn insert(
        &self,
        saga: &Saga,
        started: &NewEvent,
        idempotency_key: Option<&str>,
        owner: &str,
        lease: Duration,
    ) -> impl Future<Output = Result<Inserted, sqlx::Error>> + Send;

    /// Writes every save of `batch` in one transaction, each fenced on its own version, and
    /// appends each written save's events (only those). The answer has one entry per save, in
    /// order: `Some` when written, `None` when fenced out.
    fn save_all(
        &self,
        batch: &[Save<'_>],
        lease: Lease<'_>,
    ) -> impl Future<Output = Result<Vec<Option<Written>>, sqlx::Error>> + Send;

    /// Appends events to a saga's timeline without touching the saga.
    fn append(
        &self,
        order_id: Uuid,
        events: &[NewEvent],
        instance: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// The saga as the log holds it.
    fn load(&self, order_id: Uuid) -> impl Future<Output = Result<Option<Saga>, sqlx::Error>> + Send;

    /// Claims up to `limit` due sagas that nobody owns (or whose lease expired), leaving out
    /// `driven_here` (sagas this process drives: recovery never claims those).
    fn claim_due(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
        driven_here: &[Uuid],
    ) -> impl Future<Output = Result<Vec<Claimed>, sqlx::Error>> + Send;

    /// Gives up ownership of `saga` (at its version) so another instance can resume it.
    fn release(&self, saga: &Saga) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

    /// Extends the lease of a saga still held at `version` (a driver waiting for its
    /// participant's circuit writes nothing meanwhile); `false` if someone wrote it since.
    fn renew(
        &self,
        order_id: Uuid,
        version: i64,
        lease: Lease<'_>,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;
}

/// The saga log in Postgres.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// The orchestrator's pool.
    pub pool: PgPool,
}

impl SagaStore for PgStore {
    async fn insert(
        &self,
        saga: &Saga,
        started: &NewEvent,
        idempotency_key: Option<&str>,
        owner: &str,
        lease: Duration,
    ) -> Result<Inserted, sqlx::Error> {
        log::insert(&self.pool, saga, started, idempotency_key, owner, lease).await
    }

    async fn save_all(&self, batch: &[Save<'_>], lease: Lease<'_>) -> Result<Vec<Option<Written>>, sqlx::Error> {
        log::save_all(&self.pool, batch, lease).await
    }

    async fn append(&self, order_id: Uuid, events: &[NewEvent], instance: &str) -> Result<(), sqlx::Error> {
        log::append(&self.pool, order_id, events, instance).await
    }

    async fn load(&self, order_id: Uuid) -> Result<Option<Saga>, sqlx::Error> {
        log::load(&self.pool, order_id).await
    }

    async fn claim_due(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
        driven_here: &[Uuid],
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        log::claim_due(&self.pool, owner, lease, limit, driven_here).await
    }

    async fn release(&self, saga: &Saga) -> Result<bool, sqlx::Error> {
        log::release(&self.pool, saga).await
    }

    async fn renew(&self, order_id: Uuid, version: i64, lease: Lease<'_>) -> Result<bool, sqlx::Error> {
        log::renew(&self.pool, order_id, version, lease).await
    }
}
