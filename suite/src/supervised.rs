//! One way to run a child process: [`Supervised`]. Every process the launcher starts — the
//! services, Postgres, Prometheus, Grafana — is spawned into its own process group with its
//! output appended to a log, waited for until a readiness probe passes (failing at once, with
//! the end of its log, if it exits first), and stopped with a signal, a grace period, then
//! SIGKILL.
//!
//! A process that outlives its handle on purpose (`sagactl up`'s services, which other
//! terminals restart and the state file tracks by PID) is [`Supervised::detach`]ed; everything
//! else is stopped or killed when the handle goes.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::poll::Poll;
pub use crate::process::Ending;
use crate::process::{Signal, kill_with_children, signal_group};
use crate::text::log_tail;

/// Lines of the log quoted when a process fails to start.
const TAIL_LINES: usize = 30;

/// What happens to the process when its [`Supervised`] handle is dropped without
/// [`Supervised::stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDrop {
    /// SIGKILL its process group (a test's service, a tool that must not outlive its launcher).
    Kill,
    /// Stop it as [`Supervised::stop`] would, blocking (Postgres: its files are removed next).
    Stop,
}

/// How the log is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// Appended to, after a marker line naming the start (restarts are easy to find).
    Append,
    /// Truncated first, so an earlier start's failure is not mistaken for this one's.
    Fresh,
}

/// How a process is asked to stop, and how long it gets before SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopping {
    /// The polite signal, sent to the process group (SIGTERM for the services and tools;
    /// SIGINT, Postgres' fast shutdown).
    pub signal: Signal,
    pub grace: Duration,
}

/// How long to wait for readiness, and how often to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub timeout: Duration,
    pub every: Duration,
}

/// Why a process did not become ready.
#[derive(Debug)]
pub enum NotReady {
    /// It exited first; `tail` is the end of its log.
    Exited { status: ExitStatus, tail: String },
    /// The probe never passed in time.
    TimedOut { tail: String },
    /// The probe found something wrong that waiting will not fix (another process answers).
    Refused(anyhow::Error),
    /// Its state could not be read.
    Lost(std::io::Error),
}

/// A child process, its name and its log.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    child: Child,
    log_path: PathBuf,
    stopping: Stopping,
    on_drop: Option<OnDrop>,
}

