#!/usr/bin/env bash
# Runs the whole test suite: builds every binary, starts one throwaway Postgres for the run
# (unless SAGA_TEST_ADMIN_URL is already set), and runs the tests with cargo-nextest.
# Extra arguments go to nextest, e.g. `scripts/test.sh -E 'test(tombstone)'`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest is missing: installing it (cargo install --locked cargo-nextest)" >&2
  cargo install --locked cargo-nextest
fi
if ! command -v schemathesis >/dev/null 2>&1; then
  echo "schemathesis is missing: installing it (pip install schemathesis)" >&2
  python3 -m pip install --quiet 'schemathesis>=4,<5'
fi

cargo build --workspace --bins --tests
if [ -n "${SAGA_TEST_ADMIN_URL:-}" ]; then
  exec cargo nextest run --workspace --no-fail-fast "$@"
fi
exec target/debug/sagactl with-postgres -- cargo nextest run --workspace --no-fail-fast "$@"
