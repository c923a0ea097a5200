//! Entry point of the `sagactl` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = sagactl::cli::Cli::parse();
    match sagactl::cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line: "what failed: because …".
            eprintln!("sagactl: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
