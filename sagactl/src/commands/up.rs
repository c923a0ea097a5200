//! `sagactl up`: a database, its provisioning, every service; then wait for Ctrl-C/SIGTERM and
//! stop it all in order (services first, then the database they use).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};

use saga_suite::database::{Database, watch_postgres};
use saga_suite::invocation::build_command;
use saga_suite::monitoring::grafana::{self, LocalGrafana};
use saga_suite::monitoring::prometheus::{self, LocalPrometheus};
use saga_suite::ports::port_is_free;
use saga_suite::process::{Ending, is_alive, runs_binary, terminate_all};
use saga_suite::provision::validate_identifier;
use saga_suite::services::{LauncherEnv, SUITE, Service, optional};
use saga_suite::state::{LOCK_TIMEOUT, StateDir, SuiteState, ToolState};
use saga_suite::{Instance, Suite, SuiteOptions};

use super::signals::StopSignals;
use super::summary::print_summary;

/// Grace period between SIGTERM and SIGKILL for the services.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What `sagactl up` takes besides the environment.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct UpArgs {
    /// Keep the Postgres cluster in this directory (created on first use, reused by later runs,
    /// never deleted) instead of a temporary one. The `postgres` user must be able to reach it
    /// when sagactl runs as root (e.g. a directory under /tmp).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Runs `up` until a stop signal. Postgres dying does not stop it: the services wait for the
/// database, and `sagactl start postgres` brings it back on the same port and data.
pub async fn up(dir: &StateDir, launcher: &LauncherEnv, args: UpArgs) -> anyhow::Result<ExitCode> {
    refuse_if_running(dir)?;
    // Everything that can be checked without side effects is checked before Postgres starts.
    let (admin_token, token_generated) = launcher.admin_token()?;
    let database = launcher.get("SAGA_DATABASE").unwrap_or("saga").to_owned();
    validate_identifier(&database).context("SAGA_DATABASE")?;
    let plan = plan(launcher)?;
    let launcher = &with_grafana_link(launcher);
    let mut signals = StopSignals::install()?;
    dir.create()?;

    let options = SuiteOptions {
        database_name: database.clone(),
        start: plan.iter().map(|p| p.spec.name.to_owned()).collect(),
        admin_token: admin_token.clone(),
        launcher: launcher.clone(),
        ..SuiteOptions::new(
            Database::choice(launcher, args.data_dir),
            plan.iter().map(|p| Instance::of(p.spec, p.port)).collect(),
            launcher.bin_dir()?,
            dir.logs_dir(),
        )
    };
    // Dropping the unfinished start (a Ctrl-C) kills the services it started and stops its
    // cluster.
    let started = tokio::select! {
        result = Suite::start(options) => result,
        name = signals.recv() => Err(anyhow!("interrupted by {name} during start-up")),
    };
    let (mut suite, state) = match started.and_then(|suite| record(dir, &database, &admin_token, suite)) {
        Ok(started) => started,
        Err(err) => {
            eprintln!("sagactl: start-up failed; stopping what was started");
            shut_down(dir, None).await;
            return Err(err);
        }
    };
    let Some(running_db) = suite.database.as_mut() else {
        bail!("internal error: start-up succeeded without a database");
    };
    print_summary(&state, &plan, running_db, token_generated);
    let prometheus = start_prometheus(dir, launcher, &state).await;
    // Grafana may take a minute to come up: a Ctrl-C meanwhile stops everything now, not after
    // the wait (dropping the unfinished start kills that Grafana).
    let mut grafana = None;
    let interrupted = tokio::select! {
        started = start_grafana(dir, launcher, prometheus.as_ref()) => {
            grafana = started;
            None
        }
        name = signals.recv() => Some(name),
    };

    match interrupted {
        Some(name) => eprintln!("sagactl: {name} received; stopping the suite"),
        None => tokio::select! {
            name = signals.recv() => eprintln!("sagactl: {name} received; stopping the suite"),
            () = watch_postgres(dir, running_db) => {}
        },
    }
    // Grafana first: it queries Prometheus.
    if let Some(grafana) = grafana {
        grafana.stop().await;
    }
    if let Some(prometheus) = prometheus {
        prometheus.stop().await;
    }
    shut_down(dir, suite.database.take()).await;
    Ok(ExitCode::SUCCESS)
}

