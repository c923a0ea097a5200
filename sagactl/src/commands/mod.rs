//! One module per subcommand group of the `sagactl` binary.

pub mod audit;
pub mod bench;
pub mod chaos;
pub mod control;
pub mod load;
pub mod orders;
pub mod postgres_process;
pub mod up;
pub mod with_postgres;

mod signals;
mod summary;
