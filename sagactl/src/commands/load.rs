//! `sagactl load`: drives orders into the suite `sagactl up` runs and reports throughput,
//! latency and how every saga ended (see [`crate::load`]).

use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;

use saga_suite::state::StateDir;

use crate::load::{
    self, Keys, Kind, LoadConfig, LoadReport, Mix, Pacing, Stop, Targets,
    mix::{LOAD_CUSTOMERS, LOAD_SKUS},
    progress::progress_bar,
};

/// Orders placed when neither `--orders` nor `--duration` is given.
const DEFAULT_ORDERS: u64 = 1000;
/// Clients of a closed loop when neither `--concurrency` nor `--rate` is given.
const DEFAULT_CONCURRENCY: usize = 16;
/// Open loop: orders in flight when `--max-outstanding` is not given.
const DEFAULT_MAX_OUTSTANDING: usize = 1000;

/// What `sagactl load` runs.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Closed loop: this many orders in flight, the next placed as soon as one ends [default: 16].
    #[arg(long, value_name = "N", conflicts_with = "rate", value_parser = in_flight)]
    pub concurrency: Option<usize>,
    /// Open loop: this many orders per second on a fixed schedule, whatever the answers.
    #[arg(long, value_name = "R", value_parser = rate)]
    pub rate: Option<f64>,
    /// Open loop: at most this many orders in flight; past it orders go out late (and are counted)
    /// [default: 1000].
    #[arg(long, value_name = "N", requires = "rate", value_parser = in_flight)]
    pub max_outstanding: Option<usize>,
    /// Place this many orders [default: 1000, unless --duration].
    #[arg(long, value_name = "N", conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub orders: Option<u64>,
    /// Place orders for this many seconds (then wait for those in flight).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: Option<u64>,
    /// Fraction of orders that fail on purpose (unknown or sold-out sku, declined payment,
    /// undeliverable country, in turn): their sagas are compensated.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = fail_ratio)]
    pub fail_ratio: f64,
    /// How orders spread over the load SKUs and customers (`hot`: every order the same SKU).
    #[arg(long, value_enum, default_value_t = Keys::Uniform)]
    pub keys: Keys,
    /// Load SKUs used (LOAD-0001 …).
    #[arg(long, value_name = "N", default_value_t = LOAD_SKUS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(LOAD_SKUS)))]
    pub skus: u32,
    /// Load customers used (load-0001 …).
    #[arg(long, value_name = "N", default_value_t = LOAD_CUSTOMERS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(LOAD_CUSTOMERS)))]
    pub customers: u32,
    /// Seed of the key choice, to repeat a run [default: random, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seconds a saga may take from its POST to its end before it counts as not finished
    /// (polls that fail meanwhile, e.g. while services are killed, are repeated).
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub saga_timeout_secs: u64,
    /// Repeat a POST that failed with a transport error or 5xx up to N times, with an
    /// Idempotency-Key so no order is placed twice (for runs where the orchestrator is killed);
    /// after a 503 with `Retry-After` (overloaded), not sooner than it asks (at most 10 s).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub post_retries: u32,
    /// Print the report as one JSON document on stdout (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

