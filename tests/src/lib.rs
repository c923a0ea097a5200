//! The end-to-end test harness: a fresh database on a real Postgres for each test, the real
//! service binaries as child processes on free ports, and a small HTTP client.
//!
//! Postgres: `SAGA_TEST_ADMIN_URL` (a superuser URL; `scripts/test.sh` starts one throwaway
//! cluster for the whole run and sets it), else each test starts its own throwaway cluster.
//! Binaries: the `target/<profile>` directory the test executable lives in, or `SAGA_BIN_DIR`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod audit;
mod browser;
mod client;
mod devtools;
mod orders;
pub mod payment;
mod processes;
pub mod prometheus;
mod races;
pub mod shipping;
mod sse;
mod up;

pub use audit::{AuditReport, Snapshot};
pub use browser::{Chromium, Dom, Element, artifacts_dir};
pub use client::{Answer, Http};
pub use devtools::Page;
pub use orders::{happy_order, order_body};
pub use processes::{ADMIN_TOKEN, SLOW_CALL_ENV, SLOW_CALL_MS, Service, Suite, bin_dir};
pub use races::RowLock;
pub use sse::{EventStream, Next};
pub use up::{UP_ADMIN_TOKEN, UP_SERVICES, UpSuite};

use saga_suite::{
    postgres::{TempPostgres, TempPostgresOptions},
    provision::{Provisioned, provision},
};
use sqlx::{PgPool, postgres::PgPoolOptions};

/// The repository's root (where `sagactl up` finds the dashboards and alert rules).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .expect("repository root")
}

/// A fresh database of its own for one test, provisioned like production (schemas and roles).
#[derive(Debug)]
pub struct TestDb {
    /// Superuser URL of the cluster's `postgres` database.
    pub admin_url: String,
    /// The database's name (`t_<uuid>`).
    pub name: String,
    /// Per-service connection URLs.
    pub provisioned: Provisioned,
    /// The cluster, when this test started its own (stopped on drop).
    cluster: Option<TempPostgres>,
}

impl TestDb {
    /// Provisions a new database on the shared cluster, or on a throwaway one of this test's own.
    pub async fn new() -> anyhow::Result<Self> {
        match std::env::var("SAGA_TEST_ADMIN_URL") {
            Ok(url) if !url.is_empty() => Self::provision(url, None).await,
            _ => Self::with_own_cluster().await,
        }
    }

    /// Provisions a new database on a throwaway cluster of this test's own (which
    /// [`Self::stop_own_cluster`] can stop, to take the database away from the services).
    pub async fn with_own_cluster() -> anyhow::Result<Self> {
        let cluster = TempPostgres::start(TempPostgresOptions { fast: true, ..TempPostgresOptions::default() }).await?;
        Self::provision(cluster.admin_url(), Some(cluster)).await
    }

    async fn provision(admin_url: String, cluster: Option<TempPostgres>) -> anyhow::Result<Self> {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let provisioned = provision(&admin_url, &name).await?;
        Ok(Self { admin_url, name, provisioned, cluster })
    }

    /// Stops this test's own cluster; `false` when the database is on the shared one.
    pub fn stop_own_cluster(&mut self) -> bool {
        self.cluster.take().is_some()
    }

    /// A pool connected as `service`'s own role (what that service itself can see).
    pub async fn pool_as(&self, service: &str) -> anyhow::Result<PgPool> {
        Ok(PgPoolOptions::new().max_connections(4).connect(&self.provisioned.service_url(service)).await?)
    }

    /// A superuser pool on this test's database, for arranging and auditing state.
    pub async fn superuser_pool(&self) -> anyhow::Result<PgPool> {
        saga_suite::provision::superuser_pool(&self.admin_url, &self.name, 4).await
    }
}
