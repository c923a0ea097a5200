//! The benchmark's measurements (`sagactl bench`): runs of the load driver ([`crate::load`]) with
//! a warm-up and a measured window, through the orchestrator (`saga`) or calling the
//! participants directly (`direct`, the baseline the orchestrator is compared with), in a
//! closed loop (clients) or an open loop (a fixed rate). Around the measured window it reads
//! what each saga cost: CPU per process, database statements, transactions, WAL fsyncs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

use crate::load::{self, Keys, Kind, LoadConfig, LoadReport, Mix, Pacing, Stop, Targets};
use crate::procstat::Watchlist;

/// How long one saga may take before the benchmark calls it not finished: far beyond any
/// latency worth measuring.
const SAGA_TIMEOUT: Duration = Duration::from_secs(60);

/// One benchmark run: `pacing` orders of `kind` over `keys`, for `warmup + measure`; only the
/// measured window counts.
#[derive(Debug, Clone, Copy)]
pub struct BenchRun {
    /// Saga or direct chain.
    pub kind: Kind,
    /// Closed loop of N clients, or open loop at a rate.
    pub pacing: Pacing,
    /// Key distribution over the load SKUs and customers.
    pub keys: Keys,
    /// Load before the window (connections, caches, the planner's first plans).
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
}

/// What a saga cost in the measured window, per saga that ended in it.
#[derive(Debug, Clone, Serialize)]
pub struct Costs {
    /// CPU milliseconds per saga, by process (`postgres`, each service, `load`).
    pub cpu_ms: BTreeMap<String, f64>,
    /// Their sum: the whole machine's CPU per saga (as far as the suite uses it).
    pub cpu_ms_total: f64,
    /// Top-level statements per saga, by database role.
    pub statements: BTreeMap<String, f64>,
    pub statements_total: f64,
    /// Committed transactions per saga (each autocommit statement is one).
    pub transactions: f64,
    /// WAL flushes to disk per saga (`pg_stat_wal.wal_sync`): what fsync on costs.
    pub wal_syncs: f64,
    /// WAL bytes per saga.
    pub wal_bytes: f64,
    /// Full-page images written to the WAL per saga (`pg_stat_wal.wal_fpi`): each page's first
    /// change after a checkpoint begins is logged whole, so a checkpoint in the window shows
    /// here, and in the WAL bytes.
    pub wal_fpi: f64,
    /// Checkpoints begun in the window (timed or requested, `pg_stat_bgwriter`).
    pub checkpoints: i64,
    /// Autovacuum and autoanalyze runs finished in the window, over the suite's tables.
    pub autovacuums: i64,
    /// Share of the updates of the orchestrator's `sagas` rows that were HOT (in place, no
    /// index touched), in percent.
    pub saga_hot_update_pct: f64,
    /// Resident memory at the end of the window, MiB, by process (Postgres: proportional).
    pub memory_mib: BTreeMap<String, f64>,
}

/// A run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub mode: &'static str,
    /// `16 clients` or `500/s`.
    pub load: String,
    pub report: LoadReport,
    pub costs: Costs,
}

impl BenchRun {
    fn config(&self, stop: Duration) -> LoadConfig {
        LoadConfig {
            kind: self.kind,
            pacing: self.pacing,
            stop: Stop::Duration(stop),
            warmup: Duration::ZERO,
            mix: Mix {
                fail_ratio: 0.0,
                keys: self.keys,
                skus: load::mix::LOAD_SKUS,
                customers: load::mix::LOAD_CUSTOMERS,
                seed: 1,
            },
            saga_timeout: SAGA_TIMEOUT,
            request_timeout: Duration::from_secs(10),
            post_retries: 0,
        }
    }

    /// The load run it is: every order meant to complete, the whole window of orders.
    pub fn measured_config(&self) -> LoadConfig {
        self.config(self.measure)
    }

