//! `sagactl`: the saga suite's command line — `up` and the process controls (over the
//! [`saga_suite`] launcher), the load tool, the benchmark, chaos and the audit.
//!
//! The library half exists so the end-to-end tests can drive the load tool and the audit as
//! the command does.

pub mod audit;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod load;
pub mod output;
pub mod procstat;

/// The `sagactl` entry point: parse the command line and run the command.
///
/// It lives in the library, not in an `async fn main` in `main.rs`, for the reason given at
/// [`saga_shared::server::block_on_main`]: the binary crate would compile every command again.
pub fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sagactl: error: starting the tokio runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line: "what failed: because …".
            eprintln!("sagactl: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
