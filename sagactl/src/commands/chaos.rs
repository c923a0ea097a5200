//! `sagactl chaos`: breaks a running suite on a schedule. Every few seconds it kills one of its
//! processes (each participant, the orchestrator, Postgres), leaves it down a moment and starts
//! it again on its port and data; optionally it switches participants' faults on and off. The
//! schedule comes from a seed, so a run that found something can be replayed. Every action is
//! logged with a timestamp; at the end everything is running again and the faults it set are off.
//!
//! It runs beside a load (`sagactl load` in another terminal); `sagactl audit` afterwards tells
//! whether anything was left half-done.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rand::{
    rngs::StdRng,
    seq::{IndexedRandom as _, SliceRandom as _},
    Rng as _, SeedableRng as _,
};
use serde::Serialize;
use serde_json::{json, Value};

use super::control;
use super::postgres_process::POSTGRES;
use crate::load::progress::progress_bar;
use crate::services::LauncherEnv;
use crate::state::{StateDir, SuiteState};

/// Every process chaos may kill, in the order the suite starts them.
pub const TARGETS: [&str; 6] = ["postgres", "inventory", "payment", "shipping", "notification", "orchestrator"];
/// Participants whose faults chaos may switch.
const FAULT_TARGETS: [&str; 4] = ["inventory", "payment", "shipping", "notification"];
/// Tries to bring a killed process back before the run is reported as failed.
const START_ATTEMPTS: u32 = 5;
/// Bound on each admin API call.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What `sagactl chaos` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// How long to go on, in seconds (the run always ends by itself).
    #[arg(long, default_value_t = 60)]
    pub duration_secs: u64,
    /// Mean time between two kills, in milliseconds (each wait is drawn from 0.5× to 1.5×).
    #[arg(long, default_value_t = 3000)]
    pub every_ms: u64,
    /// Longest time a killed process stays down before it is started again, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub down_ms: u64,
    /// The processes to kill, comma-separated (default: all of them, Postgres included).
    /// Each is killed once, in a shuffled order, before any is killed twice.
    #[arg(long, value_delimiter = ',', default_values_t = TARGETS.map(str::to_owned))]
    pub targets: Vec<String>,
    /// Also switch the participants' faults (errors, latency, dropped answers) on and off.
    #[arg(long)]
    pub faults: bool,
    /// Seed of the schedule (default: a random one, printed so the run can be replayed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON document (the whole log and a summary) instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// One thing chaos did.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// Wall-clock time (RFC 3339).
    pub at: String,
    /// Milliseconds since the run started.
    pub elapsed_ms: u64,
    /// `kill`, `start`, `faults` or `faults-off`.
    pub action: &'static str,
    pub target: String,
    pub ok: bool,
    /// What the command said, or why it failed.
    pub detail: String,
}

/// A whole run.
#[derive(Debug, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    pub duration_ms: u64,
    pub actions: Vec<Action>,
    /// Kills per process.
    pub kills: BTreeMap<String, u32>,
    /// Actions that failed (a process that would not come back, say).
    pub failures: u32,
}

/// Runs chaos against the suite in `dir`; exit status 1 if anything could not be brought back.
pub async fn run(dir: &StateDir, launcher: &LauncherEnv, args: ChaosArgs) -> anyhow::Result<ExitCode> {
    validate(&args)?;
    let state = dir.load_running()?;
    let seed = args.seed.unwrap_or_else(rand::random);
    if !args.json {
        crate::outln!(
            "chaos: seed {seed}, {} s, a kill every ~{} ms among {}",
            args.duration_secs,
            args.every_ms,
            args.targets.join(",")
        );
    }
    let mut chaos = Chaos::new(dir, launcher, &state, &args, seed)?;
    chaos.run().await;
    let report = chaos.finish().await;
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let kills: Vec<String> = report.kills.iter().map(|(target, n)| format!("{target} {n}")).collect();
        crate::outln!("chaos: done; kills: {}; failed actions: {}", kills.join(", "), report.failures);
    }
    Ok(if report.failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn validate(args: &ChaosArgs) -> anyhow::Result<()> {
    if args.targets.is_empty() {
        bail!("--targets names no process");
    }
    if let Some(unknown) = args.targets.iter().find(|t| !TARGETS.contains(&t.as_str())) {
        bail!("--targets: unknown process {unknown:?} (known: {})", TARGETS.join(", "));
    }
    if args.every_ms == 0 {
        bail!("--every-ms must be at least 1");
    }
    Ok(())
}

struct Chaos<'a> {
    dir: &'a StateDir,
    launcher: &'a LauncherEnv,
    args: &'a ChaosArgs,
    rng: StdRng,
    seed: u64,
    started: Instant,
    actions: Vec<Action>,
    /// The next targets, one round of a shuffled order.
    round: Vec<String>,
    /// Participants whose faults chaos switched on, with their admin URL.
    faulty: BTreeMap<String, String>,
    admin_urls: BTreeMap<String, String>,
    admin_token: String,
    http: reqwest::Client,
    json: bool,
}

