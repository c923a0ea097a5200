//! The command line: clap definitions and the dispatch to [`crate::commands`].

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{audit, bench, chaos, control, load, orders, up, with_postgres};
use saga_suite::services::LauncherEnv;
use saga_suite::state::StateDir;

/// Runs the saga demo suite locally: Postgres, provisioning and the services.
#[derive(Debug, Parser)]
#[command(name = "sagactl", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Those acting on a running suite find it through `state.json` in the state
/// directory (`SAGA_STATE_DIR`, default `./.sagactl`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start Postgres (unless DATABASE_URL names an existing server to use as admin), provision
    /// the database, start every service and wait; Ctrl-C or SIGTERM stops it all. Postgres
    /// dying does not: `start postgres` brings it back and the services carry on.
    Up(up::UpArgs),
    /// Start a stopped or killed service (or `postgres`) again with the environment it had.
    /// `<SVC>_FAULT_*` variables in this command's environment replace its faults.
    Start {
        service: String,
        /// Start without any FAULT_* settings.
        #[arg(long)]
        no_faults: bool,
    },
    /// Stop a service (SIGTERM, then SIGKILL after 10 s) and start it again, as for `start`.
    /// `postgres` gets a fast shutdown and comes back on the same port and data.
    Restart {
        service: String,
        /// Start without any FAULT_* settings.
        #[arg(long)]
        no_faults: bool,
    },
    /// Stop a service gracefully (SIGTERM, then SIGKILL after 10 s); `postgres` with a fast
    /// shutdown.
    Stop { service: String },
    /// Kill a service with SIGKILL, as a crash would; `postgres` with every backend.
    Kill { service: String },
    /// Show each service's process and /healthz answer, and Prometheus's and Grafana's when `up` started them; exits non-zero if a service is down (the monitoring tools do not count).
    Status,
    /// Run a command against a fast throwaway Postgres, whose superuser URL it gets in
    /// SAGA_TEST_ADMIN_URL; exits with the command's exit code.
    WithPostgres {
        /// The command and its arguments (put `--` before it).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
    /// Benchmark the suite on a Postgres of its own (fsync on): orders per second, latency from
    /// POST to the saga's end, database statements per order; and the same chain called directly.
    Bench(bench::BenchArgs),
    /// Against a running suite: kill and restart its processes (Postgres included) at random,
    /// from a seed, for a bounded time; optionally switch faults on and off. Logs every action.
    Chaos(chaos::ChaosArgs),
    /// Against a running suite: place orders (closed loop or at a rate, some failing on
    /// purpose) and report throughput, latency from POST to the saga's end and every outcome.
    Load(load::LoadArgs),
    /// Against a running suite: check the invariants (every saga terminal, effects agreeing with
    /// outcomes, stock and money conserved since a `--snapshot`); exits non-zero on a violation.
    Audit(audit::AuditArgs),
    /// Against a running suite (or the orchestrator at --url): list sagas, show one with its
    /// timeline, retry or cancel them, one by one or every one a filter matches. Operator
    /// actions use OPERATOR_TOKEN, else the suite's admin token.
    Orders {
        #[command(flatten)]
        target: orders::Target,
        #[command(subcommand)]
        command: orders::OrdersCommand,
    },
    /// Against a running suite: show a service's injected faults, or replace them
    /// (`faults payment --latency-ms 2500`, `faults payment --clear`).
    Faults(orders::FaultsArgs),
}

/// Runs one command; the exit code is the command's own for `with-postgres` and `status`.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let launcher = LauncherEnv::from_process();
    match cli.command {
        Command::Up(args) => up::up(&StateDir::from_env()?, &launcher, args).await,
        Command::Start { service, no_faults } => {
            report(control::start(&StateDir::from_env()?, &launcher, &service, no_faults).await?)
        }
        Command::Restart { service, no_faults } => {
            report(control::restart(&StateDir::from_env()?, &launcher, &service, no_faults).await?)
        }
        Command::Stop { service } => report(control::stop(&StateDir::from_env()?, &service).await?),
        Command::Kill { service } => report(control::kill(&StateDir::from_env()?, &service).await?),
        Command::Status => control::status(&StateDir::from_env()?).await,
        Command::WithPostgres { command } => with_postgres::with_postgres(&command).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Chaos(args) => chaos::run(&StateDir::from_env()?, &launcher, args).await,
        Command::Load(args) => load::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Orders { target, command } => orders::run(&StateDir::from_env()?, &launcher, &target, command).await,
        Command::Faults(args) => orders::faults(&StateDir::from_env()?, &launcher, args).await,
    }
}

/// Prints what a control command did.
fn report(done: String) -> anyhow::Result<ExitCode> {
    crate::outln!("{done}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn with_postgres_takes_everything_after_the_separator() -> anyhow::Result<()> {
        let cli = Cli::try_parse_from(["sagactl", "with-postgres", "--", "cargo", "test", "--workspace"])?;
        let Command::WithPostgres { command } = cli.command else {
            anyhow::bail!("parsed as {:?}", cli.command);
        };
        assert_eq!(command, ["cargo", "test", "--workspace"]);
        Ok(())
    }
}
