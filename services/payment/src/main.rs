//! The payment service binary: see `lib.rs`.

fn main() -> std::process::ExitCode {
    payment::main()
}