impl<'a> Chaos<'a> {
    fn new(
        dir: &'a StateDir,
        launcher: &'a LauncherEnv,
        state: &SuiteState,
        args: &'a ChaosArgs,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let admin_urls = state.services.iter().map(|(name, svc)| (name.clone(), format!("{}/admin/faults", svc.url)));
        Ok(Self {
            dir,
            launcher,
            args,
            rng: StdRng::seed_from_u64(seed),
            seed,
            started: Instant::now(),
            actions: Vec::new(),
            round: Vec::new(),
            faulty: BTreeMap::new(),
            admin_urls: admin_urls.collect(),
            admin_token: state.admin_token.clone(),
            http: reqwest::Client::builder().timeout(ADMIN_TIMEOUT).build().context("cannot build the HTTP client")?,
            json: args.json,
        })
    }

    async fn run(&mut self) {
        let duration = Duration::from_secs(self.args.duration_secs);
        let bar = progress_bar(self.args.duration_secs, false, !self.json);
        let deadline = self.started + duration;
        loop {
            let wait =
                Duration::from_millis(self.rng.random_range(self.args.every_ms / 2..=self.args.every_ms * 3 / 2));
            if Instant::now() + wait >= deadline {
                tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
                break;
            }
            tokio::time::sleep(wait).await;
            let target = self.next_target();
            bar.set_message(format!("killing {target}"));
            self.kill_and_restart(&target).await;
            if self.args.faults && self.rng.random_bool(0.5) {
                self.switch_faults().await;
            }
            bar.set_position(self.started.elapsed().as_secs());
            bar.set_message(format!("{} kills", self.actions.iter().filter(|a| a.action == "kill" && a.ok).count()));
        }
        bar.finish_and_clear();
    }

    fn next_target(&mut self) -> String {
        if self.round.is_empty() {
            self.round = self.args.targets.clone();
            self.round.shuffle(&mut self.rng);
        }
        self.round.pop().unwrap_or_else(|| POSTGRES.to_owned())
    }

    async fn kill_and_restart(&mut self, target: &str) {
        let killed = control::kill(self.dir, target).await;
        let was_running = killed.is_ok();
        self.log("kill", target, killed);
        let down = Duration::from_millis(self.rng.random_range(0..=self.args.down_ms));
        tokio::time::sleep(down).await;
        if was_running {
            self.bring_back(target).await;
        }
    }

