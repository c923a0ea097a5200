//! `sagactl load` and `sagactl audit` refuse what they cannot run with a message that says why,
//! before touching any suite.

use std::process::Command;

fn sagactl(args: &[&str], state_dir: &std::path::Path) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_sagactl")).args(args).env("SAGA_STATE_DIR", state_dir).output()?)
}

fn empty_state_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("sagactl-load-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[test]
fn a_fail_ratio_above_one_is_refused_with_a_clear_error() -> anyhow::Result<()> {
    let dir = empty_state_dir()?;

    let output = sagactl(&["load", "--fail-ratio", "2"], &dir)?;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("--fail-ratio"), "{stderr}");
    assert!(stderr.contains("between 0 and 1, not 2"), "{stderr}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn a_closed_and_an_open_loop_together_are_refused() -> anyhow::Result<()> {
    let dir = empty_state_dir()?;

    let output = sagactl(&["load", "--concurrency", "8", "--rate", "100"], &dir)?;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--concurrency") && stderr.contains("--rate"), "{stderr}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn load_and_audit_without_a_running_suite_say_how_to_start_one() -> anyhow::Result<()> {
    let dir = empty_state_dir()?;

    for command in [&["load", "--orders", "1"][..], &["audit"]] {
        let output = sagactl(command, &dir)?;

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(stderr.contains("no suite is running here") && stderr.contains(" up"), "{command:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
