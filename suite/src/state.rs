//! `state.json`: what `sagactl up` started, so other `sagactl` invocations (restart, kill,
//! status…) can act on it from another terminal.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::invocation::sagactl_command;
use crate::launch::Launch;
use crate::postgres::ServerSpec;
use crate::process::{is_alive, runs_binary};

/// How long a `sagactl` command waits for another one's hold on the state file.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The running suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteState {
    /// PID of the `sagactl up` that owns the suite.
    pub launcher_pid: u32,
    pub database: String,
    pub admin_token: String,
    pub postgres: PostgresState,
    /// Keyed by service name.
    pub services: BTreeMap<String, ServiceState>,
    /// The monitoring tools `up` started (`prometheus`, `grafana`), keyed by name; absent when
    /// not installed, switched off or failed to start. Not part of the suite: `status` shows
    /// them, but their being down does not fail it.
    #[serde(default)]
    pub tools: BTreeMap<String, ToolState>,
}

/// A monitoring tool `up` runs beside the suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolState {
    pub pid: u32,
    /// Where a person opens it.
    pub url: String,
    /// What answers 200 while it is ready.
    pub health_url: String,
}

/// The database server the suite uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostgresState {
    /// PID of the postmaster sagactl runs; `None` when `DATABASE_URL` named an existing server,
    /// or after `sagactl kill|stop postgres`.
    pub pid: Option<u32>,
    pub port: u16,
    pub admin_url: String,
    /// How to start the server again (`sagactl start postgres`); `None` for an external one.
    #[serde(default)]
    pub server: Option<ServerSpec>,
}

impl PostgresState {
    /// The recorded postmaster's PID if it still runs (not a reused PID).
    pub fn running_pid(&self) -> Option<u32> {
        let server = self.server.as_ref()?;
        self.pid.filter(|&pid| server.is_running(pid))
    }
}

/// One service process and everything needed to start it again identically.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceState {
    /// `None` after `stop`/`kill`.
    pub pid: Option<u32>,
    pub port: u16,
    pub url: String,
    pub binary: PathBuf,
    /// The variables sagactl sets (the rest is inherited).
    pub env: BTreeMap<String, String>,
    pub log_path: PathBuf,
}

impl SuiteState {
    /// Whether the `sagactl up` that wrote this state still runs (checking the binary name, so a
    /// reused PID does not count).
    pub fn launcher_alive(&self) -> bool {
        is_alive(self.launcher_pid) && runs_binary(self.launcher_pid, Path::new("sagactl"))
    }
}

impl ServiceState {
    /// How to start this service again exactly as before.
    pub fn launch<'a>(&'a self, name: &'a str) -> Launch<'a> {
        Launch { name, binary: &self.binary, env: &self.env, log_path: &self.log_path, port: self.port }
    }
}

/// The state directory: `SAGA_STATE_DIR`, else `./.sagactl`.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn from_env() -> anyhow::Result<Self> {
        let root = std::env::var_os("SAGA_STATE_DIR")
            .filter(|dir| !dir.is_empty())
            .map_or_else(|| PathBuf::from(".sagactl"), PathBuf::from);
        // Absolute, because the paths stored inside must work from any working directory.
        let root =
            std::path::absolute(&root).with_context(|| format!("cannot resolve state directory {}", root.display()))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    pub fn log_path(&self, service: &str) -> PathBuf {
        self.logs_dir().join(format!("{service}.log"))
    }

    /// Where every process's log is.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn create(&self) -> anyhow::Result<()> {
        let logs = self.root.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))
    }

    /// The state, or `None` when no suite was started here.
    pub fn load(&self) -> anyhow::Result<Option<SuiteState>> {
        let path = self.state_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a valid sagactl state file", path.display()))
    }

    /// Like [`Self::load`], but a missing file is an error telling the user what to do.
    pub fn load_running(&self) -> anyhow::Result<SuiteState> {
        self.load()?.with_context(|| {
            format!(
                "no suite is running here ({} does not exist): start one with `{} up`, or set \
                 SAGA_STATE_DIR to the directory `sagactl up` uses",
                self.state_path().display(),
                sagactl_command()
            )
        })
    }

    /// Writes atomically (temp file + rename), so a reader never sees half a file. Mode 0600:
    /// the file holds database passwords and the admin token.
    pub fn save(&self, state: &SuiteState) -> anyhow::Result<()> {
        let path = self.state_path();
        let tmp = self.root.join(format!("state.json.{}.tmp", std::process::id()));
        let json = serde_json::to_vec_pretty(state).context("cannot serialise the state")?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot move {} into place", tmp.display()))
    }

    pub fn remove(&self) -> anyhow::Result<()> {
        let path = self.state_path();
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// Exclusive lock for a read-modify-write of the state, so two `sagactl restart`s in two
    /// terminals cannot lose each other's update. Waits at most `timeout`.
    pub async fn lock(&self, timeout: Duration) -> anyhow::Result<StateLock> {
        self.create()?;
        let path = self.root.join("state.lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let deadline = Instant::now() + timeout;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(StateLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    bail!("another sagactl holds {} for more than {}s", path.display(), timeout.as_secs())
                }
                Err(std::fs::TryLockError::Error(err)) => {
                    return Err(err).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
        }
    }
}

/// Held while the state is being changed; released on drop (the OS drops the lock with the file).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SuiteState {
        SuiteState {
            launcher_pid: 1,
            database: "saga".into(),
            admin_token: "t".into(),
            postgres: PostgresState { pid: Some(2), port: 5432, admin_url: "postgres://x".into(), server: None },
            services: BTreeMap::from([(
                "payment".to_owned(),
                ServiceState {
                    pid: Some(3),
                    port: 8082,
                    url: "http://127.0.0.1:8082".into(),
                    binary: "/bin/payment".into(),
                    env: BTreeMap::from([("PORT".to_owned(), "8082".to_owned())]),
                    log_path: "/tmp/payment.log".into(),
                },
            )]),
            tools: BTreeMap::from([(
                "prometheus".to_owned(),
                ToolState {
                    pid: 4,
                    url: "http://127.0.0.1:9090".into(),
                    health_url: "http://127.0.0.1:9090/-/ready".into(),
                },
            )]),
        }
    }

    #[tokio::test]
    async fn state_round_trips_through_the_file_and_can_be_removed() -> anyhow::Result<()> {
        let dir = StateDir::new(std::env::temp_dir().join(format!("sagactl-state-{}", crate::text::random_hex(6))));
        dir.create()?;
        assert!(dir.load()?.is_none());
        let _lock = dir.lock(Duration::from_secs(1)).await?;
        dir.save(&sample())?;
        let loaded = dir.load_running()?;
        assert_eq!(loaded.services["payment"].port, 8082);
        assert_eq!(loaded.tools["prometheus"].health_url, "http://127.0.0.1:9090/-/ready");
        // A state file written before `tools` existed (a suite started by an older sagactl).
        let mut old = serde_json::to_value(sample())?;
        old.as_object_mut().map(|o| o.remove("tools"));
        let old: SuiteState = serde_json::from_value(old)?;
        assert!(old.tools.is_empty());
        dir.remove()?;
        assert!(dir.load_running().is_err());
        std::fs::remove_dir_all(dir.root())?;
        Ok(())
    }
}
