//! Signals and liveness checks for processes we only know by PID (e.g. a service restarted from
//! another terminal). Signals go through rustix's safe `kill(2)` binding (the workspace denies
//! `unsafe`, which `libc::kill` would need; spawning the `kill` binary for each one was the
//! stopgap this replaced).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::poll::Poll;
use rustix::{
    io::Errno,
    process::{Pid, kill_process, kill_process_group},
};

/// The signals sagactl sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Graceful stop for the services (they drain and exit).
    Term,
    /// Postgres' "fast shutdown".
    Int,
    /// No more waiting.
    Kill,
    /// Freeze (chaos's stall, a test's frozen orchestrator).
    Stop,
    /// Thaw a frozen process.
    Cont,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Int => "INT",
            Signal::Kill => "KILL",
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
        }
    }

    fn number(self) -> rustix::process::Signal {
        match self {
            Signal::Term => rustix::process::Signal::TERM,
            Signal::Int => rustix::process::Signal::INT,
            Signal::Kill => rustix::process::Signal::KILL,
            Signal::Stop => rustix::process::Signal::STOP,
            Signal::Cont => rustix::process::Signal::CONT,
        }
    }
}

/// Sends `signal` to `pid`. A process that is already gone is not an error.
pub fn send_signal(pid: u32, signal: Signal) -> anyhow::Result<()> {
    kill(signal, pid, false)
}

/// Sends `signal` to the process group led by `pid`. The services are started as group leaders,
/// so this also reaches anything they spawned (a wrapper script's real server, say).
pub fn signal_group(pid: u32, signal: Signal) -> anyhow::Result<()> {
    kill(signal, pid, true)
}

fn kill(signal: Signal, pid: u32, group: bool) -> anyhow::Result<()> {
    // Pid 0 and negative numbers would signal whole groups or every process we may signal.
    let target =
        i32::try_from(pid).ok().and_then(Pid::from_raw).with_context(|| format!("{pid} is not a process id"))?;
    let sent = if group { kill_process_group(target, signal.number()) } else { kill_process(target, signal.number()) };
    match sent {
        Ok(()) | Err(Errno::SRCH) => Ok(()),
        Err(_) if !is_alive(pid) => Ok(()),
        Err(err) => {
            let target = if group { format!("-{pid}") } else { pid.to_string() };
            bail!("kill -{} {target} failed: {err}", signal.name())
        }
    }
}

/// The PIDs whose parent is `pid` (read from `/proc`). Postgres backends are the postmaster's
/// children but put themselves in process groups of their own, so a group signal misses them.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(processes) = procfs::process::all_processes() else { return Vec::new() };
    processes
        .filter_map(|process| process.ok()?.stat().ok())
        .filter(|stat| u32::try_from(stat.ppid).ok() == Some(pid))
        .filter_map(|stat| u32::try_from(stat.pid).ok())
        .collect()
}

/// `/proc/<pid>`, if there is such a process.
pub fn process(pid: u32) -> Option<procfs::process::Process> {
    procfs::process::Process::new(i32::try_from(pid).ok()?).ok()
}

/// SIGKILLs `pid` and its children at once, as a crash of the machine would: the children are
/// listed first, because once their parent is gone they belong to init.
pub fn kill_with_children(pid: u32) -> anyhow::Result<()> {
    let children = children_of(pid);
    send_signal(pid, Signal::Kill)?;
    for child in children {
        send_signal(child, Signal::Kill)?;
    }
    Ok(())
}

/// True while `pid` exists and is not a zombie (an exited child nobody has reaped yet).
pub fn is_alive(pid: u32) -> bool {
    process(pid).and_then(|p| p.stat().ok()).is_some_and(|stat| !matches!(stat.state, 'Z' | 'X'))
}

