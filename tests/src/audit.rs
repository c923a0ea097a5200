//! The audit of DESIGN.md §5 on a test's database: the very code `sagactl audit` runs
//! ([`sagactl::audit`]), with a test's way of failing (a panic).

pub use sagactl::audit::{AuditReport, Snapshot};

use crate::Suite;

impl Suite {
    /// Takes the stock/balance snapshot the audit compares against.
    pub async fn snapshot(&self) -> Snapshot {
        let pool = self.db.superuser_pool().await.expect("superuser pool");
        sagactl::audit::snapshot(&pool).await.expect("snapshot")
    }

    /// Checks every invariant against `initial`, every saga required to be terminal.
    pub async fn audit(&self, initial: &Snapshot) -> AuditReport {
        let pool = self.db.superuser_pool().await.expect("superuser pool");
        sagactl::audit::audit(&pool, Some(initial), true).await.expect("audit")
    }
}
