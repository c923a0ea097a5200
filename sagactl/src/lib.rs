//! `sagactl`: runs the saga demo suite on one machine — a throwaway Postgres, the database
//! provisioning every service relies on, and the service processes themselves.
//!
//! The library half exists so the end-to-end test crate can reuse exactly what the launcher does
//! ([`postgres::TempPostgres`], [`provision::provision`]) instead of re-implementing it.

pub mod audit;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod invocation;
pub mod launch;
pub mod load;
pub mod output;
pub mod postgres;
pub mod process;
pub mod procstat;
pub mod provision;
pub mod services;
pub mod state;
mod text;
