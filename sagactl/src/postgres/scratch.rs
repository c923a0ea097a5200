//! The cluster's temporary directory (data, socket, log), deleted on drop.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::os_user::ClusterUser;
use crate::text::random_hex;

/// `/tmp/sagapg-<random>`, removed on drop. Fixed under /tmp rather than `$TMPDIR`, because the
/// `postgres` user must be able to reach it and a per-user `$TMPDIR` often is not reachable.
pub(super) struct ScratchDir {
    pub(super) path: PathBuf,
}

impl ScratchDir {
    pub(super) fn create(user: &ClusterUser) -> anyhow::Result<Self> {
        for _ in 0..10 {
            let path = PathBuf::from(format!("/tmp/sagapg-{}", random_hex(8)));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let dir = ScratchDir { path };
                    user.own(&dir.path)?;
                    return Ok(dir);
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err).with_context(|| format!("cannot create {}", path.display())),
            }
        }
        bail!("cannot find an unused /tmp/sagapg-* directory name")
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            eprintln!("sagactl: warning: cannot remove {}: {err}", self.path.display());
        }
    }
}

pub(super) fn make_private_dir(path: &Path, user: &ClusterUser) -> anyhow::Result<()> {
    std::fs::DirBuilder::new().mode(0o700).create(path).with_context(|| format!("cannot create {}", path.display()))?;
    user.own(path)
}
