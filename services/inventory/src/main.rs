//! The inventory service binary: see `lib.rs`.

fn main() -> std::process::ExitCode {
    inventory::main()
}
