//! Loopback ports for the processes sagactl and the tests start.
//!
//! A port found by binding `127.0.0.1:0` and closing the probe is free only for a moment: the
//! kernel may hand it to the next `bind(0)` of another process, and outgoing connections draw
//! their local ports from the same ephemeral range. With tests running in parallel processes
//! that raced: one test's shipping service took the port another test had picked for its
//! orchestrator but not yet started (CI, stop 13).
//!
//! So a port is *reserved*: taken from below the kernel's ephemeral range, which neither
//! `bind(0)` nor `connect()` ever hands out, and claimed with an advisory lock on a file named
//! for it, held as long as the [`Reserved`] lives. Every process that reserves through here
//! skips a locked port, and the kernel drops the lock when its holder exits, however it exits,
//! so a crashed test leaves nothing reserved.

use std::fs::{File, OpenOptions, TryLockError};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

use crate::poll::Poll;

/// Where reservations are drawn from when the kernel's ephemeral range leaves room below it.
const RESERVED_FLOOR: u16 = 20_000;
/// The fewest ports a range must offer to be used.
const MIN_RANGE: u16 = 1_000;

/// Ports reserved for this process until dropped.
#[derive(Debug)]
pub struct Reserved {
    ports: Vec<u16>,
    /// The locked files; closing them (on drop) ends the reservation.
    _locks: Vec<File>,
}

impl Reserved {
    /// The reserved ports, distinct (at least one: [`reserve`] refuses to reserve none).
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The first (for a reservation of one).
    pub fn port(&self) -> u16 {
        self.ports[0]
    }
}

/// Reserves `n` distinct loopback ports that nothing listens on, for as long as the result lives.
pub fn reserve(n: usize) -> anyhow::Result<Reserved> {
    if n == 0 {
        bail!("a reservation needs at least one port");
    }
    let range = reservation_range(ephemeral_range());
    let dir = lock_dir()?;
    let len = u32::from(range.end - range.start);
    let mut offset = seed() % len;
    let (mut ports, mut locks) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..len {
        if ports.len() == n {
            break;
        }
        // Every port of the range once, from a random start: processes starting together rarely
        // contend for the same file.
        let port = range.start + u16::try_from(offset).context("offset within the range")?;
        offset = (offset + 1) % len;
        if let Some(lock) = try_claim(&dir, port)?
            && port_is_free(port)
        {
            ports.push(port);
            locks.push(lock);
        }
    }
    if ports.len() < n {
        bail!("only {} of {n} ports could be reserved in {range:?} (lock files in {})", ports.len(), dir.display());
    }
    Ok(Reserved { ports, _locks: locks })
}

/// The range reservations come from, given the kernel's ephemeral range `(low, high)`: below it
/// when there is room, else above it, else (a kernel that hands out nearly every port) all
/// unprivileged ports, where the locks still keep our own processes apart.
fn reservation_range(ephemeral: Option<(u16, u16)>) -> Range<u16> {
    match ephemeral {
        Some((low, _)) if low >= RESERVED_FLOOR.saturating_add(MIN_RANGE) => RESERVED_FLOOR..low,
        Some((_, high)) if high <= u16::MAX - MIN_RANGE => high + 1..u16::MAX,
        _ => 10_000..u16::MAX,
    }
}

/// The kernel's ephemeral port range, if it can be read.
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    match (parts.next(), parts.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => Some((low, high)),
        _ => None,
    }
}

/// The directory of lock files, shared by every user's processes (sticky and world-writable,
/// like `/tmp` itself).
fn lock_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join("sagactl-port-locks");
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Best effort: another user may have created it a moment before.
        let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777));
    }
    Ok(dir)
}

/// The lock of `port`, or `None` when another process holds it.
fn try_claim(dir: &Path, port: u16) -> anyhow::Result<Option<File>> {
    let path = dir.join(format!("{port}.lock"));
    let file = match OpenOptions::new().write(true).create(true).truncate(false).open(&path) {
        Ok(file) => file,
        // Another user's file: reading is enough to lock it.
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
            File::open(&path).with_context(|| format!("cannot open {}", path.display()))?
        }
        Err(err) => return Err(err).with_context(|| format!("cannot open {}", path.display())),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(err)) => Err(err).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// A start offset that differs between processes and calls.
fn seed() -> u32 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().wrapping_mul(2_654_435_761)
}

/// Whether nothing listens on `127.0.0.1:port` right now. Checked before starting a service: an
/// old instance still on the port would otherwise answer the readiness probe for the new one.
pub fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Polls until `127.0.0.1:port` is free or `timeout` passes; returns whether it is free. Right
/// after a kill the port can stay bound for a moment: the thread-group leader already shows as
/// a zombie while its other threads, which share the listening socket, are still exiting.
pub async fn wait_port_free(port: u16, timeout: Duration) -> bool {
    Poll::new(timeout, Duration::from_millis(25)).holds(async || port_is_free(port)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_free_and_outside_the_ephemeral_range() -> anyhow::Result<()> {
        let reserved = reserve(50)?;
        let mut ports = reserved.ports().to_vec();
        assert!(ports.iter().all(|&p| port_is_free(p)));
        if let Some((low, high)) = ephemeral_range() {
            assert!(ports.iter().all(|&p| p < low || p > high), "{ports:?} within {low}-{high}");
        }
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 50);
        Ok(())
    }

    #[test]
    fn a_reserved_port_is_not_reserved_again_until_released() -> anyhow::Result<()> {
        let first = reserve(200)?;
        let second = reserve(200)?;
        assert!(second.ports().iter().all(|p| !first.ports().contains(p)), "a port was reserved twice");
        let dir = lock_dir()?;
        let port = first.port();
        assert!(try_claim(&dir, port)?.is_none(), "a held port could be claimed");
        drop(first);
        assert!(try_claim(&dir, port)?.is_some(), "a released port stayed claimed");
        Ok(())
    }

    #[test]
    fn a_port_something_listens_on_is_skipped() -> anyhow::Result<()> {
        // Hold every port of a reservation with a listener, release the locks, reserve again.
        let reserved = reserve(20)?;
        let listeners: Vec<_> = reserved
            .ports()
            .iter()
            .map(|&p| std::net::TcpListener::bind(("127.0.0.1", p)))
            .collect::<Result<_, _>>()?;
        let taken = reserved.ports().to_vec();
        drop(reserved);
        let again = reserve(200)?;
        assert!(again.ports().iter().all(|p| !taken.contains(p)), "a port in use was reserved");
        drop(listeners);
        Ok(())
    }

    #[test]
    fn a_reservation_of_no_port_is_refused() {
        assert!(reserve(0).is_err());
    }

    #[test]
    fn the_range_is_below_the_ephemeral_one_else_above_it() {
        assert_eq!(reservation_range(Some((32768, 60999))), 20_000..32768);
        assert_eq!(reservation_range(Some((1024, 40000))), 40001..u16::MAX);
        assert_eq!(reservation_range(Some((1024, 65000))), 10_000..u16::MAX);
        assert_eq!(reservation_range(None), 10_000..u16::MAX);
    }

    #[tokio::test]
    async fn waiting_for_a_port_ends_when_its_listener_closes() -> anyhow::Result<()> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        assert!(!wait_port_free(port, Duration::from_millis(100)).await);
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(listener);
        });
        assert!(wait_port_free(port, Duration::from_secs(5)).await);
        closer.await?;
        Ok(())
    }
}
