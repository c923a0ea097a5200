//! The orchestrator binary: see `lib.rs`.

fn main() -> std::process::ExitCode {
    orchestrator::main()
}
