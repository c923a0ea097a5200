//! `start`, `stop`, `restart`, `kill` and `status`: acting on a suite that `sagactl up` runs,
//! from another terminal, through its state file.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::postgres_process::{self, POSTGRES};
use saga_suite::invocation::sagactl_command;
use saga_suite::launch::probe_client;
use saga_suite::ports::wait_port_free;
use saga_suite::process::{Ending, Signal, is_alive, runs_binary, signal_group, terminate_all, wait_gone};
use saga_suite::services::{LauncherEnv, SUITE, spec, validate_admin_token};
use saga_suite::state::{LOCK_TIMEOUT, ServiceState, StateDir, StateLock, SuiteState};
use saga_suite::supervised::OnDrop;

/// Grace period between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Longest wait for a just-stopped service's port to be released before starting it again.
const PORT_FREE_TIMEOUT: Duration = Duration::from_secs(3);

/// Stops `service` gracefully (SIGTERM, SIGKILL after the grace period). Each command returns
/// what it did, in a line or two for the user (or the chaos log).
pub async fn stop(dir: &StateDir, service: &str) -> anyhow::Result<String> {
    if service == POSTGRES {
        return postgres_process::stop(dir).await;
    }
    let (_lock, mut state) = open(dir, service).await?;
    stop_locked(dir, &mut state, service).await
}

/// SIGKILLs `service`, as a crash would: no drain, no clean shutdown.
pub async fn kill(dir: &StateDir, service: &str) -> anyhow::Result<String> {
    if service == POSTGRES {
        return postgres_process::kill(dir).await;
    }
    let (_lock, mut state) = open(dir, service).await?;
    let entry = entry_mut(&mut state, service)?;
    let Some(pid) = running_pid(entry) else {
        bail!("{service} is not running");
    };
    // The whole group, like a crash of the service's process tree.
    signal_group(pid, Signal::Kill)?;
    if !wait_gone(pid, Duration::from_secs(5)).await {
        bail!("{service} (pid {pid}) is still there 5 s after SIGKILL");
    }
    entry.pid = None;
    dir.save(&state)?;
    Ok(format!("killed {service} (pid {pid})"))
}

/// Starts a stopped service with its recorded environment.
pub async fn start(dir: &StateDir, launcher: &LauncherEnv, service: &str, no_faults: bool) -> anyhow::Result<String> {
    if service == POSTGRES {
        return postgres_process::start(dir).await;
    }
    let (lock, state) = open(dir, service).await?;
    let svc = entry(&state, service)?;
    if let Some(pid) = running_pid(svc) {
        bail!("{service} is already running (pid {pid}); use `{} restart {service}`", sagactl_command());
    }
    check_admin_token(svc, launcher).with_context(|| format!("cannot start {service}"))?;
    start_locked(dir, lock, state, launcher, service, no_faults).await
}

/// Stops, then starts `service` with its recorded environment.
pub async fn restart(dir: &StateDir, launcher: &LauncherEnv, service: &str, no_faults: bool) -> anyhow::Result<String> {
    if service == POSTGRES {
        return postgres_process::restart(dir).await;
    }
    let (lock, mut state) = open(dir, service).await?;
    let svc = entry(&state, service)?;
    // Before stopping it: a service that cannot come back should keep running.
    check_admin_token(svc, launcher).with_context(|| format!("cannot restart {service}"))?;
    let stopped = match running_pid(svc) {
        Some(_) => stop_locked(dir, &mut state, service).await? + "\n",
        None => String::new(),
    };
    Ok(stopped + &start_locked(dir, lock, state, launcher, service, no_faults).await?)
}

