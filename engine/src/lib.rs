//! The saga engine: the order saga's definition and configuration, its state, the state machine
//! that decides every transition, and the I/O around it (the durable log in Postgres with its
//! group commit, the participants' HTTP client, the executor and its drivers, recovery).
//!
//! The `orchestrator` crate serves it over HTTP (the API, batch operations, the console); this
//! crate knows nothing of HTTP servers, so its tests drive the real executor without one
//! (`tests/executor_sim.rs`).

pub mod circuits;
pub mod clients;
pub mod config;
pub mod definition;
pub mod drivers;
pub mod executor;
pub mod group_commit;
pub mod log;
pub mod machine;
pub mod metric_definitions;
pub mod outcome;
pub mod participants;
pub mod recovery;
pub mod retry;
pub mod state;
pub mod store;
pub mod waiters;

/// The executor the service runs: the log in Postgres, the participants over HTTP.
pub type OrderExecutor = executor::Executor<store::PgStore, clients::ParticipantClient>;
