//! `sagactl bench` measures what it says: a short run on its own Postgres and services reports
//! sagas per second and, per saga, the CPU of every process, statements, transactions and WAL
//! fsyncs, and each process's memory. (Figures are checked for presence and sense, never speed.)

use std::time::Duration;

use serde_json::Value;

#[tokio::test]
async fn a_short_bench_reports_the_cost_of_a_saga_per_process() {
    let mut command = tokio::process::Command::new(saga_tests::bin_dir().join("sagactl"));
    command
        .args(["bench", "--clients", "2", "--warmup-secs", "1", "--measure-secs", "3", "--saga-only", "--json"])
        .env("SAGA_BIN_DIR", saga_tests::bin_dir())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), command.output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let document: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));

    let run = &document["runs"][0];
    assert_eq!(run["mode"], "saga");
    assert!(run["report"]["outcomes"]["completed"].as_u64().unwrap() > 0, "{run:#}");
    let costs = &run["costs"];
    for process in ["postgres", "orchestrator", "inventory", "payment", "shipping", "notification", "load"] {
        assert!(costs["cpu_ms"][process].as_f64().unwrap() > 0.0, "{process} used no CPU: {costs:#}");
        assert!(costs["memory_mib"][process].as_f64().unwrap() > 0.0, "{process} has no memory: {costs:#}");
        assert!(document["rss_at_rest_mib"][process].as_f64().unwrap() > 0.0, "{document:#}");
    }
    // A happy saga is at least one statement per participant step and one write of its log.
    assert!(costs["statements_total"].as_f64().unwrap() >= 5.0, "{costs:#}");
    assert!(costs["statements"]["orchestrator"].as_f64().unwrap() >= 1.0, "{costs:#}");
    assert!(costs["transactions"].as_f64().unwrap() >= 5.0, "{costs:#}");
    assert!(costs["wal_syncs"].as_f64().unwrap() > 0.0, "fsync is on: {costs:#}");
    assert!(costs["wal_bytes"].as_f64().unwrap() > 0.0, "{costs:#}");
}