    /// Starts `target` again, retrying a few times: a service may not get ready while the
    /// database is still recovering from a kill of its own.
    async fn bring_back(&mut self, target: &str) {
        for attempt in 1..=START_ATTEMPTS {
            let started = control::start(self.dir, self.launcher, target, false).await;
            let ok = started.is_ok();
            if ok || attempt == START_ATTEMPTS {
                self.log("start", target, started);
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn switch_faults(&mut self) {
        let Some(&target) = FAULT_TARGETS.choose(&mut self.rng) else { return };
        let (action, faults) = if self.faulty.contains_key(target) {
            ("faults-off", json!({}))
        } else {
            let faults = match self.rng.random_range(0..3) {
                0 => json!({ "error_rate": 0.2 }),
                1 => json!({ "latency_ms": 300 }),
                _ => json!({ "drop_response_rate": 0.1 }),
            };
            ("faults", faults)
        };
        let result = self.set_faults(target, &faults).await;
        if result.is_ok() {
            if action == "faults" {
                self.faulty.insert(target.to_owned(), faults.to_string());
            } else {
                self.faulty.remove(target);
            }
        }
        self.log(action, target, result.map(|()| faults.to_string()));
    }

    async fn set_faults(&self, target: &str, faults: &Value) -> anyhow::Result<()> {
        let url = self.admin_urls.get(target).with_context(|| format!("{target} is not part of the suite"))?;
        let response =
            self.http.put(url).bearer_auth(&self.admin_token).json(faults).send().await.context("PUT /admin/faults")?;
        if !response.status().is_success() {
            bail!("PUT /admin/faults answered {}", response.status());
        }
        Ok(())
    }

    /// Leaves the suite as it found it: faults off, every process running.
    async fn finish(mut self) -> ChaosReport {
        for target in std::mem::take(&mut self.faulty).into_keys() {
            let result = self.set_faults(&target, &json!({})).await;
            self.log("faults-off", &target, result.map(|()| "{}".to_owned()));
        }
        if let Ok(state) = self.dir.load_running() {
            let down: Vec<String> = TARGETS
                .iter()
                .filter(|&&name| match name {
                    POSTGRES => state.postgres.server.is_some() && state.postgres.running_pid().is_none(),
                    service => state.services.get(service).is_some_and(|svc| svc.pid.is_none()),
                })
                .map(|&name| name.to_owned())
                .collect();
            for target in down {
                self.bring_back(&target).await;
            }
        }
        let mut kills = BTreeMap::new();
        for action in self.actions.iter().filter(|a| a.action == "kill" && a.ok) {
            *kills.entry(action.target.clone()).or_insert(0) += 1;
        }
        let failures = self.actions.iter().filter(|a| !a.ok).count() as u32;
        let duration_ms = self.started.elapsed().as_millis() as u64;
        ChaosReport { seed: self.seed, duration_ms, actions: self.actions, kills, failures }
    }

    fn log(&mut self, action: &'static str, target: &str, result: anyhow::Result<String>) {
        let (ok, detail) = match result {
            Ok(detail) => (true, detail.replace('\n', "; ")),
            Err(err) => (false, format!("{err:#}")),
        };
        let entry = Action {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            action,
            target: target.to_owned(),
            ok,
            detail,
        };
        if !self.json {
            let mark = if entry.ok { "" } else { "FAILED: " };
            crate::outln!(
                "{} {:>8.3}s {:<10} {:<13} {mark}{}",
                entry.at,
                entry.elapsed_ms as f64 / 1000.0,
                entry.action,
                entry.target,
                entry.detail
            );
        }
        self.actions.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn parse(args: &[&str]) -> anyhow::Result<ChaosArgs> {
        let cli = crate::cli::Cli::try_parse_from(["sagactl", "chaos"].iter().chain(args))?;
        match cli.command {
            crate::cli::Command::Chaos(args) => Ok(args),
            other => bail!("parsed as {other:?}"),
        }
    }

    #[test]
    fn by_default_every_process_postgres_included_is_a_target() -> anyhow::Result<()> {
        let args = parse(&[])?;
        assert_eq!(args.targets, TARGETS);
        validate(&args)
    }

    #[test]
    fn unknown_targets_and_a_zero_interval_are_refused() -> anyhow::Result<()> {
        let err = validate(&parse(&["--targets", "payment,redis"])?).err().context("redis accepted")?;
        assert!(format!("{err:#}").contains("unknown process \"redis\""), "{err:#}");
        assert!(validate(&parse(&["--every-ms", "0"])?).is_err());
        Ok(())
    }

    #[test]
    fn the_same_seed_gives_the_same_kill_order_each_process_once_per_round() {
        let order = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut round: Vec<&str> = TARGETS.to_vec();
            round.shuffle(&mut rng);
            round
        };
        assert_eq!(order(7), order(7));
        let mut sorted = order(7);
        sorted.sort_unstable();
        let mut all = TARGETS.to_vec();
        all.sort_unstable();
        assert_eq!(sorted, all);
    }
}
