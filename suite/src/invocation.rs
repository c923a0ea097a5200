//! How this `sagactl` was invoked and built, for the commands it prints. Users paste those
//! commands, so they must work as printed: `sagactl` is usually not on `PATH`, and the service
//! binaries must come from the same cargo profile as `sagactl` itself.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::text::shell_quote;

/// The word to print wherever a hint says "run sagactl …": the path the user ran (argv\[0\]),
/// e.g. `target/release/sagactl`.
pub fn sagactl_command() -> String {
    command_from_argv0(std::env::args_os().next())
}

/// `argv0` if it is a path (contains a `/`), else plain `sagactl`. A bare name came from a `PATH`
/// lookup (or is unknown), so repeating it works as well as anything.
fn command_from_argv0(argv0: Option<OsString>) -> String {
    match argv0 {
        Some(arg) if arg.as_encoded_bytes().contains(&b'/') => shell_quote(&arg.to_string_lossy()),
        _ => "sagactl".to_owned(),
    }
}

/// The cargo command that builds every binary of the workspace in `sagactl`'s own profile, which
/// is where `sagactl` looks for them.
pub fn build_command() -> String {
    // Unknown executable path: suggest the default (debug) profile.
    let exe = std::env::current_exe().ok();
    build_command_for(exe.as_deref().and_then(Path::parent))
}

/// Cargo puts release binaries in `target/release/` and debug ones in `target/debug/`; a custom
/// profile's directory would need `--profile`, which is rare enough to fall back to debug.
fn build_command_for(exe_dir: Option<&Path>) -> String {
    let release = exe_dir.and_then(Path::file_name) == Some(OsStr::new("release"));
    let profile = if release { " --release" } else { "" };
    format!("cargo build{profile} --workspace --bins")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_command_is_the_path_the_user_ran() {
        let ran = |arg: &str| command_from_argv0(Some(OsString::from(arg)));
        assert_eq!(ran("target/release/sagactl"), "target/release/sagactl");
        assert_eq!(ran("./sagactl"), "./sagactl");
        assert_eq!(ran("/opt/my tools/sagactl"), "'/opt/my tools/sagactl'");
        assert_eq!(ran("sagactl"), "sagactl");
        assert_eq!(command_from_argv0(None), "sagactl");
    }

    #[test]
    fn the_build_hint_names_sagactls_own_profile() {
        let for_dir = |dir: &str| build_command_for(Some(Path::new(dir)));
        assert_eq!(for_dir("/work/target/release"), "cargo build --release --workspace --bins");
        assert_eq!(for_dir("/work/target/debug"), "cargo build --workspace --bins");
        assert_eq!(for_dir("/work/target/release/deps"), "cargo build --workspace --bins");
        assert_eq!(build_command_for(None), "cargo build --workspace --bins");
    }
}
