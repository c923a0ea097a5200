//! `sagactl bench`: the suite's benchmark, self-contained and repeatable.
//!
//! Starts its own Postgres with production durability (fsync and synchronous_commit on) and
//! `pg_stat_statements`, the five services, then runs load at each level (closed loop: clients;
//! open loop: rates) through the orchestrator (`saga`) and calling the participants directly
//! (`direct`, the baseline). For each run it prints throughput and latency, and what a saga cost
//! in the measured window: CPU milliseconds of every process (Postgres, each service, the load
//! tool), database statements by role (top-level only, `pg_stat_statements.track=top`: each is
//! one client round trip), transactions and WAL fsyncs; and each process's resident memory.

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use saga_shared::suite;
use sqlx::PgPool;

use saga_suite::{
    DatabaseChoice, Instance, Suite, SuiteOptions, ports,
    postgres::TempPostgresOptions,
    provision::superuser_pool,
    services::{LauncherEnv, SUITE, Service},
};

use crate::{
    bench::{BenchRun, TABLE_HEADER, detail_line, row_cells},
    load::{Keys, Kind, Pacing, Targets, progress::progress_bar},
    procstat::{Watched, Watchlist},
};

/// What `sagactl bench` runs.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Concurrent clients, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    pub clients: Vec<usize>,
    /// Seconds of load before measuring (connections, caches, JIT of the planner).
    #[arg(long, default_value_t = 3)]
    pub warmup_secs: u64,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 15)]
    pub measure_secs: u64,
    /// Skip the direct baseline.
    #[arg(long)]
    pub saga_only: bool,
    /// Also print each statement's calls per order (where the round trips go).
    #[arg(long)]
    pub statements: bool,
    /// How orders spread over the load SKUs and customers (`hot`: every order the same SKU).
    #[arg(long, value_enum, default_value_t = Keys::Uniform)]
    pub keys: Keys,
    /// Open-loop rates (orders per second), one run per value, after the closed-loop runs.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// Then ramp an open-loop saga load up from 50/s (×1.5 a step) until p99 from POST to the
    /// saga's end reaches this many milliseconds: the highest rate that stayed under it.
    #[arg(long, value_name = "MS")]
    pub ramp_p99_ms: Option<f64>,
    /// Print one JSON document with every run's report and costs instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Another Postgres server setting, `NAME=VALUE` (repeatable), after the suite's own: to
    /// measure a setting before changing the suite's (`--pg-setting wal_compression=off`).
    #[arg(long = "pg-setting", value_name = "NAME=VALUE", value_parser = pg_setting)]
    pub pg_settings: Vec<String>,
}

/// The ramp's first rate, and the factor between two steps.
const RAMP_START: f64 = 50.0;
const RAMP_FACTOR: f64 = 1.5;

/// Open-loop saga runs at rising rates while p99 stays under `target_ms` and the schedule
/// holds; returns the highest rate that did (each run is also added to `results`).
async fn find_highest_rate(
    args: &BenchArgs,
    target_ms: f64,
    targets: &Targets,
    admin: &PgPool,
    watch: &Watchlist,
    results: &mut Vec<crate::bench::BenchResult>,
) -> anyhow::Result<Option<f64>> {
    let mut rate = RAMP_START;
    let mut highest = None;
    loop {
        let run = BenchRun {
            kind: Kind::Saga,
            pacing: Pacing::Open { rate, max_outstanding: OPEN_LOOP_MAX_OUTSTANDING },
            keys: args.keys,
            warmup: Duration::from_secs(args.warmup_secs),
            measure: Duration::from_secs(args.measure_secs),
        };
        let progress = progress_bar(args.measure_secs, false, !args.json);
        let result = run.run(targets, admin, watch, &progress).await;
        progress.finish_and_clear();
        let result = result?;
        let report = &result.report;
        // Late orders mean the rate was not offered at all: that counts as a miss.
        let held = report.ok && report.late == 0 && report.latency_ms.p99 < target_ms;
        if !args.json {
            crate::outln!("{}", row_cells(&result));
        }
        results.push(result);
        if !held {
            return Ok(highest);
        }
        highest = Some(rate);
        rate *= RAMP_FACTOR;
    }
}

