#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine (Rust toolchain and Postgres binaries present):
#   1. installs what the tests need and is missing: cargo-nextest, schemathesis (pip), and
#      Prometheus (apt; the live monitoring test runs one) plus what check-monitoring.sh needs;
#   2. checks the monitoring and deployment assets (scripts/check-monitoring.sh: alert rule unit
#      tests, dashboard typing, compose validation, drift between code and config);
#   3. builds every binary and test, starts one throwaway Postgres for the run (unless
#      SAGA_TEST_ADMIN_URL is already set) and runs the tests with cargo-nextest.
# Extra arguments go to nextest, e.g. `scripts/test.sh -E 'test(tombstone)'`; with arguments the
# monitoring asset checks are skipped (SAGA_TEST_MONITORING=1 forces them, =0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/install.sh
. scripts/lib/install.sh

echo "--- tools"
need_command cargo-nextest cargo install --locked cargo-nextest
need_command schemathesis pip_install 'schemathesis>=4,<5'
need_command prometheus apt_install prometheus
need_command chromium apt_install chromium

if [ "${SAGA_TEST_MONITORING:-$([ $# -eq 0 ] && echo 1 || echo 0)}" = 1 ]; then
    echo "--- monitoring assets"
    scripts/check-monitoring.sh
fi

echo "--- build"
cargo build --workspace --bins --tests

echo "--- tests"
if [ -n "${SAGA_TEST_ADMIN_URL:-}" ]; then
    exec cargo nextest run --workspace --no-fail-fast "$@"
fi
exec target/debug/sagactl with-postgres -- cargo nextest run --workspace --no-fail-fast "$@"
