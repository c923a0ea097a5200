//! `sagactl audit`: checks the invariants of DESIGN.md §5 on the suite `sagactl up` runs (see
//! [`crate::audit`]), or records the snapshot a later audit checks conservation against.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use serde::Serialize;

use crate::{
    audit::{self, AuditReport, ListedSaga, Snapshot},
    load::progress::progress_bar,
};
use saga_suite::{provision::superuser_pool, state::StateDir};

/// Sagas and violations printed per list; `--json` has them all.
const LISTED: usize = 50;

/// What `sagactl audit` does.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Record the stock and balances in FILE (before a run) and exit; pass it to `--against`
    /// afterwards to check that stock and money are conserved.
    #[arg(long, value_name = "FILE", conflicts_with = "against")]
    pub snapshot: Option<PathBuf>,
    /// Check conservation of stock and balances since the snapshot in FILE.
    #[arg(long, value_name = "FILE")]
    pub against: Option<PathBuf>,
    /// Wait up to this many seconds for sagas in flight to end before auditing.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub wait_secs: u64,
    /// Count each saga not yet terminal as a violation (`--require-terminal false`: only list them).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_terminal: bool,
    /// Print the result as one JSON document on stdout (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// Runs `sagactl audit`: exit status 1 when an invariant is broken.
pub async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let state = StateDir::from_env()?.load_running()?;
    let pool = superuser_pool(&state.postgres.admin_url, &state.database, 2).await?;
    if let Some(path) = &args.snapshot {
        let snapshot = audit::snapshot(&pool).await?;
        write_snapshot(path, &snapshot)?;
        print_snapshot(path, &snapshot, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let initial = args.against.as_deref().map(read_snapshot).transpose()?;
    if args.wait_secs > 0 {
        let progress = progress_bar(0, true, !args.json);
        progress.set_message("sagas ended");
        audit::wait_terminal(&pool, Duration::from_secs(args.wait_secs), |open, first| {
            progress.set_length(first);
            progress.set_position(first - open.min(first));
        })
        .await?;
        progress.finish_and_clear();
    }
    let report = audit::audit(&pool, initial.as_ref(), args.require_terminal).await?;
    if args.json {
        let output = JsonReport { ok: report.ok(), against: args.against.as_deref(), report: &report };
        crate::outln!("{}", serde_json::to_string_pretty(&output).context("cannot serialise the report")?);
    } else {
        for line in human_lines(&report, args.against.as_deref(), initial.as_ref()) {
            crate::outln!("{line}");
        }
    }
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[derive(Serialize)]
struct JsonReport<'a> {
    ok: bool,
    against: Option<&'a Path>,
    #[serde(flatten)]
    report: &'a AuditReport,
}

fn write_snapshot(path: &Path, snapshot: &Snapshot) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(snapshot).context("cannot serialise the snapshot")?;
    std::fs::write(path, json).with_context(|| format!("cannot write the snapshot to {}", path.display()))
}

fn read_snapshot(path: &Path) -> anyhow::Result<Snapshot> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the snapshot {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a snapshot written by `sagactl audit --snapshot`", path.display()))
}

fn print_snapshot(path: &Path, snapshot: &Snapshot, json: bool) -> anyhow::Result<()> {
    if json {
        let summary = serde_json::json!({
            "snapshot": path, "database": snapshot.database, "taken_at": snapshot.taken_at,
            "products": snapshot.stock.len(), "customers": snapshot.balances.len(),
        });
        crate::outln!("{}", serde_json::to_string_pretty(&summary).context("cannot serialise the summary")?);
    } else {
        crate::outln!(
            "Snapshot of {} products and {} customers of database {} written to {}; after the run: \
             sagactl audit --against {}",
            snapshot.stock.len(),
            snapshot.balances.len(),
            snapshot.database,
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// The report for people: counts, the lists, the verdict.
fn human_lines(report: &AuditReport, against: Option<&Path>, initial: Option<&Snapshot>) -> Vec<String> {
    let total: i64 = report.statuses.values().sum();
    let statuses: Vec<String> = report.statuses.iter().map(|(status, n)| format!("{status} {n}")).collect();
    let mut lines =
        vec![format!("sagactl audit: database {}, {total} sagas ({})", report.database, statuses.join(", "))];
    lines.push(match (against, initial) {
        (Some(path), Some(initial)) => {
            format!("conservation: against {} (taken at {})", path.display(), initial.taken_at)
        }
        _ => "conservation: reserved stock only (no --against snapshot: initial stock and balances unknown)".to_owned(),
    });
    let saga_line = |saga: &ListedSaga| match &saga.reason {
        Some(reason) => format!("  {} {}: {reason}", saga.order_id, saga.status),
        None => format!("  {} {}", saga.order_id, saga.status),
    };
    list(&mut lines, "not terminal", &report.not_terminal, saga_line);
    list(&mut lines, "failed, waiting for an operator", &report.needs_operator, saga_line);
    list(&mut lines, "violations", &report.violations, |v| format!("  {}: {}: {}", v.check, v.subject, v.detail));
    lines.push(if report.ok() {
        "OK: every invariant holds".to_owned()
    } else {
        format!("FAILED: {} violations", report.violations.len())
    });
    lines
}

fn list<T>(lines: &mut Vec<String>, title: &str, items: &[T], line: impl Fn(&T) -> String) {
    if items.is_empty() {
        return;
    }
    lines.push(format!("{title} ({}):", items.len()));
    lines.extend(items.iter().take(LISTED).map(line));
    if items.len() > LISTED {
        lines.push(format!("  … and {} more (--json lists them all)", items.len() - LISTED));
    }
}
