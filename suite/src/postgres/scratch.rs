//! The cluster's temporary directory (data, socket, log), deleted on drop.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;

use anyhow::Context as _;

use super::os_user::ClusterUser;

/// `/tmp/sagapg-<random>` (mode 0700), removed on drop. Fixed under /tmp rather than `$TMPDIR`,
/// because the `postgres` user must be able to reach it and a per-user `$TMPDIR` often is not
/// reachable.
pub(super) struct ScratchDir {
    dir: tempfile::TempDir,
}

impl ScratchDir {
    pub(super) fn create(user: &ClusterUser) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sagapg-")
            .tempdir_in("/tmp")
            .context("cannot create a /tmp/sagapg-* directory")?;
        user.own(dir.path())?;
        Ok(Self { dir })
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub(super) fn make_private_dir(path: &Path, user: &ClusterUser) -> anyhow::Result<()> {
    std::fs::DirBuilder::new().mode(0o700).create(path).with_context(|| format!("cannot create {}", path.display()))?;
    user.own(path)
}