/// Starts a local Prometheus when one is installed (`PROMETHEUS_PORT`, default 9090); a missing
/// or failing Prometheus never stops the suite, it is only reported.
async fn start_prometheus(dir: &StateDir, launcher: &LauncherEnv, state: &SuiteState) -> Option<LocalPrometheus> {
    if prometheus::disabled(launcher) {
        eprintln!("sagactl: not starting Prometheus (PROMETHEUS is set to nothing)");
        return None;
    }
    let Some(binary) = prometheus::find(launcher) else {
        eprintln!("sagactl: {}", prometheus::INSTALL_HINT);
        return None;
    };
    let port = tool_port(launcher, "PROMETHEUS_PORT", 9090, "Prometheus")?;
    let log_path = dir.log_path("prometheus");
    match LocalPrometheus::start(&binary, state, &dir.root().join("prometheus"), port, &log_path).await {
        Ok(prometheus) => {
            let rules = prometheus.rules.as_ref().map_or_else(
                || "no alert rules found (run from the repository root or set SAGA_ALERT_RULES)".to_owned(),
                |r| format!("alert rules {}", r.display()),
            );
            crate::outln!(
                "Prometheus    {}  ({rules}; try the query `saga_in_flight` or open /alerts)",
                prometheus.url
            );
            record_tool(dir, "prometheus", prometheus.tool_state()).await;
            Some(prometheus)
        }
        Err(err) => {
            eprintln!("sagactl: warning: {err:#}; continuing without Prometheus");
            None
        }
    }
}

/// The launcher's environment with `GRAFANA_URL` set to the Grafana this command is about to
/// start (when it is installed and wanted), so the console links to it; a `GRAFANA_URL` already
/// set says where another one is.
fn with_grafana_link(launcher: &LauncherEnv) -> LauncherEnv {
    if launcher.get("GRAFANA_URL").is_some() || grafana::disabled(launcher) || grafana::find(launcher).is_none() {
        return launcher.clone();
    }
    let port = launcher.get("GRAFANA_PORT").and_then(|port| port.parse::<u16>().ok()).unwrap_or(3000);
    launcher.with("GRAFANA_URL", &format!("http://127.0.0.1:{port}"))
}

/// Starts a local Grafana when one is installed (`GRAFANA_PORT`, default 3000), showing the
/// repository's dashboard over the local Prometheus; like Prometheus, a missing or failing
/// Grafana is only reported.
async fn start_grafana(
    dir: &StateDir,
    launcher: &LauncherEnv,
    prometheus: Option<&LocalPrometheus>,
) -> Option<LocalGrafana> {
    if grafana::disabled(launcher) {
        eprintln!("sagactl: not starting Grafana (GRAFANA is set to nothing)");
        return None;
    }
    let Some(binary) = grafana::find(launcher) else {
        eprintln!("sagactl: {}", grafana::INSTALL_HINT);
        return None;
    };
    let Some(prometheus) = prometheus else {
        eprintln!("sagactl: not starting Grafana: its dashboard reads the local Prometheus, which is not running");
        return None;
    };
    let home = match grafana::home(launcher, &binary.path) {
        Ok(home) => home,
        Err(err) => {
            eprintln!("sagactl: warning: {err:#}; not starting Grafana");
            return None;
        }
    };
    // The repository root, found as the alert rules are: the current directory.
    let dashboards = match std::env::current_dir()
        .context("cannot read the current directory")
        .and_then(|root| grafana::dashboards(&root))
    {
        Ok(dashboards) => dashboards,
        Err(err) => {
            eprintln!("sagactl: warning: {err:#}; not starting Grafana");
            return None;
        }
    };
    let port = tool_port(launcher, "GRAFANA_PORT", 3000, "Grafana")?;
    let setup =
        grafana::Setup { binary: &binary, home: &home, dashboards: &dashboards, prometheus_url: &prometheus.url };
    eprintln!("sagactl: starting Grafana on port {port} ({}; it can take a minute)", binary.path.display());
    let log_path = dir.log_path("grafana");
    match LocalGrafana::start(&setup, &dir.root().join("grafana"), port, &log_path).await {
        Ok(grafana) => {
            crate::outln!(
                "Grafana       {}  (the \"{}\" dashboard, anonymous viewer; log {})",
                grafana.dashboard_url,
                dashboards.title,
                log_path.display()
            );
            record_tool(dir, "grafana", grafana.tool_state()).await;
            Some(grafana)
        }
        Err(err) => {
            eprintln!("sagactl: warning: {err:#}; continuing without Grafana");
            None
        }
    }
}

