//! The shipping service binary: see `lib.rs`.

fn main() -> std::process::ExitCode {
    shipping::main()
}
