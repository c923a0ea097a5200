//! The saga engine: definition, state, durable log, executor and recovery.

pub mod definition;
pub mod executor;
pub mod log;
pub mod recovery;
pub mod retry;
pub mod state;
pub mod waiters;