impl LoadArgs {
    /// The run these options ask for.
    pub fn config(&self) -> anyhow::Result<LoadConfig> {
        let pacing = match self.rate {
            Some(rate) => {
                Pacing::Open { rate, max_outstanding: self.max_outstanding.unwrap_or(DEFAULT_MAX_OUTSTANDING) }
            }
            None => Pacing::Closed { concurrency: self.concurrency.unwrap_or(DEFAULT_CONCURRENCY) },
        };
        let stop = match self.duration {
            Some(secs) => Stop::Duration(Duration::from_secs(secs)),
            None => Stop::Orders(self.orders.unwrap_or(DEFAULT_ORDERS)),
        };
        let config = LoadConfig {
            kind: Kind::Saga,
            pacing,
            stop,
            warmup: Duration::ZERO,
            mix: Mix {
                fail_ratio: self.fail_ratio,
                keys: self.keys,
                skus: self.skus,
                customers: self.customers,
                seed: self.seed.unwrap_or_else(rand::random),
            },
            saga_timeout: Duration::from_secs(self.saga_timeout_secs),
            request_timeout: Duration::from_secs(10),
            post_retries: self.post_retries,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Runs `sagactl load`: exit status 1 when a POST failed (transport error or 5xx) or a saga did
/// not end within the saga timeout.
pub async fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    let state = StateDir::from_env()?.load_running()?;
    let targets = Targets::from_state(&state)?;
    if !args.json {
        crate::outln!("sagactl load: {} against {}", describe(&config), targets.orchestrator);
    }
    let progress = match config.stop {
        Stop::Orders(n) => progress_bar(n, true, !args.json),
        Stop::Duration(d) => progress_bar(d.as_secs(), false, !args.json),
    };
    let report = load::run(&targets, &config, &progress).await;
    progress.finish_and_clear();
    let report = report?;
    print(&report, args.json)?;
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print(report: &LoadReport, json: bool) -> anyhow::Result<()> {
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(report).context("cannot serialise the report")?);
    } else {
        for line in report.human_lines() {
            crate::outln!("{line}");
        }
    }
    Ok(())
}

/// "1000 orders, closed loop of 16, keys uniform over 500 SKUs and 1000 customers, …".
fn describe(config: &LoadConfig) -> String {
    let stop = match config.stop {
        Stop::Orders(n) => format!("{n} orders"),
        Stop::Duration(d) => format!("{} s of orders", d.as_secs()),
    };
    let pacing = match config.pacing {
        Pacing::Closed { concurrency } => format!("closed loop of {concurrency}"),
        Pacing::Open { rate, max_outstanding } => format!("{rate} orders/s (at most {max_outstanding} in flight)"),
    };
    let mix = &config.mix;
    let keys = match mix.keys {
        Keys::Hot => format!("every order LOAD-0001, {} customers", mix.customers),
        Keys::Uniform => format!("keys uniform over {} SKUs and {} customers", mix.skus, mix.customers),
        Keys::Zipf => format!("keys Zipf over {} SKUs and {} customers", mix.skus, mix.customers),
    };
    format!("{stop}, {pacing}, {keys}, fail ratio {}, seed {}", mix.fail_ratio, mix.seed)
}

fn fail_ratio(text: &str) -> Result<f64, String> {
    let ratio: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!("the fail ratio is a fraction of the orders: between 0 and 1, not {text}"))
    }
}

fn rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(format!("the rate is orders per second: a positive number, not {text}"))
    }
}

fn in_flight(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=load::MAX_IN_FLIGHT).contains(&n) => Ok(n),
        _ => Err(format!("orders in flight: a whole number from 1 to {}, not {text}", load::MAX_IN_FLIGHT)),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<LoadArgs, clap::Error> {
        let cli = Cli::try_parse_from(["sagactl", "load"].iter().chain(args))?;
        match cli.command {
            Command::Load(args) => Ok(args),
            _ => Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
        }
    }

    #[test]
    fn without_options_a_run_is_a_bounded_closed_loop() -> anyhow::Result<()> {
        let config = parse(&[])?.config()?;
        assert_eq!(config.pacing, Pacing::Closed { concurrency: DEFAULT_CONCURRENCY });
        assert_eq!(config.stop, Stop::Orders(DEFAULT_ORDERS));
        Ok(())
    }

    #[test]
    fn a_rate_makes_an_open_loop_with_a_bound_on_outstanding_orders() -> anyhow::Result<()> {
        let config = parse(&["--rate", "250", "--duration", "5", "--max-outstanding", "50"])?.config()?;
        assert_eq!(config.pacing, Pacing::Open { rate: 250.0, max_outstanding: 50 });
        assert_eq!(config.stop, Stop::Duration(Duration::from_secs(5)));
        Ok(())
    }

    #[test]
    fn out_of_range_or_contradictory_options_are_refused() {
        for args in [
            &["--fail-ratio", "2"][..],
            &["--fail-ratio", "-0.1"],
            &["--rate", "0"],
            &["--concurrency", "0"],
            &["--concurrency", "4", "--rate", "10"],
            &["--orders", "10", "--duration", "10"],
            &["--max-outstanding", "10"],
            &["--skus", "501"],
            &["--orders", "0"],
        ] {
            assert!(parse(args).is_err(), "{args:?} accepted");
        }
        let err = parse(&["--fail-ratio", "2"]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("--fail-ratio") && err.contains("between 0 and 1"), "{err}");
    }
}