impl Supervised {
    /// Starts `command` as `name`, in its own process group (a Ctrl-C in the launcher's terminal
    /// reaches only the launcher, which stops its children in order; and killing the group
    /// kills what the process spawned), stdin closed, stdout and stderr into `log_path`.
    pub fn spawn(
        name: impl Into<String>,
        mut command: Command,
        log_path: &Path,
        log: Log,
        stopping: Stopping,
        on_drop: OnDrop,
    ) -> anyhow::Result<Self> {
        let name = name.into();
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(log == Log::Append)
            .truncate(log == Log::Fresh)
            .open(log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        if log == Log::Append {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            writeln!(file, "--- sagactl: starting {name} (unix time {now}) ---")
                .with_context(|| format!("cannot write {}", log_path.display()))?;
        }
        let stderr = file.try_clone().context("cannot duplicate the log file handle")?;
        command.stdin(Stdio::null()).stdout(file).stderr(stderr).process_group(0);
        let child = command.spawn().with_context(|| format!("cannot start {name} ({:?})", command.get_program()))?;
        Ok(Self { name, child, log_path: log_path.to_path_buf(), stopping, on_drop: Some(on_drop) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The end of its log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path, TAIL_LINES)
    }

    /// Whether it has exited; reaps it if so, so that its PID stops looking alive. An error
    /// means it was reaped already: gone either way.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Probes every `readiness.every` until `probe` answers `Ok(true)`; an exit, the timeout or
    /// a probe error ends the wait at once.
    pub async fn wait_ready(
        &mut self,
        readiness: Readiness,
        mut probe: impl AsyncFnMut() -> anyhow::Result<bool>,
    ) -> Result<(), NotReady> {
        let outcome = Poll::new(readiness.timeout, readiness.every)
            .until(async || {
                match self.child.try_wait() {
                    Err(err) => return Some(Err(NotReady::Lost(err))),
                    Ok(Some(status)) => return Some(Err(NotReady::Exited { status, tail: self.log_tail() })),
                    Ok(None) => {}
                }
                match probe().await {
                    Ok(true) => Some(Ok(())),
                    Ok(false) => None,
                    Err(err) => Some(Err(NotReady::Refused(err))),
                }
            })
            .await;
        outcome.unwrap_or_else(|| Err(NotReady::TimedOut { tail: self.log_tail() }))
    }

    /// [`Self::wait_ready`] with the reason as an error that names the process and quotes its log.
    pub async fn ready(
        &mut self,
        readiness: Readiness,
        probe: impl AsyncFnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let name = self.name.clone();
        let log = self.log_path.display().to_string();
        match self.wait_ready(readiness, probe).await {
            Ok(()) => Ok(()),
            Err(NotReady::Exited { status, tail }) => {
                anyhow::bail!("{name} exited during start-up ({status}); end of {log}:\n{tail}")
            }
            Err(NotReady::TimedOut { tail }) => {
                anyhow::bail!("{name} was not ready within {}s; end of {log}:\n{tail}", readiness.timeout.as_secs())
            }
            Err(NotReady::Refused(err)) => Err(err.context(format!("{name} is not the process we started"))),
            Err(NotReady::Lost(err)) => Err(anyhow::Error::from(err).context(format!("cannot check on {name}"))),
        }
    }

    /// [`Self::ready`] for a process whose readiness is an HTTP endpoint answering 200 (a tool's
    /// health or ready page).
    pub async fn ready_on_http(&mut self, url: &str, readiness: Readiness) -> anyhow::Result<()> {
        let client = crate::launch::probe_client()?;
        let ok = async || Ok(client.get(url).send().await.is_ok_and(|r| r.status() == reqwest::StatusCode::OK));
        self.ready(readiness, ok).await
    }

    /// The polite signal to its group, the grace period, then SIGKILL (to its group and its
    /// children: Postgres backends leave their postmaster's group).
    pub async fn stop(mut self) -> Ending {
        self.on_drop = None;
        if self.has_exited() {
            return Ending::Exited;
        }
        self.signal(self.stopping.signal);
        if Poll::new(self.stopping.grace, Duration::from_millis(20)).holds(async || self.has_exited()).await {
            return Ending::Exited;
        }
        self.kill();
        Ending::Killed
    }

    /// [`Self::stop`], blocking: for `Drop`, which may run outside any runtime.
    fn stop_blocking(&mut self) -> Ending {
        if self.has_exited() {
            return Ending::Exited;
        }
        self.signal(self.stopping.signal);
        let deadline = Instant::now() + self.stopping.grace;
        while Instant::now() < deadline {
            if self.has_exited() {
                return Ending::Exited;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "sagactl: warning: {} (pid {}) ignored SIG{:?} for {}s; killing it",
            self.name,
            self.pid(),
            self.stopping.signal,
            self.stopping.grace.as_secs()
        );
        self.kill();
        Ending::Killed
    }

    /// Waits until it exits, at most `timeout`; `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status =
            Poll::new(timeout, Duration::from_millis(20)).until(async || self.child.try_wait().ok().flatten()).await;
        if status.is_some() {
            self.on_drop = None;
        }
        status
    }

    /// Sends `signal` to its process group (a group that is gone is not an error).
    pub fn signal(&self, signal: Signal) {
        if let Err(err) = signal_group(self.pid(), signal) {
            eprintln!("sagactl: warning: {err:#}");
        }
    }

    /// SIGKILL to its group and its children, and reaps it.
    pub fn kill(&mut self) {
        if self.has_exited() {
            return;
        }
        let _ = kill_with_children(self.pid());
        self.signal(Signal::Kill);
        let _ = self.child.wait();
    }

    /// Leaves the process running on its own (it is tracked by PID from now on) and returns the
    /// PID. A thread reaps it when it exits: unreaped, its PID would stay taken, and a Postgres
    /// started again on the same data refuses while its predecessor's PID looks alive.
    pub fn detach(mut self) -> u32 {
        self.on_drop = None;
        let pid = self.pid();
        if let Some(target) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
            std::thread::spawn(move || rustix::process::waitpid(Some(target), rustix::process::WaitOptions::empty()));
        }
        // Dropping a `std::process::Child` neither waits for nor kills the process.
        pid
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        match self.on_drop.take() {
            Some(OnDrop::Kill) => self.kill(),
            Some(OnDrop::Stop) => {
                self.stop_blocking();
            }
            None => {}
        }
    }
}
