//! The saga suite's common crate: everything two or more binaries need, written once.
//!
//! A service binary is `server::block_on_main` (telemetry, runtime) → its typed config → `server::Application::build` →
//! `run_until_stopped`; the modules below are the pieces of that life cycle.

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod faults;
pub mod json;
pub mod ledger;
pub mod metrics;
pub mod problems;
pub mod readiness;
mod serve;
pub mod server;
pub mod step;
pub mod step_batch;
pub mod suite;
pub mod telemetry;

pub use error::{AppError, Problem};
pub use json::{AppJson, AppPath, AppQuery};
pub use problems::ProblemType;

/// Every process that links this crate (each service, `sagactl`, the tests) allocates with
/// mimalloc: glibc's malloc and free were about 15 % of the orchestrator's CPU under load (a
/// request's headers, JSON and futures are many small short-lived allocations). Measured in
/// docs/performance.md#levers-of-the-evening.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
