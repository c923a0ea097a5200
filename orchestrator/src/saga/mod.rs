//! The saga engine: definition, state, the state machine that decides every transition, and the
//! I/O around it (durable log, executor, recovery).

pub mod circuits;
pub mod definition;
pub mod drivers;
pub mod executor;
pub mod group_commit;
pub mod log;
pub mod machine;
pub mod outcome;
pub mod participants;
pub mod recovery;
pub mod retry;
pub mod state;
pub mod store;
pub mod waiters;

/// The executor the service runs: the log in Postgres, the participants over HTTP.
pub type OrderExecutor = executor::Executor<store::PgStore, crate::clients::ParticipantClient>;
