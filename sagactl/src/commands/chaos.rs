//! `sagactl chaos`: breaks a running suite on a schedule. Every few seconds it kills one of its
//! processes (each participant, the orchestrator, Postgres), leaves it down a moment and starts
//! it again on its port and data; optionally it switches participants' faults on and off. The
//! schedule comes from a seed, so a run that found something can be replayed. Every action is
//! logged with a timestamp; at the end everything is running again and the faults it set are off.
//!
//! Two more ways to break it, for the races of issue 16 (DESIGN.md §6, "operator actions and
//! stalls"): `--stalls` freezes the orchestrator (SIGSTOP) for longer than its lease, once per
//! round of kills, and resumes it (SIGCONT), as a long pause of its host would; `--cancels N`
//! has an operator cancel up to N sagas in flight after each kill or stall, so cancels land while
//! calls are in flight. A stall is always resumed, also when chaos is stopped with Ctrl-C.
//!
//! It runs beside a load (`sagactl load` in another terminal); `sagactl audit` afterwards tells
//! whether anything was left half-done.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rand::{
    RngExt as _, SeedableRng as _,
    rngs::StdRng,
    seq::{IndexedRandom as _, SliceRandom as _},
};
use serde::Serialize;
use serde_json::{Value, json};

use super::control;
use super::postgres_process::POSTGRES;
use super::signals::StopSignals;
use crate::load::progress::progress_bar;
use saga_shared::suite;
use saga_suite::process::{Signal, is_alive, runs_binary, send_signal};
use saga_suite::services::LauncherEnv;
use saga_suite::state::{StateDir, SuiteState};

/// Every process chaos may kill, in the order the suite starts them: Postgres, then the suite's
/// services.
pub const TARGETS: [&str; 6] = {
    let mut targets = [POSTGRES; 6];
    let mut i = 0;
    while i < suite::NAMES.len() {
        targets[i + 1] = suite::NAMES[i];
        i += 1;
    }
    targets
};
/// Tries to bring a killed process back before the run is reported as failed.
const START_ATTEMPTS: u32 = 5;
/// Bound on each admin API call.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The orchestrator's lease when its environment does not set `LEASE_MS` (its own default).
const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// How much longer than the orchestrator's lease a stall lasts, unless `--stall-ms` says.
const STALL_PAST_LEASE: Duration = Duration::from_millis(1500);
/// How many of the newest running sagas a cancel picks from.
const CANCEL_CANDIDATES: usize = 50;
/// Who the timeline says cancelled (the `operator` of the cancel's body).
const CANCEL_OPERATOR: &str = "sagactl-chaos";

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
    /// Also freeze the orchestrator past its lease: once per round of kills, SIGSTOP it, wait
    /// `--stall-ms` and SIGCONT it. Its sagas' leases expire meanwhile.
    #[arg(long)]
    pub stalls: bool,
    /// How long a stall lasts, in milliseconds (default: the orchestrator's `LEASE_MS`, read
    /// from its process, plus 1.5 s).
    #[arg(long)]
    pub stall_ms: Option<u64>,
    /// Also cancel sagas in flight, as an operator would: after each kill or stall, up to this
    /// many of the newest running sagas, picked at random, get `POST /orders/{id}/cancel` with
    /// the operator token (`OPERATOR_TOKEN`, else the suite's admin token). 0: none.
    #[arg(long, default_value_t = 0)]
    pub cancels: usize,
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
    /// `kill`, `start`, `faults`, `faults-off`, `stall` (SIGSTOP), `resume` (SIGCONT), `cancel`
    /// (its target is the order) or `interrupted`.
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
    /// Times the orchestrator was frozen and resumed.
    pub stalls: u32,
    /// Cancels the orchestrator accepted (202); refused ones (409: the saga had ended) are in
    /// the log only.
    pub cancels: u32,
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
    let mut signals = StopSignals::install()?;
    let mut chaos = Chaos::new(dir, launcher, &state, &args, seed)?;
    // Ctrl-C stops the schedule, not the clean-up: a stall in progress is resumed, faults are
    // switched off and every process is brought back.
    let interrupted = tokio::select! {
        () = chaos.run() => None,
        signal = signals.recv() => Some(signal),
    };
    if let Some(signal) = interrupted {
        chaos.log("interrupted", "chaos", Ok(format!("{signal}: cleaning up")));
    }
    let report = chaos.finish().await;
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let kills: Vec<String> = report.kills.iter().map(|(target, n)| format!("{target} {n}")).collect();
        crate::outln!(
            "chaos: done; kills: {}; stalls: {}; cancels: {}; failed actions: {}",
            kills.join(", "),
            report.stalls,
            report.cancels,
            report.failures
        );
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
    if args.stall_ms == Some(0) {
        bail!("--stall-ms must be at least 1");
    }
    if args.stall_ms.is_some() && !args.stalls {
        bail!("--stall-ms needs --stalls");
    }
    Ok(())
}