/// Adds a monitoring tool `up` started to the state file, for `sagactl status`; under the
/// state's lock, since another terminal's `sagactl restart` may be writing it. A failure is only
/// reported: the tool runs all the same.
async fn record_tool(dir: &StateDir, name: &str, tool: ToolState) {
    let recorded = async {
        let _lock = dir.lock(LOCK_TIMEOUT).await?;
        let mut state = dir.load_running()?;
        state.tools.insert(name.to_owned(), tool);
        dir.save(&state)
    };
    if let Err(err) = recorded.await {
        eprintln!("sagactl: warning: cannot record {name} in the state file: {err:#}");
    }
}

/// The port of a monitoring tool `up` starts (`key`, else `default`); `None`, reported, when it
/// is invalid or taken: the tool is skipped, the suite runs on.
fn tool_port(launcher: &LauncherEnv, key: &str, default: u16, tool: &str) -> Option<u16> {
    let port = match launcher.get(key).map(str::parse::<u16>) {
        None => default,
        Some(Ok(port)) if port > 0 => port,
        Some(Ok(_)) => {
            eprintln!("sagactl: {key} must be a port number from 1 to 65535; not starting {tool}");
            return None;
        }
        Some(Err(err)) => {
            eprintln!("sagactl: {key} is invalid ({err}); not starting {tool}");
            return None;
        }
    };
    if !port_is_free(port) {
        eprintln!("sagactl: port {port} is busy; not starting {tool} (set {key})");
        return None;
    }
    Some(port)
}

/// A second `up` on the same state directory would fight the first over ports and state.
fn refuse_if_running(dir: &StateDir) -> anyhow::Result<()> {
    if let Some(state) = dir.load()? {
        if state.launcher_alive() && state.launcher_pid != std::process::id() {
            bail!(
                "a suite is already running from {} (sagactl up, pid {}); stop it first",
                dir.root().display(),
                state.launcher_pid
            );
        }
        eprintln!("sagactl: note: replacing stale {}", dir.state_path().display());
    }
    Ok(())
}

/// One service `up` will start.
#[derive(Debug)]
pub(super) struct Planned {
    pub(super) spec: &'static Service,
    pub(super) port: u16,
}

fn plan(launcher: &LauncherEnv) -> anyhow::Result<Vec<Planned>> {
    let bin_dir = launcher.bin_dir()?;
    let mut plan: Vec<Planned> = Vec::new();
    for spec in &SUITE {
        let binary = bin_dir.join(spec.name);
        if !binary.is_file() {
            if optional(spec) {
                eprintln!("sagactl: note: {} not built ({}); skipping it", spec.name, binary.display());
                continue;
            }
            bail!(
                "{} binary not found at {}: build the services first (`{}`) or set SAGA_BIN_DIR \
                 to the directory holding them",
                spec.name,
                binary.display(),
                build_command()
            );
        }
        let port = launcher.port(spec)?;
        let upper = spec.name.to_uppercase();
        if let Some(other) = plan.iter().find(|p| p.port == port) {
            bail!("{} and {} would both use port {port}; set {upper}_PORT", other.spec.name, spec.name);
        }
        if !port_is_free(port) {
            bail!(
                "port {port} for {} is already in use (another suite still running?); free it or \
                 set {upper}_PORT",
                spec.name
            );
        }
        plan.push(Planned { spec, port });
    }
    Ok(plan)
}

