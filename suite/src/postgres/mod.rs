//! A Postgres cluster built from the machine's own binaries: `initdb` into a fresh directory under
//! /tmp (or a directory the user keeps), a server on a free loopback port, and everything
//! removed on drop unless the directory is kept.

mod bin;
mod os_user;
mod scratch;
mod server;

use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context as _, bail};

use crate::supervised::Supervised;
pub use bin::find_pg_bin;
use os_user::ClusterUser;
use scratch::{ScratchDir, make_private_dir};
pub use server::{ServerSpec, restart_server, stop_server};
use server::{StartError, wait_ready};

use crate::ports::{self, Reserved};
use crate::text::random_hex;

/// A process that does not reserve its ports through [`ports`] can still take the port before the
/// server binds it; retry that often.
const PORT_ATTEMPTS: usize = 5;
/// In a kept directory: the superuser password, readable by its owner only.
const PASSWORD_FILE: &str = "superuser.password";

/// The checkpoint and WAL settings of every cluster the suite starts (docs/performance.md, "The
/// ramp's stall at 75/s"). With Postgres's defaults (`max_wal_size=1GB`) a checkpoint began
/// every 65 s at full load (11 KB of WAL per saga at 750 sagas/s), and after each one every page
/// changed for the first time is written to the WAL whole: the autovacuum that follows a heavy
/// run then wrote 181 KB of WAL per saga. Fewer checkpoints (a 4 GB WAL between them, at most
/// 15 minutes apart, as production clusters are set) mean fewer of those pages, and lz4 compresses
/// each of them. Later settings (`--pg-setting`) override them.
const CHECKPOINT_SETTINGS: [&str; 3] = ["max_wal_size=4GB", "checkpoint_timeout=15min", "wal_compression=lz4"];

/// How the cluster is configured.
#[derive(Debug, Clone)]
pub struct TempPostgresOptions {
    /// Trade durability for speed (`fsync`, `synchronous_commit`, `full_page_writes` off): for
    /// tests only, never for benchmarks.
    pub fast: bool,
    /// `max_connections` of the server; each service pool and test holds several.
    pub max_connections: u32,
    /// Extra `name=value` server settings (e.g. `shared_preload_libraries=pg_stat_statements`
    /// for the benchmark's round-trip count).
    pub settings: Vec<String>,
    /// Keep the cluster in this directory: created (with `initdb`) on first use, reused after,
    /// never deleted. `None`: a temporary directory, deleted on drop.
    pub keep_in: Option<PathBuf>,
}

impl Default for TempPostgresOptions {
    fn default() -> Self {
        Self { fast: false, max_connections: 200, settings: Vec::new(), keep_in: None }
    }
}

impl TempPostgresOptions {
    /// Every `-c` setting the server gets.
    fn server_settings(&self) -> Vec<String> {
        let mut settings = vec![format!("max_connections={}", self.max_connections)];
        settings.extend(CHECKPOINT_SETTINGS.map(str::to_owned));
        settings.extend(self.settings.iter().cloned());
        if self.fast {
            settings.extend(["fsync=off", "synchronous_commit=off", "full_page_writes=off"].map(str::to_owned));
        }
        settings
    }
}

/// A running cluster. Dropping it stops the server it started and, unless the directory is
/// kept, deletes its files.
pub struct TempPostgres {
    /// Declared before `scratch`: fields drop in order, so the server is stopped before its
    /// directory is deleted.
    server: Supervised,
    /// The server's port, reserved until it has stopped.
    _port: Reserved,
    spec: ServerSpec,
    password: String,
    root: PathBuf,
    /// `None` when the directory is kept.
    scratch: Option<ScratchDir>,
}

impl fmt::Debug for TempPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hand-written so the superuser password never ends up in a log.
        f.debug_struct("TempPostgres")
            .field("pid", &self.server.pid())
            .field("spec", &self.spec)
            .field("kept", &self.scratch.is_none())
            .finish_non_exhaustive()
    }
}

impl TempPostgres {
    /// Creates (or, in a kept directory, reuses) a cluster and starts it; returns once it accepts
    /// password-authenticated connections.
    pub async fn start(opts: TempPostgresOptions) -> anyhow::Result<TempPostgres> {
        let bin_dir = find_pg_bin()?;
        let (initdb, postgres) = bin::server_binaries(&bin_dir)?;
        let user = ClusterUser::detect()?;
        let (root, scratch) = match &opts.keep_in {
            Some(dir) => (kept_dir(dir, &user)?, None),
            None => {
                let scratch = ScratchDir::create(&user)?;
                (scratch.path().to_path_buf(), Some(scratch))
            }
        };
        let data_dir = root.join("data");
        let socket_dir = root.join("socket");
        let log_path = root.join("postgres.log");
        let password = if data_dir.join("PG_VERSION").is_file() {
            read_password(&root)?
        } else {
            let password = random_hex(16);
            init_cluster(&user, &initdb, &root, &data_dir, &password, opts.fast).await?;
            if scratch.is_none() {
                write_private(&root.join(PASSWORD_FILE), &password)?;
            }
            password
        };
        if !socket_dir.is_dir() {
            make_private_dir(&socket_dir, &user)?;
        }

        for _ in 0..PORT_ATTEMPTS {
            let reserved = ports::reserve(1)?;
            let spec = ServerSpec {
                binary: postgres.clone(),
                data_dir: data_dir.clone(),
                socket_dir: socket_dir.clone(),
                log_path: log_path.clone(),
                port: reserved.port(),
                settings: opts.server_settings(),
            };
            let mut server = spec.spawn(true)?;
            match wait_ready(&mut server, &admin_url(&password, spec.port)).await {
                Ok(()) => return Ok(TempPostgres { server, _port: reserved, spec, password, root, scratch }),
                Err(StartError::PortTaken) => continue,
                Err(StartError::Leftovers) => {
                    bail!("another Postgres still uses {}; stop it first", data_dir.display())
                }
                Err(StartError::Failed(err)) => return Err(err),
            }
        }
        bail!("Postgres could not bind a free loopback port after {PORT_ATTEMPTS} attempts")
    }

