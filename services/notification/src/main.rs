//! The notification service binary: see `lib.rs`.

fn main() -> std::process::ExitCode {
    notification::main()
}