/// A `--pg-setting`: `name=value` with a Postgres parameter name (letters, digits, `_` and `.`).
fn pg_setting(text: &str) -> Result<String, String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let valid_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !valid_name || value.is_empty() {
        return Err(format!("{text:?} is not NAME=VALUE with a Postgres parameter name"));
    }
    Ok(text.to_owned())
}

/// Open loop: the bound on orders in flight (past it the schedule slips, and the run says so).
const OPEN_LOOP_MAX_OUTSTANDING: usize = 1000;

/// Runs the benchmark and prints a table.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let launcher = LauncherEnv::from_process();
    let database = DatabaseChoice::Temporary(TempPostgresOptions {
        fast: false,
        max_connections: 400,
        settings: [
            vec!["shared_preload_libraries=pg_stat_statements".to_owned(), "pg_stat_statements.track=top".to_owned()],
            args.pg_settings.clone(),
        ]
        .concat(),
        ..TempPostgresOptions::default()
    });
    let logs = tempdir()?;
    // Held until the bench ends, so no other process of ours takes a port of its services.
    let reserved = ports::reserve(SUITE.len())?;
    let instances = SUITE.iter().zip(reserved.ports()).map(|(spec, &port)| Instance::of(spec, port)).collect();
    let options = SuiteOptions {
        admin_token: "bench-admin-token".to_owned(),
        launcher: launcher.clone(),
        // Quiet unless RUST_LOG says otherwise: `RUST_LOG=info` measures the logs as `up` writes
        // them, and is needed to measure trace export (its spans are at info).
        env: BTreeMap::from([
            ("RUST_LOG".to_owned(), launcher.get("RUST_LOG").unwrap_or("warn").to_owned()),
            ("DB_MAX_CONNECTIONS".to_owned(), "32".to_owned()),
        ]),
        reserved: Some(reserved),
        ..SuiteOptions::new(database, instances, launcher.bin_dir()?, logs.clone())
    };
    let suite = Suite::start(options).await?;
    let db = suite.database.as_ref().context("internal error: the bench's suite has no database")?;
    let admin = superuser_pool(&db.admin_url(), "saga", 2).await?;
    sqlx::query("create extension if not exists pg_stat_statements").execute(&admin).await?;

    let url = |service: Service| -> anyhow::Result<String> { Ok(service.local_url(suite.port(service.name)?)) };
    let targets = Targets {
        orchestrator: url(suite::ORCHESTRATOR)?,
        participants: [url(suite::INVENTORY)?, url(suite::PAYMENT)?, url(suite::SHIPPING)?, url(suite::NOTIFICATION)?],
    };

    let postgres_pid = db.pid().context("internal error: the bench's Postgres has no pid")?;
    let mut watched = vec![Watched::Family { name: "postgres".to_owned(), pid: postgres_pid }];
    for spec in SUITE.iter() {
        let process = suite.process(spec.name).with_context(|| format!("{} has exited", spec.name))?;
        watched.push(Watched::Process { name: spec.name.to_owned(), pid: process.pid() });
    }
    let watch = Watchlist::new(watched);
    let at_rest = watch.memory_mib();

    if !args.json {
        crate::outln!(
            "sagactl bench: Postgres {} (fsync on, synchronous_commit on), {} CPUs, keys {:?}, logs in {}",
            db.state().port,
            num_cpus(),
            args.keys,
            logs.display()
        );
        let rest: Vec<String> = at_rest.iter().map(|(name, mib)| format!("{name} {mib:.0}")).collect();
        crate::outln!("RSS at rest, MiB: {}", rest.join(", "));
        crate::outln!("{TABLE_HEADER}");
    }
    let kinds: &[Kind] = if args.saga_only { &[Kind::Saga] } else { &[Kind::Direct, Kind::Saga] };
    let mut pacings: Vec<Pacing> = args.clients.iter().map(|&concurrency| Pacing::Closed { concurrency }).collect();
    pacings.extend(args.rates.iter().map(|&rate| Pacing::Open { rate, max_outstanding: OPEN_LOOP_MAX_OUTSTANDING }));
    // A run with transport errors or sagas that never ended still prints its row, and the
    // benchmark then exits non-zero: its figures are not to be trusted.
    let mut clean = true;
    let mut results = Vec::new();
    let mut ramp: Option<Option<f64>> = None;
    let outcome = async {
        for &pacing in &pacings {
            for &kind in kinds {
                let run = BenchRun {
                    kind,
                    pacing,
                    keys: args.keys,
                    warmup: Duration::from_secs(args.warmup_secs),
                    measure: Duration::from_secs(args.measure_secs),
                };
                let progress = progress_bar(args.measure_secs, false, !args.json);
                let result = run.run(&targets, &admin, &watch, &progress).await;
                progress.finish_and_clear();
                let result = result?;
                clean &= result.report.ok;
                if !args.json {
                    crate::outln!("{}", row_cells(&result));
                    if args.statements {
                        print_statements(&admin, result.report.outcomes.completed as i64).await?;
                    }
                }
                results.push(result);
            }
        }
        if let Some(target_ms) = args.ramp_p99_ms {
            ramp = Some(find_highest_rate(&args, target_ms, &targets, &admin, &watch, &mut results).await?);
        }
        anyhow::Ok(())
    }
    .await;
    if args.json {
        let document = serde_json::json!({ "rss_at_rest_mib": at_rest, "runs": results, "ramp_highest_rate": ramp });
        crate::outln!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        crate::outln!("\nPer process (CPU ms per saga, statements per saga by role, RSS under load):");
        for result in &results {
            crate::outln!("{}", detail_line(result));
        }
        match (ramp, args.ramp_p99_ms) {
            (Some(Some(rate)), Some(target)) => {
                crate::outln!("\nHighest open-loop rate with p99 under {target} ms: {rate:.0} sagas/s")
            }
            (Some(None), Some(target)) => crate::outln!("\nNo rate tried kept p99 under {target} ms"),
            _ => {}
        }
    }

    suite.stop().await;
    outcome?;
    if !clean {
        eprintln!("sagactl bench: some orders failed with transport errors or 5xx, or their sagas never ended");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Each statement's calls per order, most frequent first.
async fn print_statements(admin: &PgPool, orders: i64) -> anyhow::Result<()> {
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        r#"select r.rolname, s.calls, regexp_replace(left(s.query, 110), '\s+', ' ', 'g')
           from pg_stat_statements s join pg_roles r on r.oid = s.userid
           where s.dbid = (select oid from pg_database where datname = current_database())
             and r.rolname in ('orchestrator', 'inventory', 'payment', 'shipping', 'notification')
           order by s.calls desc limit 40"#,
    )
    .fetch_all(admin)
    .await?;
    for (role, calls, query) in rows {
        crate::outln!("    {:>6.2}  {role:<12} {query}", calls as f64 / orders.max(1) as f64);
    }
    Ok(())
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("sagactl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::pg_setting;

    #[test]
    fn a_pg_setting_is_name_equals_value() {
        assert_eq!(pg_setting("commit_delay=200").as_deref(), Ok("commit_delay=200"));
        assert_eq!(pg_setting("pg_stat_statements.track=top").as_deref(), Ok("pg_stat_statements.track=top"));
        for bad in ["commit_delay", "=1", "commit_delay=", "a b=1", "x;y=1"] {
            assert!(pg_setting(bad).is_err(), "{bad}");
        }
    }
}