/// One move of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Move {
    /// Kill this process and start it again.
    Kill(String),
    /// Freeze the orchestrator and resume it.
    Stall,
}

/// One round of the schedule: every target once, and one stall with `--stalls`, shuffled.
fn round(targets: &[String], stalls: bool, rng: &mut StdRng) -> Vec<Move> {
    let mut round: Vec<Move> = targets.iter().cloned().map(Move::Kill).collect();
    if stalls {
        round.push(Move::Stall);
    }
    round.shuffle(rng);
    round
}

struct Chaos<'a> {
    dir: &'a StateDir,
    launcher: &'a LauncherEnv,
    args: &'a ChaosArgs,
    rng: StdRng,
    /// The cancels' own randomness: how many sagas are in flight differs from run to run, and
    /// must not change the schedule of kills a seed gives.
    cancel_rng: StdRng,
    seed: u64,
    started: Instant,
    actions: Vec<Action>,
    /// The next moves, one round of a shuffled order.
    round: Vec<Move>,
    /// The orchestrator's PID while chaos has it frozen: resumed whatever happens.
    frozen: Option<u32>,
    orchestrator_url: Option<String>,
    operator_token: String,
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
        let operator_token = launcher.operator_token(Some(&state.admin_token)).unwrap_or_default();
        Ok(Self {
            dir,
            launcher,
            args,
            rng: StdRng::seed_from_u64(seed),
            cancel_rng: StdRng::seed_from_u64(seed ^ 0x0016_ca9c_e15e_ed00),
            seed,
            started: Instant::now(),
            actions: Vec::new(),
            round: Vec::new(),
            frozen: None,
            orchestrator_url: state.services.get("orchestrator").map(|svc| svc.url.clone()),
            operator_token,
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
            match self.next_move() {
                Move::Kill(target) => {
                    bar.set_message(format!("killing {target}"));
                    self.kill_and_restart(&target).await;
                }
                Move::Stall => {
                    bar.set_message("freezing the orchestrator");
                    self.stall().await;
                }
            }
            if self.args.faults && self.rng.random_bool(0.5) {
                self.switch_faults().await;
            }
            if self.args.cancels > 0 {
                self.cancel_some().await;
            }
            bar.set_position(self.started.elapsed().as_secs());
            bar.set_message(format!("{} kills", self.actions.iter().filter(|a| a.action == "kill" && a.ok).count()));
        }
        bar.finish_and_clear();
    }

    fn next_move(&mut self) -> Move {
        if self.round.is_empty() {
            self.round = round(&self.args.targets, self.args.stalls, &mut self.rng);
        }
        self.round.pop().unwrap_or_else(|| Move::Kill(POSTGRES.to_owned()))
    }

    /// Freezes the orchestrator (SIGSTOP) for `--stall-ms`, or past its lease, and resumes it.
    async fn stall(&mut self) {
        let pid = match self.orchestrator_pid() {
            Ok(pid) => pid,
            Err(err) => return self.log("stall", "orchestrator", Err(err)),
        };
        let lease = lease_of(pid);
        let stall = self.args.stall_ms.map_or(lease + STALL_PAST_LEASE, Duration::from_millis);
        let stopped = send_signal(pid, Signal::Stop);
        let ok = stopped.is_ok();
        if ok {
            self.frozen = Some(pid);
        }
        let detail = format!("pid {pid} frozen for {} ms (its lease: {} ms)", stall.as_millis(), lease.as_millis());
        self.log("stall", "orchestrator", stopped.map(|()| detail));
        if ok {
            tokio::time::sleep(stall).await;
            self.resume().await;
        }
    }

    /// Resumes the orchestrator chaos froze, if it did.
    async fn resume(&mut self) {
        let Some(pid) = self.frozen.take() else { return };
        let resumed = send_signal(pid, Signal::Cont);
        self.log("resume", "orchestrator", resumed.map(|()| format!("pid {pid} resumed")));
    }

    /// The orchestrator's PID, if the one the state names still runs.
    fn orchestrator_pid(&self) -> anyhow::Result<u32> {
        let state = self.dir.load_running()?;
        let svc = state.services.get("orchestrator").context("the suite has no orchestrator")?;
        svc.pid.filter(|&pid| is_alive(pid) && runs_binary(pid, &svc.binary)).context("the orchestrator is not running")
    }

    /// Cancels up to `--cancels` of the newest running sagas, picked at random.
    async fn cancel_some(&mut self) {
        let Some(base) = self.orchestrator_url.clone() else { return };
        let url = format!("{base}/orders?status=running&limit={CANCEL_CANDIDATES}");
        let listed = async {
            let response = self.http.get(&url).send().await?.error_for_status()?;
            response.json::<Vec<Value>>().await
        };
        let running: Vec<String> = match listed.await {
            Ok(orders) => orders.iter().filter_map(|o| o["order_id"].as_str().map(str::to_owned)).collect(),
            // The orchestrator (or its database) may be down right now: no cancels this time.
            Err(err) => return self.log("cancel", "orchestrator", Ok(format!("no sagas listed: {err}"))),
        };
        let picked: Vec<String> = running.sample(&mut self.cancel_rng, self.args.cancels).cloned().collect();
        for order_id in picked {
            let result = self.cancel(&base, &order_id).await;
            self.log("cancel", &order_id, result);
        }
    }

    /// One operator cancel. An answer that says the saga moved on (409), or a suite that
    /// cannot answer right now (503, no answer) is logged, not a failure; one that says the
    /// request is wrong (401, 403, 404, 422) or a 500 is.
    async fn cancel(&self, base: &str, order_id: &str) -> anyhow::Result<String> {
        let body = json!({ "operator": CANCEL_OPERATOR, "reason": format!("chaos, seed {}", self.seed) });
        let sent = self
            .http
            .post(format!("{base}/orders/{order_id}/cancel"))
            .bearer_auth(&self.operator_token)
            .json(&body)
            .send()
            .await;
        let status = match sent {
            Ok(response) => response.status(),
            Err(err) => return Ok(format!("no answer: {err}")),
        };
        match status.as_u16() {
            202 => Ok("cancelled (202)".to_owned()),
            409 => Ok("refused: the saga ended or passed its pivot (409)".to_owned()),
            503 => Ok("unavailable (503)".to_owned()),
            401 | 403 => bail!("answered {status}: set OPERATOR_TOKEN to the orchestrator's operator token"),
            _ => bail!("answered {status}"),
        }
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
        // The participants: their faults are what chaos switches.
        let Some(&target) = suite::PARTICIPANTS.map(|p| p.name).choose(&mut self.rng) else { return };
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

    /// Leaves the suite as it found it: the orchestrator resumed, faults off, every process
    /// running.
    async fn finish(mut self) -> ChaosReport {
        self.resume().await;
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
        let stalls = self.actions.iter().filter(|a| a.action == "resume" && a.ok).count() as u32;
        let cancels =
            self.actions.iter().filter(|a| a.action == "cancel" && a.detail.ends_with("(202)")).count() as u32;
        let duration_ms = self.started.elapsed().as_millis() as u64;
        ChaosReport { seed: self.seed, duration_ms, actions: self.actions, kills, stalls, cancels, failures }
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

/// The lease the orchestrator `pid` runs with: `LEASE_MS` of its environment (inherited from
/// whoever started `sagactl up`, so not in the state file), else its default.
fn lease_of(pid: u32) -> Duration {
    lease_in(saga_suite::process::environment_variable(pid, "LEASE_MS").as_deref()).unwrap_or(DEFAULT_LEASE)
}

/// A `LEASE_MS` value as a lease.
fn lease_in(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse().ok().map(Duration::from_millis)
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
    fn stalls_and_cancels_are_options_and_a_stall_needs_some_length() -> anyhow::Result<()> {
        let args = parse(&["--stalls", "--stall-ms", "4500", "--cancels", "2"])?;
        assert!(args.stalls);
        assert_eq!((args.stall_ms, args.cancels), (Some(4500), 2));
        validate(&args)?;
        let defaults = parse(&[])?;
        assert!(!defaults.stalls && defaults.stall_ms.is_none() && defaults.cancels == 0);
        assert!(validate(&parse(&["--stalls", "--stall-ms", "0"])?).is_err());
        assert!(validate(&parse(&["--stall-ms", "4500"])?).is_err(), "--stall-ms without --stalls");
        Ok(())
    }

    #[test]
    fn a_round_with_stalls_kills_every_target_once_and_stalls_once() {
        let targets: Vec<String> = TARGETS.map(str::to_owned).to_vec();
        let mut rng = StdRng::seed_from_u64(7);
        let with = round(&targets, true, &mut rng);
        assert_eq!(with.len(), TARGETS.len() + 1);
        assert_eq!(with.iter().filter(|m| **m == Move::Stall).count(), 1);
        for target in &targets {
            assert!(with.contains(&Move::Kill(target.clone())), "{target} missing from {with:?}");
        }
        let without = round(&targets, false, &mut StdRng::seed_from_u64(7));
        assert!(!without.contains(&Move::Stall));
    }

    #[test]
    fn the_lease_is_read_from_the_orchestrators_environment() -> anyhow::Result<()> {
        let mut with = std::process::Command::new("sleep").arg("5").env("LEASE_MS", "3000").spawn()?;
        let mut without = std::process::Command::new("sleep").arg("5").env_remove("LEASE_MS").spawn()?;
        let leases = (lease_of(with.id()), lease_of(without.id()));
        with.kill()?;
        without.kill()?;
        with.wait()?;
        without.wait()?;
        assert_eq!(leases, (Duration::from_millis(3000), DEFAULT_LEASE));
        assert_eq!(lease_in(Some("soon")), None);
        assert_eq!(lease_in(None), None);
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