/// True if `pid` runs `binary`. Guards against PID reuse: a state file may name a PID that now
/// belongs to an unrelated process, which we must never signal. The second argument is checked
/// too, because for an interpreted script argv is `interpreter script …`.
pub fn runs_binary(pid: u32, binary: &Path) -> bool {
    let Some(cmdline) = process(pid).and_then(|p| p.cmdline().ok()) else { return false };
    cmdline.iter().take(2).any(|arg| {
        let arg = Path::new(arg);
        arg == binary || (arg.file_name().is_some() && arg.file_name() == binary.file_name())
    })
}

/// `pid`'s environment variable `key`, if the process exists, we may read its environment,
/// and the value is UTF-8.
pub fn environment_variable(pid: u32, key: &str) -> Option<String> {
    let environ = process(pid)?.environ().ok()?;
    environ.get(std::ffi::OsStr::new(key))?.to_str().map(str::to_owned)
}

/// Polls until `pid` is gone or `timeout` passes; returns whether it is gone.
pub async fn wait_gone(pid: u32, timeout: Duration) -> bool {
    Poll::new(timeout, Duration::from_millis(25)).holds(async || !is_alive(pid)).await
}

/// How a [`terminate_all`] ended for one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited within the grace period.
    Exited,
    /// It had to be killed.
    Killed,
}

/// SIGTERM to the process group of every PID at once, one shared grace period, then SIGKILL for
/// the leftovers. Signalling all first means a slow service does not delay the others' shutdown.
/// Each PID must lead its own process group, as the services sagactl starts do.
pub async fn terminate_all(pids: &[u32], grace: Duration) -> Vec<(u32, Ending)> {
    for &pid in pids {
        if let Err(err) = signal_group(pid, Signal::Term) {
            eprintln!("sagactl: warning: {err:#}");
        }
    }
    let deadline = Instant::now() + grace;
    let mut endings = Vec::with_capacity(pids.len());
    for &pid in pids {
        let left = deadline.saturating_duration_since(Instant::now());
        if wait_gone(pid, left).await {
            endings.push((pid, Ending::Exited));
        } else {
            if let Err(err) = signal_group(pid, Signal::Kill) {
                eprintln!("sagactl: warning: {err:#}");
            }
            // SIGKILL cannot be ignored; the wait only covers the kernel tearing it down.
            wait_gone(pid, Duration::from_secs(5)).await;
            endings.push((pid, Ending::Killed));
        }
    }
    endings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_zero_is_refused_and_a_pid_that_is_gone_is_not_an_error() {
        assert!(send_signal(0, Signal::Term).is_err(), "0 would signal our own process group");
        assert!(signal_group(u32::MAX, Signal::Term).is_err(), "not a pid: would be negative");
        // Far above any pid_max: no such process.
        assert!(send_signal(i32::MAX as u32, Signal::Kill).is_ok());
    }

    #[test]
    fn our_own_process_is_alive_and_runs_our_binary() -> anyhow::Result<()> {
        let me = std::process::id();
        assert!(is_alive(me));
        let exe = std::env::current_exe()?;
        assert!(runs_binary(me, &exe));
        assert!(!runs_binary(me, Path::new("/usr/bin/definitely-not-this")));
        Ok(())
    }

    #[test]
    fn a_process_and_its_children_are_killed_together() -> anyhow::Result<()> {
        let mut parent = std::process::Command::new("sh").args(["-c", "sleep 30 & sleep 30 & wait"]).spawn()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while children_of(parent.id()).len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let children = children_of(parent.id());
        assert_eq!(children.len(), 2, "{children:?}");
        kill_with_children(parent.id())?;
        parent.wait()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while children.iter().any(|&c| is_alive(c)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(children.iter().all(|&c| !is_alive(c)), "children left alive");
        Ok(())
    }

    #[tokio::test]
    async fn terminate_all_stops_a_process_that_honours_sigterm() -> anyhow::Result<()> {
        let mut child = tokio::process::Command::new("sleep").arg("30").process_group(0).spawn()?;
        let pid = child.id().context("child has no pid")?;
        let endings = terminate_all(&[pid], Duration::from_secs(5)).await;
        assert_eq!(endings, vec![(pid, Ending::Exited)]);
        let _ = child.wait().await;
        Ok(())
    }
}
