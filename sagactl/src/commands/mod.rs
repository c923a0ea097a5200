//! One module per subcommand group of the `sagactl` binary.

pub mod bench;
pub mod control;
pub mod up;
pub mod with_postgres;

mod database;
pub mod prometheus;
mod signals;
mod summary;