/// Writes the started suite to the state file and leaves its services running on their own:
/// from now on they are known by PID, since other terminals stop and restart them.
fn record(dir: &StateDir, database: &str, admin_token: &str, mut suite: Suite) -> anyhow::Result<(Suite, SuiteState)> {
    let postgres = suite.database.as_ref().map(Database::state).context("internal error: no database")?;
    let mut services = BTreeMap::new();
    for instance in &suite.options().instances {
        services.insert(instance.name.clone(), suite.service_state(&instance.name)?);
    }
    let state = SuiteState {
        launcher_pid: std::process::id(),
        database: database.to_owned(),
        admin_token: admin_token.to_owned(),
        postgres,
        services,
        tools: BTreeMap::new(),
    };
    dir.save(&state)?;
    suite.detach_services();
    Ok((suite, state))
}

/// Services first (SIGTERM, grace, SIGKILL), from the state file so that services restarted from
/// another terminal are included; then the database; then the state file.
async fn shut_down(dir: &StateDir, db: Option<Database>) {
    // Keeps a `restart` in progress from writing a PID we would then miss.
    let lock = dir.lock(Duration::from_secs(15)).await;
    if let Err(err) = &lock {
        eprintln!("sagactl: warning: {err:#}; stopping without the state lock");
    }
    match dir.load() {
        Ok(Some(state)) => stop_services(&state).await,
        Ok(None) => {}
        Err(err) => eprintln!("sagactl: warning: {err:#}; services may be left running"),
    }
    if let Some(db) = db {
        db.stop(dir).await;
    }
    if let Err(err) = dir.remove() {
        eprintln!("sagactl: warning: {err:#}");
    }
    drop(lock);
}

async fn stop_services(state: &SuiteState) {
    let running: Vec<(&str, u32)> = state
        .services
        .iter()
        .filter_map(|(name, svc)| {
            let pid = svc.pid?;
            (is_alive(pid) && runs_binary(pid, &svc.binary)).then_some((name.as_str(), pid))
        })
        .collect();
    let pids: Vec<u32> = running.iter().map(|&(_, pid)| pid).collect();
    let endings = terminate_all(&pids, STOP_GRACE).await;
    for ((name, pid), (_, ending)) in running.iter().zip(endings) {
        match ending {
            Ending::Exited => eprintln!("sagactl: stopped {name} (pid {pid})"),
            Ending::Killed => {
                eprintln!("sagactl: {name} (pid {pid}) ignored SIGTERM for {}s; killed it", STOP_GRACE.as_secs())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary directory holding empty files named like `binaries`, and a launcher pointing at
    /// it with every port moved off its default.
    fn fake_suite(binaries: &[&str]) -> anyhow::Result<(PathBuf, LauncherEnv)> {
        let dir = std::env::temp_dir().join(format!("sagactl-plan-{}", saga_suite::text::random_hex(6)));
        std::fs::create_dir_all(&dir)?;
        for name in binaries {
            std::fs::write(dir.join(name), "")?;
        }
        let mut vars = vec![("SAGA_BIN_DIR".to_owned(), dir.display().to_string())];
        for (spec, port) in SUITE.iter().zip(saga_suite::ports::reserve(SUITE.len())?.ports()) {
            vars.push((format!("{}_PORT", spec.name.to_uppercase()), port.to_string()));
        }
        Ok((dir, LauncherEnv::from_pairs(vars)))
    }

    #[test]
    fn a_built_orchestrator_is_planned_last_and_a_missing_one_is_skipped() -> anyhow::Result<()> {
        let all = ["inventory", "payment", "shipping", "notification", "orchestrator"];
        let (dir, launcher) = fake_suite(&all)?;
        let names: Vec<_> = plan(&launcher)?.iter().map(|p| p.spec.name).collect();
        assert_eq!(names, all);
        std::fs::remove_file(dir.join("orchestrator"))?;
        let names: Vec<_> = plan(&launcher)?.iter().map(|p| p.spec.name).collect();
        assert_eq!(names, all[..4]);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn a_missing_participant_fails_with_a_build_hint() -> anyhow::Result<()> {
        let (dir, launcher) = fake_suite(&["inventory", "shipping", "notification", "orchestrator"])?;
        let err = plan(&launcher).err().context("planned without payment")?;
        let message = format!("{err:#}");
        assert!(message.contains("payment binary not found"), "{message}");
        // Unit tests run from target/<profile>/deps, which is never `release`.
        assert!(message.contains("`cargo build --workspace --bins`"), "{message}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
