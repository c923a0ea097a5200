//! `saga-suite`: runs the saga suite on one machine — a throwaway Postgres (or the one
//! `DATABASE_URL` names), the provisioning every service relies on, the service processes and
//! the local Prometheus and Grafana. Every child is a [`supervised::Supervised`] process.
//!
//! `sagactl up`, `sagactl bench` and the end-to-end tests all boot the suite through this crate,
//! so what the tests run is what a user starts; `sagactl` keeps the command line, the load tool,
//! the benchmark, chaos and the audit.

pub mod boot;
pub mod database;
pub mod invocation;
pub mod launch;
pub mod monitoring;
pub mod poll;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod provision;
pub mod services;
pub mod state;
pub mod supervised;
pub mod text;

pub use boot::{DatabaseChoice, Instance, Suite, SuiteOptions};
