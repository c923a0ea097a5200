//! Which operating-system user owns the throwaway cluster. `initdb` and `postgres` refuse to run
//! as root, so when we are root the files and processes are handed to the `postgres` user.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

/// The account the cluster runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClusterUser {
    /// We are not root: run everything as ourselves.
    Current,
    /// We are root: run as the `postgres` system user with these ids.
    Postgres { uid: u32, gid: u32 },
}

impl ClusterUser {
    pub(crate) fn detect() -> anyhow::Result<Self> {
        if effective_uid()? != 0 {
            return Ok(Self::Current);
        }
        let uid = id_of_postgres("-u")?;
        let gid = id_of_postgres("-g")?;
        Ok(Self::Postgres { uid, gid })
    }

    /// Gives `path` to the cluster user (no-op when that is us).
    pub(crate) fn own(&self, path: &Path) -> anyhow::Result<()> {
        match *self {
            Self::Current => Ok(()),
            Self::Postgres { uid, gid } => std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("cannot chown {} to the postgres user", path.display())),
        }
    }

    /// A command running `program` as the cluster user. `runuser` is fine for `initdb`, whose PID
    /// we never need.
    pub(crate) fn command(&self, program: &Path) -> Command {
        match self {
            Self::Current => Command::new(program),
            Self::Postgres { .. } => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", "postgres", "--"]).arg(program);
                cmd
            }
        }
    }

    /// Like [`Self::command`], but `setpriv` *execs* the program, so the child's PID is the
    /// server's own and signals reach the postmaster directly (`runuser` would stay in between).
    pub(crate) fn exec_command(&self, program: &Path) -> Command {
        match *self {
            Self::Current => Command::new(program),
            Self::Postgres { uid, gid } => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--init-groups", "--"])
                    .arg(program);
                cmd
            }
        }
    }
}

/// Our effective uid (rustix's safe `geteuid`: the workspace denies the `unsafe` of libc's).
fn effective_uid() -> anyhow::Result<u32> {
    Ok(rustix::process::geteuid().as_raw())
}

fn id_of_postgres(flag: &str) -> anyhow::Result<u32> {
    let output =
        Command::new("id").args([flag, "postgres"]).output().context("cannot run `id` to look up the postgres user")?;
    if !output.status.success() {
        bail!(
            "running as root, but there is no `postgres` user to run the cluster as \
             (initdb refuses root); install the `postgresql` package or run as a normal user"
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .with_context(|| format!("unexpected output from `id {flag} postgres`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_effective_uid_is_what_id_says() -> anyhow::Result<()> {
        let id = Command::new("id").arg("-u").output()?;
        assert_eq!(effective_uid()?.to_string(), String::from_utf8_lossy(&id.stdout).trim());
        Ok(())
    }
}
