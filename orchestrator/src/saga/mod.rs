//! The saga engine: definition, state, the state machine that decides every transition, and the
//! I/O around it (durable log, executor, recovery).

pub mod definition;
pub mod executor;
pub mod group_commit;
pub mod log;
pub mod machine;
pub mod outcome;
pub mod recovery;
pub mod retry;
pub mod state;
pub mod waiters;
