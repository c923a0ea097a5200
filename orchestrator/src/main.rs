//! The orchestrator binary: see `lib.rs`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    saga_shared::server::exit_code(orchestrator::run().await)
}