    /// Warms up, then measures; `progress` (possibly hidden) follows the measured run.
    pub async fn run(
        &self,
        targets: &Targets,
        admin: &PgPool,
        watch: &Watchlist,
        progress: &indicatif::ProgressBar,
    ) -> anyhow::Result<BenchResult> {
        if !self.warmup.is_zero() {
            load::run(targets, &self.config(self.warmup), &indicatif::ProgressBar::hidden()).await?;
        }
        sqlx::query("select pg_stat_statements_reset()").execute(admin).await?;
        let db_before = DbCounters::read(admin).await?;
        let cpu_before = watch.snapshot();
        let report = load::run(targets, &self.measured_config(), progress).await?;
        let cpu_after = watch.snapshot();
        let memory_mib = watch.memory_mib();
        let db_after = DbCounters::read(admin).await?;
        let sagas = (report.outcomes.completed + report.outcomes.compensated + report.outcomes.failed).max(1) as f64;
        let (cpu, _) = watch.cpu_ms_between(&cpu_before, &cpu_after);
        let cpu_ms: BTreeMap<String, f64> = cpu.into_iter().map(|(name, ms)| (name, ms / sagas)).collect();
        let statements: BTreeMap<String, f64> =
            statements_by_role(admin).await?.into_iter().map(|(role, calls)| (role, calls as f64 / sagas)).collect();
        let costs = Costs {
            cpu_ms_total: cpu_ms.values().sum(),
            cpu_ms,
            statements_total: statements.values().sum(),
            statements,
            transactions: (db_after.transactions - db_before.transactions) as f64 / sagas,
            wal_syncs: (db_after.wal_syncs - db_before.wal_syncs) as f64 / sagas,
            wal_bytes: (db_after.wal_bytes - db_before.wal_bytes) as f64 / sagas,
            wal_fpi: (db_after.wal_fpi - db_before.wal_fpi) as f64 / sagas,
            checkpoints: db_after.checkpoints - db_before.checkpoints,
            autovacuums: db_after.autovacuums - db_before.autovacuums,
            saga_hot_update_pct: 100.0 * (db_after.saga_hot_updates - db_before.saga_hot_updates) as f64
                / ((db_after.saga_updates - db_before.saga_updates).max(1)) as f64,
            memory_mib,
        };
        Ok(BenchResult { mode: self.mode(), load: self.load_label(), report, costs })
    }

    fn mode(&self) -> &'static str {
        match self.kind {
            Kind::Saga => "saga",
            Kind::Direct => "direct",
        }
    }

    fn load_label(&self) -> String {
        match self.pacing {
            Pacing::Closed { concurrency } => format!("{concurrency} clients"),
            Pacing::Open { rate, .. } => format!("{rate:.0}/s"),
        }
    }
}

/// Database-wide counters read before and after a window.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
struct DbCounters {
    transactions: i64,
    wal_syncs: i64,
    wal_bytes: i64,
    wal_fpi: i64,
    checkpoints: i64,
    autovacuums: i64,
    saga_updates: i64,
    saga_hot_updates: i64,
}

