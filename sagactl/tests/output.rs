//! Output to a reader that went away (`sagactl status | head -3`) ends the command normally:
//! no panic, the command's own exit status.

use std::collections::BTreeMap;
use std::process::Command;

use saga_suite::state::{PostgresState, ServiceState, StateDir, SuiteState};

#[test]
fn status_into_a_closed_pipe_exits_with_its_own_status_and_no_panic() -> anyhow::Result<()> {
    // Arrange: a suite whose services are all down, and a pipe nobody reads.
    let root = std::env::temp_dir().join(format!("sagactl-pipe-{:016x}", rand::random::<u64>()));
    let dir = StateDir::new(&root);
    dir.create()?;
    let service = |port: u16| ServiceState {
        pid: None,
        port,
        url: format!("http://127.0.0.1:{port}"),
        binary: "/nonexistent/service".into(),
        env: BTreeMap::new(),
        log_path: root.join("service.log"),
    };
    let services = saga_suite::services::SUITE.iter().map(|spec| (spec.name.to_owned(), service(1))).collect();
    dir.save(&SuiteState {
        launcher_pid: std::process::id(),
        database: "saga".to_owned(),
        admin_token: "t".repeat(32),
        postgres: PostgresState { pid: None, port: 1, admin_url: "postgres://127.0.0.1:1/x".to_owned(), server: None },
        services,
        tools: BTreeMap::new(),
    })?;
    let (reader, writer) = std::io::pipe()?;
    drop(reader);

    // Act
    let output = Command::new(env!("CARGO_BIN_EXE_sagactl"))
        .arg("status")
        .env("SAGA_STATE_DIR", &root)
        .stdout(writer)
        .output()?;

    // Assert: "some service is down" (1), not a panic (101).
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
