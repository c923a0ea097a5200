//! Finding the machine's Postgres server binaries (`initdb`, `postgres`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Directory holding `initdb` and `postgres`, searched in this order:
/// `$PG_BIN`, `pg_config --bindir`, the newest `/usr/lib/postgresql/<major>/bin` (Debian puts the
/// server binaries there, off `PATH`), then every directory of `PATH`.
pub fn find_pg_bin() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        // An explicit setting that is wrong is an error, not something to silently skip.
        if !has_server_binaries(&dir) {
            bail!("PG_BIN={} does not contain both `initdb` and `postgres`", dir.display());
        }
        return Ok(dir);
    }
    if let Some(dir) = pg_config_bindir().filter(|dir| has_server_binaries(dir)) {
        return Ok(dir);
    }
    if let Some(dir) = newest_debian_bindir(Path::new("/usr/lib/postgresql")) {
        return Ok(dir);
    }
    let on_path =
        std::env::var_os("PATH").map(|path| std::env::split_paths(&path).collect::<Vec<_>>()).unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|dir| has_server_binaries(dir)) {
        return Ok(dir);
    }
    bail!(
        "no Postgres server binaries found (looked in $PG_BIN, `pg_config --bindir`, \
         /usr/lib/postgresql/*/bin and PATH for `initdb` and `postgres`). \
         Install them (Debian/Ubuntu: `apt-get install postgresql`), point PG_BIN at their \
         directory, or set DATABASE_URL to an existing server's admin URL so no temporary \
         cluster is needed"
    )
}

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

/// `pg_config` may be missing or belong to a client-only install; either way it is only a hint.
fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    let dir = dir.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Debian installs each major version side by side; the highest number is the newest server.
fn newest_debian_bindir(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major = parse_major(entry.file_name().to_str()?)?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((major, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// "15" → [15], "9.6" → [9, 6]: compared as numbers so 10 sorts above 9.6.
fn parse_major(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// The `postgres` and `initdb` paths inside a bin directory, with a clear error if one is gone.
pub(crate) fn server_binaries(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let initdb = dir.join("initdb");
    let postgres = dir.join("postgres");
    for path in [&initdb, &postgres] {
        std::fs::metadata(path).with_context(|| format!("cannot use {}", path.display()))?;
    }
    Ok((initdb, postgres))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_versions_compare_numerically() {
        assert!(parse_major("10") > parse_major("9.6"));
        assert!(parse_major("15") > parse_major("13"));
        assert_eq!(parse_major("main"), None);
    }
}
