//! The end-to-end tests: the real service binaries as child processes, real HTTP, a real
//! Postgres (see docs/testing.md). One test binary with a module per area, so the suite links
//! once instead of once per file; nextest still runs every test in its own process. Select an
//! area with its module path: `scripts/test.sh -E 'test(/^crashes::/)'`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod bad_input;
mod batch_operations;
mod bench;
mod chaos;
mod console;
mod crashes;
mod faults;
mod group_commit;
mod hardening;
mod inventory;
mod load_audit;
mod monitoring;
mod notification;
mod operator_cli;
mod operator_races;
mod orders_api;
mod outages;
mod payment;
mod platform;
mod postgres_process;
mod saga_failures;
mod saga_outcomes;
mod schemathesis;
mod shipping;
mod step_batching;
mod traces;