    /// Superuser URL: `postgres://postgres:<password>@127.0.0.1:<port>/postgres`.
    pub fn admin_url(&self) -> String {
        admin_url(&self.password, self.spec.port)
    }

    pub fn port(&self) -> u16 {
        self.spec.port
    }

    /// PID of the postmaster this process started (not of a wrapper), so it can be signalled
    /// directly. After a kill and a start from elsewhere the server runs under another PID.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// How to start this server again.
    pub fn spec(&self) -> &ServerSpec {
        &self.spec
    }

    pub fn data_dir(&self) -> &Path {
        &self.spec.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.spec.log_path
    }

    /// The directory holding data, socket and log (deleted on drop unless kept).
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// Whether the directory outlives this value.
    pub fn is_kept(&self) -> bool {
        self.scratch.is_none()
    }

    /// True once the server process this value started has ended (crashed or was killed from
    /// outside); also reaps it, so its PID stops looking alive.
    pub fn has_exited(&mut self) -> bool {
        self.server.has_exited()
    }
}

fn admin_url(password: &str, port: u16) -> String {
    format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres")
}

/// The kept directory, created (private, for the cluster user) if missing. Its parents must be
/// reachable by the cluster user.
fn kept_dir(dir: &Path, user: &ClusterUser) -> anyhow::Result<PathBuf> {
    let dir = std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    if !dir.exists() {
        make_private_dir(&dir, user)?;
    } else if !dir.join("data").join("PG_VERSION").is_file() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} is neither empty nor a cluster sagactl made: choose another --data-dir", dir.display());
    }
    Ok(dir)
}

fn read_password(root: &Path) -> anyhow::Result<String> {
    let path = root.join(PASSWORD_FILE);
    let password = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the cluster's superuser password from {}", path.display()))?;
    Ok(password.trim().to_owned())
}

/// Writes `content` to a file only its owner can read.
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    std::fs::write(path, format!("{content}\n")).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))
}

/// `initdb` with a superuser password: trust on the private socket (only root and the cluster
/// user can reach its directory), scram over TCP, which is what every client here uses.
async fn init_cluster(
    user: &ClusterUser,
    initdb: &Path,
    scratch: &Path,
    data_dir: &Path,
    password: &str,
    fast: bool,
) -> anyhow::Result<()> {
    let pwfile = scratch.join("pwfile");
    write_private(&pwfile, password)?;
    user.own(&pwfile)?;

    let mut cmd = user.command(initdb);
    cmd.arg("-D")
        .arg(data_dir)
        .args(["-U", "postgres", "-E", "UTF8", "--no-locale"])
        .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
        .arg(format!("--pwfile={}", pwfile.display()));
    if fast {
        // The cluster dies with the test run; flushing its fresh files to disk buys nothing.
        cmd.arg("--no-sync");
    }
    let output = tokio::process::Command::from(cmd)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", initdb.display()))?;
    // The password is in the server's catalog now; don't leave a copy lying around.
    let _ = std::fs::remove_file(&pwfile);
    if !output.status.success() {
        bail!(
            "initdb failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_keep_durability() {
        let opts = TempPostgresOptions::default();
        assert!(!opts.fast);
        assert_eq!(opts.max_connections, 200);
    }

    #[test]
    fn every_cluster_gets_the_checkpoint_settings_and_a_later_setting_overrides_them() {
        let options =
            TempPostgresOptions { settings: vec!["wal_compression=off".to_owned()], ..TempPostgresOptions::default() };
        let settings = options.server_settings();
        let position = |setting: &str| settings.iter().position(|s| s == setting);
        assert!(position("max_wal_size=4GB").is_some() && position("checkpoint_timeout=15min").is_some());
        // Postgres takes the last `-c` of a name: the bench's `--pg-setting` wins.
        let order = (position("wal_compression=lz4"), position("wal_compression=off"));
        assert!(matches!(order, (Some(suite), Some(asked)) if suite < asked), "{settings:?}");
        let fast = TempPostgresOptions { fast: true, ..TempPostgresOptions::default() }.server_settings();
        assert_eq!(fast.last().map(String::as_str), Some("full_page_writes=off"));
    }
}
