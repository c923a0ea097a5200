//! CPU time and memory of the suite's processes, read from `/proc`, for the benchmark's cost per
//! saga. A service is one process; Postgres is its postmaster and the postmaster's children
//! (every backend, the WAL writer, the checkpointer), plus what its exited children used.

use std::collections::BTreeMap;
use std::time::Duration;

/// (utime + stime, cutime + cstime) of `pid`, in clock ticks.
fn times(pid: u32) -> Option<(u64, u64)> {
    let stat = saga_suite::process::process(pid)?.stat().ok()?;
    let reaped = u64::try_from(stat.cutime.saturating_add(stat.cstime)).unwrap_or(0);
    Some((stat.utime + stat.stime, reaped))
}

/// `pid` and its children (Postgres backends each lead a process group of their own, so the
/// postmaster's group would miss them).
fn family(pid: u32) -> Vec<u32> {
    let mut members = saga_suite::process::children_of(pid);
    members.push(pid);
    members
}

/// What is measured: a name and how to find its processes.
#[derive(Debug, Clone)]
pub enum Watched {
    /// One process.
    Process { name: String, pid: u32 },
    /// A process and its children, with its reaped children (Postgres).
    Family { name: String, pid: u32 },
}

impl Watched {
    fn name(&self) -> &str {
        match self {
            Self::Process { name, .. } | Self::Family { name, .. } => name,
        }
    }

    /// CPU time so far, in ticks.
    fn cpu_ticks(&self) -> u64 {
        match *self {
            Self::Process { pid, .. } => times(pid).map_or(0, |(own, _)| own),
            Self::Family { pid, .. } => {
                let reaped = times(pid).map_or(0, |(_, children)| children);
                reaped + family(pid).iter().filter_map(|&member| times(member)).map(|(own, _)| own).sum::<u64>()
            }
        }
    }

    /// Resident memory in KiB: RSS of a process; for a family, the sum of its members'
    /// proportional set size (shared buffers counted once across the backends).
    fn memory_kib(&self) -> u64 {
        match *self {
            Self::Process { pid, .. } => rss_kib(pid).unwrap_or(0),
            Self::Family { pid, .. } => family(pid).iter().filter_map(|&member| pss_kib(member)).sum(),
        }
    }
}

/// Resident set size of `pid`.
fn rss_kib(pid: u32) -> Option<u64> {
    saga_suite::process::process(pid)?.status().ok()?.vmrss
}

/// Proportional set size of `pid` (its shared pages divided among their sharers).
fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = saga_suite::process::process(pid)?.smaps_rollup().ok()?;
    let bytes = rollup.memory_map_rollup.0.first()?.extension.map.get("Pss").copied()?;
    Some(bytes / 1024)
}

/// CPU counters of every watched process at one instant.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    ticks: BTreeMap<String, u64>,
    at: std::time::Instant,
}

/// The processes a benchmark watches.
#[derive(Debug, Clone)]
pub struct Watchlist {
    watched: Vec<Watched>,
    ticks_per_sec: u64,
}

impl Watchlist {
    /// Watches `watched`, and this process as `load`.
    pub fn new(mut watched: Vec<Watched>) -> Self {
        watched.push(Watched::Process { name: "load".to_owned(), pid: std::process::id() });
        Self { watched, ticks_per_sec: procfs::ticks_per_second() }
    }

    pub fn snapshot(&self) -> CpuSnapshot {
        let ticks = self.watched.iter().map(|w| (w.name().to_owned(), w.cpu_ticks())).collect();
        CpuSnapshot { ticks, at: std::time::Instant::now() }
    }

    /// CPU milliseconds each process used between two snapshots, with the wall time.
    pub fn cpu_ms_between(&self, before: &CpuSnapshot, after: &CpuSnapshot) -> (BTreeMap<String, f64>, Duration) {
        let per_tick_ms = 1000.0 / self.ticks_per_sec as f64;
        let used = after
            .ticks
            .iter()
            .map(|(name, &end)| {
                let start = before.ticks.get(name).copied().unwrap_or(end);
                (name.clone(), end.saturating_sub(start) as f64 * per_tick_ms)
            })
            .collect();
        (used, after.at.saturating_duration_since(before.at))
    }

    /// Resident memory of each process now, in MiB.
    pub fn memory_mib(&self) -> BTreeMap<String, f64> {
        self.watched.iter().map(|w| (w.name().to_owned(), w.memory_kib() as f64 / 1024.0)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_seen_using_cpu_and_memory() {
        let list = Watchlist::new(Vec::new());
        let before = list.snapshot();
        // Burn some CPU so the counter moves by at least a tick.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let (used, wall) = list.cpu_ms_between(&before, &list.snapshot());
        assert!(used["load"] >= 10.0, "{used:?} over {wall:?}");
        assert!(list.memory_mib()["load"] > 1.0);
    }

    #[test]
    fn a_family_counts_the_process_and_its_children() -> anyhow::Result<()> {
        let mut parent = std::process::Command::new("sh").args(["-c", "sleep 5 & wait"]).spawn()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while family(parent.id()).len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let watched = Watched::Family { name: "f".to_owned(), pid: parent.id() };
        assert_eq!(family(parent.id()).len(), 2);
        assert!(watched.memory_kib() > 0);
        saga_suite::process::kill_with_children(parent.id())?;
        parent.wait()?;
        Ok(())
    }
}