/// Prints every service's process and health; fails (exit 1) if any is down.
pub async fn status(dir: &StateDir) -> anyhow::Result<ExitCode> {
    let state = dir.load_running()?;
    let client = probe_client()?;
    let mut all_up = true;

    let launcher = if state.launcher_alive() { "running" } else { "GONE (state may be stale)" };
    crate::outln!("sagactl up: pid {} {launcher}; database {}", state.launcher_pid, state.database);
    match (&state.postgres.server, state.postgres.running_pid()) {
        (Some(_), Some(pid)) => crate::outln!("postgres:   pid {pid} alive, port {}", state.postgres.port),
        (Some(_), None) => {
            all_up = false;
            crate::outln!("postgres:   down (start it with `{} start postgres`)", sagactl_command());
        }
        (None, _) => crate::outln!("postgres:   external, port {}", state.postgres.port),
    }
    crate::outln!("\n{:<14} {:<8} {:<8} {:<22} URL", "SERVICE", "PID", "PROCESS", "HEALTHZ");
    // Table order (participants, then orchestrator), as `up` prints it.
    let services = SUITE.iter().filter_map(|spec| Some((spec.name, state.services.get(spec.name)?)));
    for (name, svc) in services {
        let pid = svc.pid.map_or_else(|| "-".to_owned(), |pid| pid.to_string());
        let process = if running_pid(svc).is_some() { "alive" } else { "down" };
        let health = answer_of(&client, &format!("{}/healthz", svc.url)).await;
        all_up &= process == "alive" && health.starts_with("200");
        crate::outln!("{name:<14} {pid:<8} {process:<8} {health:<22} {}", svc.url);
    }
    // The monitoring tools: shown, but not part of the exit status (the suite runs without them).
    for name in ["prometheus", "grafana"] {
        let Some(tool) = state.tools.get(name) else {
            crate::outln!("{name:<14} {:<8} {:<8} {:<22} (not started by `sagactl up`)", "-", "-", "-");
            continue;
        };
        let process = if is_alive(tool.pid) { "alive" } else { "down" };
        let health = answer_of(&client, &tool.health_url).await;
        crate::outln!("{name:<14} {:<8} {process:<8} {health:<22} {}", tool.pid, tool.url);
    }
    Ok(if all_up { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The status line a `GET url` answers (`200 OK`), or `no answer`.
async fn answer_of(client: &reqwest::Client, url: &str) -> String {
    match client.get(url).send().await {
        Ok(response) => response.status().to_string(),
        Err(_) => "no answer".to_owned(),
    }
}

/// Takes the state lock and loads the state, checking `service` is part of it.
async fn open(dir: &StateDir, service: &str) -> anyhow::Result<(StateLock, SuiteState)> {
    spec(service)?;
    let lock = dir.lock(LOCK_TIMEOUT).await?;
    let state = dir.load_running()?;
    if !state.launcher_alive() {
        eprintln!(
            "sagactl: warning: the `sagactl up` that owns this suite (pid {}) is gone; nothing \
             will stop what is started now",
            state.launcher_pid
        );
    }
    entry(&state, service)?;
    Ok((lock, state))
}

fn entry<'a>(state: &'a SuiteState, service: &str) -> anyhow::Result<&'a ServiceState> {
    state.services.get(service).with_context(|| {
        format!("{service} is not part of the running suite (its binary was not built when `sagactl up` started)")
    })
}

fn entry_mut<'a>(state: &'a mut SuiteState, service: &str) -> anyhow::Result<&'a mut ServiceState> {
    state.services.get_mut(service).with_context(|| format!("{service} is not part of the running suite"))
}

/// Fails if the service would refuse the admin token it is about to be started with: the
/// recorded one (set explicitly, it wins over the inherited environment), else the one it would
/// inherit from this process.
fn check_admin_token(entry: &ServiceState, launcher: &LauncherEnv) -> anyhow::Result<()> {
    let token = match entry.env.get("ADMIN_TOKEN") {
        Some(recorded) => Some(recorded.as_str()),
        None => launcher.get("ADMIN_TOKEN"),
    };
    // An empty token means "no admin endpoint" to the services, not a short one.
    match token.filter(|token| !token.is_empty()) {
        Some(token) => validate_admin_token(token),
        None => Ok(()),
    }
}