impl DbCounters {
    async fn read(admin: &PgPool) -> anyhow::Result<Self> {
        // Statistics reach the shared counters when a backend is idle for a moment (at most
        // every second): make this backend's own flush, then read. Other backends' last second
        // may be missing; over a 15 s window that is noise, the same in every mode.
        sqlx::query("select pg_stat_force_next_flush()").execute(admin).await?;
        Ok(sqlx::query_as(
            r#"select (select sum(xact_commit)::bigint from pg_stat_database) as transactions,
                      (select wal_sync::bigint from pg_stat_wal) as wal_syncs,
                      (select (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint) as wal_bytes,
                      (select wal_fpi::bigint from pg_stat_wal) as wal_fpi,
                      (select (checkpoints_timed + checkpoints_req)::bigint from pg_stat_bgwriter) as checkpoints,
                      (select coalesce(sum(autovacuum_count + autoanalyze_count), 0)::bigint
                       from pg_stat_user_tables) as autovacuums,
                      coalesce((select n_tup_upd from pg_stat_all_tables
                                where schemaname = 'orchestrator' and relname = 'sagas'), 0) as saga_updates,
                      coalesce((select n_tup_hot_upd from pg_stat_all_tables
                                where schemaname = 'orchestrator' and relname = 'sagas'), 0) as saga_hot_updates"#,
        )
        .fetch_one(admin)
        .await?)
    }
}

/// Top-level statements since the last reset, by the role that ran them.
async fn statements_by_role(admin: &PgPool) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        r#"select r.rolname, sum(s.calls)::bigint from pg_stat_statements s join pg_roles r on r.oid = s.userid
           where s.dbid = (select oid from pg_database where datname = current_database())
             and r.rolname = any($1)
           group by r.rolname order by r.rolname"#,
    )
    .bind(&saga_shared::suite::NAMES[..])
    .fetch_all(admin)
    .await?)
}

/// The table row of a run: mode, load, sagas/s, p50/p95/p99 ms, not completed, CPU ms per saga
/// (total, Postgres, orchestrator), statements, transactions and WAL syncs per saga.
pub fn row_cells(result: &BenchResult) -> String {
    let report = &result.report;
    let latency = &report.latency_ms;
    let costs = &result.costs;
    let cpu = |name: &str| costs.cpu_ms.get(name).copied().unwrap_or(0.0);
    format!(
        "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {:.2} |",
        result.mode,
        result.load,
        report.sagas_per_sec,
        latency.p50,
        latency.p95,
        latency.p99,
        report.placed - report.outcomes.completed,
        costs.cpu_ms_total,
        cpu("postgres"),
        cpu("orchestrator"),
        costs.statements_total,
        costs.transactions,
        costs.wal_syncs,
    )
}

/// The header of [`row_cells`]'s table.
pub const TABLE_HEADER: &str = "| mode | load | sagas/s | p50 ms | p95 ms | p99 ms | not completed | CPU ms/saga | \
                                 Postgres CPU ms | orchestrator CPU ms | statements | transactions | WAL syncs |\n\
                                 |---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// Per-process detail of a run: CPU ms per saga and resident MiB of each process.
pub fn detail_line(result: &BenchResult) -> String {
    let cpu: Vec<String> = result.costs.cpu_ms.iter().map(|(name, ms)| format!("{name} {ms:.2}")).collect();
    let memory: Vec<String> = result.costs.memory_mib.iter().map(|(name, mib)| format!("{name} {mib:.0}")).collect();
    let statements: Vec<String> = result.costs.statements.iter().map(|(role, n)| format!("{role} {n:.1}")).collect();
    format!(
        "  {} {}: CPU ms/saga {}; statements/saga {}; WAL bytes/saga {:.0} ({:.2} full pages); checkpoints {}; \
         autovacuums {}; HOT saga updates {:.0} %; RSS MiB {}",
        result.mode,
        result.load,
        cpu.join(", "),
        statements.join(", "),
        result.costs.wal_bytes,
        result.costs.wal_fpi,
        result.costs.checkpoints,
        result.costs.autovacuums,
        result.costs.saga_hot_update_pct,
        memory.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bench_run_is_a_valid_load_run_of_happy_orders_without_its_own_warm_up() {
        let run = BenchRun {
            kind: Kind::Saga,
            pacing: Pacing::Closed { concurrency: 16 },
            keys: Keys::Hot,
            warmup: Duration::from_secs(3),
            measure: Duration::from_secs(15),
        };
        let config = run.measured_config();
        assert!(config.validate().is_ok());
        assert_eq!(config.stop, Stop::Duration(Duration::from_secs(15)));
        assert_eq!(config.warmup, Duration::ZERO);
        assert_eq!(config.mix.fail_ratio, 0.0);
        assert_eq!(run.load_label(), "16 clients");
    }
}
