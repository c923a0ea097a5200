//! Entry point of the `sagactl` binary: everything is in the library (see `sagactl::main`).

fn main() -> std::process::ExitCode {
    sagactl::main()
}