/// The recorded PID if that process is still the service (not a reused PID).
fn running_pid(entry: &ServiceState) -> Option<u32> {
    entry.pid.filter(|&pid| is_alive(pid) && runs_binary(pid, &entry.binary))
}

async fn stop_locked(dir: &StateDir, state: &mut SuiteState, service: &str) -> anyhow::Result<String> {
    let entry = entry_mut(state, service)?;
    let Some(pid) = running_pid(entry) else {
        bail!("{service} is not running");
    };
    let endings = terminate_all(&[pid], STOP_GRACE).await;
    entry.pid = None;
    dir.save(state)?;
    Ok(match endings.first() {
        Some((_, Ending::Killed)) => {
            format!("{service} (pid {pid}) ignored SIGTERM for {}s; killed it", STOP_GRACE.as_secs())
        }
        _ => format!("stopped {service} (pid {pid})"),
    })
}

/// Spawns the service detached, records its PID, releases the lock, then waits for readiness
/// (without the lock, so a slow start does not block other commands).
async fn start_locked(
    dir: &StateDir,
    lock: StateLock,
    mut state: SuiteState,
    launcher: &LauncherEnv,
    service: &str,
    no_faults: bool,
) -> anyhow::Result<String> {
    let entry = entry_mut(&mut state, service)?;
    if !wait_port_free(entry.port, PORT_FREE_TIMEOUT).await {
        bail!("port {} of {service} is in use by another process", entry.port);
    }
    // Faults given on this command line replace the recorded ones; none given keeps them.
    let faults = launcher.fault_env(service);
    if no_faults || !faults.is_empty() {
        entry.env.retain(|key, _| !key.starts_with("FAULT_"));
        entry.env.extend(faults);
    }
    let svc = entry.clone();
    let launch = svc.launch(service);
    // Killed if it does not become ready: no half-started process is left behind (the state
    // keeps its PID, which `status` shows as down).
    let mut process = launch.spawn(OnDrop::Kill)?;
    let pid = process.pid();
    entry.pid = Some(pid);
    dir.save(&state)?;
    drop(lock);

    launch.wait_ready(&mut process).await?;
    // From now on it is known by its PID in the state file.
    process.detach();
    let faults: Vec<String> = svc
        .env
        .iter()
        .filter(|(key, _)| key.starts_with("FAULT_"))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    let faults = if faults.is_empty() { "no faults".to_owned() } else { faults.join(" ") };
    Ok(format!("started {service} (pid {pid}, {faults}); log: {}", svc.log_path.display()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn service_with(env: &[(&str, &str)]) -> ServiceState {
        ServiceState {
            pid: None,
            port: 8082,
            url: "http://127.0.0.1:8082".into(),
            binary: "/bin/payment".into(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
            log_path: "/tmp/payment.log".into(),
        }
    }

    fn launcher(pairs: &[(&str, &str)]) -> LauncherEnv {
        LauncherEnv::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn start_checks_the_admin_token_the_service_would_get() -> anyhow::Result<()> {
        // The recorded token is what the service gets; the launcher's own is ignored then.
        let recorded_short = service_with(&[("ADMIN_TOKEN", "short")]);
        let err = check_admin_token(&recorded_short, &launcher(&[])).err().context("short token accepted")?;
        assert!(format!("{err:#}").contains("at least 8"), "{err:#}");
        let recorded_ok = service_with(&[("ADMIN_TOKEN", "long-enough")]);
        check_admin_token(&recorded_ok, &launcher(&[("ADMIN_TOKEN", "short")]))?;
        // Without a recorded token the service inherits ours.
        let unrecorded = service_with(&[]);
        assert!(check_admin_token(&unrecorded, &launcher(&[("ADMIN_TOKEN", "short")])).is_err());
        check_admin_token(&unrecorded, &launcher(&[]))?;
        check_admin_token(&service_with(&[("ADMIN_TOKEN", "")]), &launcher(&[]))?;
        Ok(())
    }
}
