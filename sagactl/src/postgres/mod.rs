//! A throwaway Postgres cluster built from the machine's own binaries: `initdb` into a fresh
//! directory under /tmp, a server on a free loopback port, and everything removed on drop.

mod bin;
mod os_user;
mod scratch;
mod server;

use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context as _};

pub use bin::find_pg_bin;
use os_user::ClusterUser;
use scratch::{make_private_dir, ScratchDir};
use server::{Layout, Server, StartError};

use crate::launch::free_port;

use crate::text::random_hex;

/// Another process can grab the port between our probe and the server's bind; retry that often.
const PORT_ATTEMPTS: usize = 5;

/// How the throwaway cluster is configured.
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
}

impl Default for TempPostgresOptions {
    fn default() -> Self {
        Self { fast: false, max_connections: 200, settings: Vec::new() }
    }
}

/// A running throwaway cluster. Dropping it stops the server and deletes its files.
pub struct TempPostgres {
    /// Declared before `scratch`: fields drop in order, so the server is stopped before its
    /// directory is deleted.
    server: Server,
    port: u16,
    password: String,
    data_dir: PathBuf,
    log_path: PathBuf,
    scratch: ScratchDir,
}

impl fmt::Debug for TempPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hand-written so the superuser password never ends up in a log.
        f.debug_struct("TempPostgres")
            .field("pid", &self.server.pid())
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("log_path", &self.log_path)
            .finish_non_exhaustive()
    }
}

impl TempPostgres {
    /// Creates and starts a cluster; returns once it accepts password-authenticated connections.
    pub async fn start(opts: TempPostgresOptions) -> anyhow::Result<TempPostgres> {
        let bin_dir = find_pg_bin()?;
        let (initdb, postgres) = bin::server_binaries(&bin_dir)?;
        let user = ClusterUser::detect()?;
        let scratch = ScratchDir::create(&user)?;
        let data_dir = scratch.path.join("data");
        let socket_dir = scratch.path.join("socket");
        let log_path = scratch.path.join("postgres.log");
        let password = random_hex(16);

        init_cluster(&user, &initdb, &scratch.path, &data_dir, &password, opts.fast).await?;
        make_private_dir(&socket_dir, &user)?;

        let layout =
            Layout { user, postgres: &postgres, data_dir: &data_dir, socket_dir: &socket_dir, log_path: &log_path };
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let mut server = layout.spawn(port, &opts)?;
            match server.wait_ready(port, &password, &log_path).await {
                Ok(()) => return Ok(TempPostgres { server, port, password, data_dir, log_path, scratch }),
                Err(StartError::PortTaken) => continue,
                Err(StartError::Failed(err)) => return Err(err),
            }
        }
        bail!("Postgres could not bind a free loopback port after {PORT_ATTEMPTS} attempts")
    }

    /// Superuser URL: `postgres://postgres:<password>@127.0.0.1:<port>/postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres:{}@127.0.0.1:{}/postgres", self.password, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// PID of the postmaster itself (not of a wrapper), so it can be signalled directly.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The temporary directory holding data, socket and log (deleted on drop).
    pub fn root_dir(&self) -> &Path {
        &self.scratch.path
    }

    /// True once the server process has ended (crashed or was killed from outside).
    pub fn has_exited(&mut self) -> bool {
        self.server.has_exited()
    }
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
    std::fs::write(&pwfile, format!("{password}\n")).with_context(|| format!("cannot write {}", pwfile.display()))?;
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", pwfile.display()))?;
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
}
