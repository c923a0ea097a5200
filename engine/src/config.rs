//! The orchestrator's typed configuration, read once from the environment at start-up.

use std::time::Duration;

use anyhow::Context;
use saga_shared::{
    config::{Env, ServiceConfig},
    suite::{self, Service},
};

use crate::{circuits::CircuitConfig, definition::StepKind, retry::RetryPolicy};

/// How long a step's transient failures are retried before the saga compensates (60 s):
/// longer than a process restart (about a second here; a container restart or a Postgres crash
/// recovery takes seconds) and than a rolling deploy's pause of one replica (Kubernetes waits
/// up to 30 s for a pod to drain), yet a fifth of the saga's 5-minute deadline, so a saga whose
/// participant is down for good still compensates within minutes.
pub const DEFAULT_RETRY_BUDGET_MS: u64 = 60_000;

/// Sagas one orchestrator drives at once before `POST /orders` answers 503 `overloaded`.
/// See docs/configuration.md for how it follows from the measured capacity.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// Base URL of each participant, in step order: `<NAME>_URL` (`PAYMENT_URL`), else the
/// participant's default port on this machine (`saga_shared::suite`).
#[derive(Debug, Clone)]
pub struct ParticipantUrls(pub [(&'static Service, String); 4]);

impl ParticipantUrls {
    fn from_env(env: &Env) -> Self {
        Self(suite::PARTICIPANTS.each_ref().map(|service| {
            let url = env
                .get(&service.url_variable())
                .map(|u| u.trim_end_matches('/').to_owned())
                .unwrap_or_else(|| service.local_url(service.default_port));
            (service, url)
        }))
    }

    /// `service`'s base URL.
    pub fn of(&self, service: &Service) -> Option<&str> {
        self.0.iter().find(|(s, _)| *s == service).map(|(_, url)| url.as_str())
    }
}

/// Timeout, retries and kind of one step, after defaults and overrides.
#[derive(Debug, Clone, Copy)]
pub struct StepSettings {
    /// Per-attempt timeout (`STEP_<NAME>_TIMEOUT_MS`, else `STEP_TIMEOUT_MS`, else 2000).
    pub timeout: Duration,
    /// Retry policy (`STEP_<NAME>_RETRY_BUDGET_MS`, `…_MAX_ATTEMPTS`, `…_INITIAL_BACKOFF_MS`,
    /// `…_MAX_BACKOFF_MS`, with the same fallbacks: `STEP_RETRY_BUDGET_MS` 60000,
    /// `STEP_MAX_ATTEMPTS` unset (no cap; 0 also means none), `STEP_INITIAL_BACKOFF_MS` 100,
    /// `STEP_MAX_BACKOFF_MS` 2000). A retriable step has neither budget nor cap.
    pub retry: RetryPolicy,
    /// `STEP_<NAME>_KIND`: `compensatable` (default) or `retriable`.
    pub kind: StepKind,
}

/// Everything the orchestrator is configured with.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// The settings every service shares (port, database, timeouts, admin token…).
    pub service: ServiceConfig,
    /// `ORCHESTRATOR_ID`: this instance's name in leases and the timeline (default: random).
    pub instance_id: String,
    /// Where the participants are.
    pub participants: ParticipantUrls,
    /// `SAGA_DEADLINE_MS`: a saga still going forward after this is compensated (default 5 min).
    pub saga_deadline: Duration,
    /// `COMPENSATION_BUDGET_MS`: compensation retries this long before the saga is dead-lettered
    /// as `failed` (default 30 min).
    pub compensation_budget: Duration,
    /// Backoff of compensation retries (`COMPENSATION_INITIAL_BACKOFF_MS` 200,
    /// `COMPENSATION_MAX_BACKOFF_MS` 10000); attempts are bounded by the budget, not a count.
    pub compensation_retry: RetryPolicy,
    /// `LEASE_MS`: how long a saga stays claimed by an instance without a write (default 10 s).
    pub lease: Duration,
    /// `RECOVERY_INTERVAL_MS`: how often orphaned or due sagas are claimed (default 500 ms).
    pub recovery_interval: Duration,
    /// `RECOVERY_BATCH`: most sagas claimed per round (default 200).
    pub recovery_batch: i64,
    /// `STUCK_AFTER_MS`: a saga without progress this long counts as stuck (default 60 s).
    pub stuck_after: Duration,
    /// `GAUGE_REFRESH_MS`: how often the database-derived gauges are recomputed (default 2 s).
    pub gauge_refresh: Duration,
    /// `BATCH_PACE_MS`: the pause between two sagas of a batch operation.
    pub batch_pace: Duration,
    /// Per-step settings, by step name.
    pub steps: Vec<(&'static str, StepSettings)>,
    /// `OPERATOR_TOKEN`, else `ADMIN_TOKEN`: the bearer token of `POST /orders/{id}/retry` and
    /// `/cancel`. Without either, nobody may act (403).
    pub operator_token: Option<String>,
    /// At most this many sagas driven in this process at once; past it `POST /orders` answers
    /// 503 `overloaded` with `Retry-After`, and recovery claims no more
    /// (`MAX_IN_FLIGHT_SAGAS`, default [`DEFAULT_MAX_IN_FLIGHT`]; 0: no limit).
    pub max_in_flight: Option<usize>,
    /// The participants' circuits (`CIRCUIT_OPEN_AFTER` 5, `CIRCUIT_PROBE_MS` 500,
    /// `CIRCUIT_RESUME_PER_SEC` 200).
    pub circuits: CircuitConfig,
    /// `TRACE_UI_URL`: a trace viewer serving `/trace/{trace_id}` (Jaeger's UI), which the
    /// console links each saga to. Unset: no link.
    pub trace_ui_url: Option<String>,
    /// `GRAFANA_URL`: the Grafana the console links to. Unset: no link.
    pub grafana_url: Option<String>,
}

impl OrchestratorConfig {
    /// Reads and validates the configuration for the steps named `step_names`.
    pub fn from_env(env: &Env, step_names: &[&'static str]) -> anyhow::Result<Self> {
        let service = ServiceConfig::from_env(env, &suite::ORCHESTRATOR)?;
        let operator_token = env.get("OPERATOR_TOKEN").map(str::to_owned).or_else(|| service.admin_token.clone());
        let participants = ParticipantUrls::from_env(env);
        let steps =
            step_names.iter().map(|&name| Ok((name, step_settings(env, name)?))).collect::<anyhow::Result<Vec<_>>>()?;
        let config = Self {
            service,
            instance_id: env
                .get("ORCHESTRATOR_ID")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("orchestrator-{:08x}", rand::random::<u32>())),
            participants,
            saga_deadline: env.millis_or("SAGA_DEADLINE_MS", 300_000)?,
            compensation_budget: env.millis_or("COMPENSATION_BUDGET_MS", 1_800_000)?,
            compensation_retry: RetryPolicy {
                max_attempts: None,
                // The compensation budget (its deadline) bounds compensation instead.
                budget: None,
                initial_backoff: env.millis_or("COMPENSATION_INITIAL_BACKOFF_MS", 200)?,
                max_backoff: env.millis_or("COMPENSATION_MAX_BACKOFF_MS", 10_000)?,
            },
            lease: env.millis_or("LEASE_MS", 10_000)?,
            recovery_interval: env.millis_or("RECOVERY_INTERVAL_MS", 500)?,
            recovery_batch: env.parse_or("RECOVERY_BATCH", 200)?,
            stuck_after: env.millis_or("STUCK_AFTER_MS", 60_000)?,
            gauge_refresh: env.millis_or("GAUGE_REFRESH_MS", 2_000)?,
            batch_pace: env.millis_or("BATCH_PACE_MS", 20)?,
            operator_token,
            max_in_flight: Some(env.parse_or("MAX_IN_FLIGHT_SAGAS", DEFAULT_MAX_IN_FLIGHT)?).filter(|&n| n > 0),
            circuits: CircuitConfig {
                open_after: env.parse_or("CIRCUIT_OPEN_AFTER", 5)?,
                probe_interval: env.millis_or("CIRCUIT_PROBE_MS", 500)?,
                resume_per_sec: env.parse_or("CIRCUIT_RESUME_PER_SEC", 200)?,
            },
            steps,
            trace_ui_url: link(env, "TRACE_UI_URL")?,
            grafana_url: link(env, "GRAFANA_URL")?,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.compensation_retry.validate("compensation retry")?;
        for (name, step) in &self.steps {
            step.retry.validate(name)?;
            // One move of a step can make two calls (reconcile, then the attempt) before its
            // outcome is written and the lease renewed: the lease must outlast both.
            if self.lease < step.timeout * 2 + Duration::from_secs(1) {
                anyhow::bail!(
                    "LEASE_MS ({:?}) must be at least twice step {name}'s timeout ({:?}) plus one second",
                    self.lease,
                    step.timeout
                );
            }
        }
        if let Some(token) = &self.operator_token {
            saga_shared::config::validate_token("OPERATOR_TOKEN", token)?;
        }
        if self.circuits.open_after < 1 || self.circuits.probe_interval.is_zero() || self.circuits.resume_per_sec < 1 {
            anyhow::bail!("CIRCUIT_OPEN_AFTER, CIRCUIT_PROBE_MS and CIRCUIT_RESUME_PER_SEC must be positive");
        }
        if self.recovery_batch < 1 || self.recovery_interval.is_zero() || self.gauge_refresh.is_zero() {
            anyhow::bail!("RECOVERY_BATCH, RECOVERY_INTERVAL_MS and GAUGE_REFRESH_MS must be positive");
        }
        Ok(())
    }

    /// The settings of step `name`.
    pub fn step(&self, name: &str) -> anyhow::Result<StepSettings> {
        self.steps
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .with_context(|| format!("no settings for step {name}"))
    }
}

/// A URL the console links to: `http(s)://…`, without a trailing `/`.
fn link(env: &Env, name: &str) -> anyhow::Result<Option<String>> {
    let Some(url) = env.get(name).map(str::trim).filter(|url| !url.is_empty()) else {
        return Ok(None);
    };
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    if !scheme_ok || url.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '<' || c == '>') {
        anyhow::bail!("{name}={url:?} is not an http:// or https:// URL");
    }
    Ok(Some(url.trim_end_matches('/').to_owned()))
}

fn step_settings(env: &Env, name: &str) -> anyhow::Result<StepSettings> {
    let upper = name.to_ascii_uppercase();
    let millis = |suffix: &str, default: u64| -> anyhow::Result<Duration> {
        let fallback = env.millis_or(&format!("STEP_{suffix}"), default)?;
        env.millis_or(&format!("STEP_{upper}_{suffix}"), fallback.as_millis() as u64)
    };
    // 0 (or unset) means no cap: the budget in time is what bounds a step.
    let max_attempts: u32 =
        env.parse_or(&format!("STEP_{upper}_MAX_ATTEMPTS"), env.parse_or("STEP_MAX_ATTEMPTS", 0)?)?;
    let kind = match env.get(&format!("STEP_{upper}_KIND")).map(str::to_ascii_lowercase).as_deref() {
        None | Some("compensatable") => StepKind::Compensatable,
        Some("retriable") => StepKind::Retriable,
        Some(other) => anyhow::bail!("STEP_{upper}_KIND={other:?} is not compensatable or retriable"),
    };
    let compensatable = kind == StepKind::Compensatable;
    let retry = RetryPolicy {
        // A retriable step (past the pivot) is retried until it succeeds.
        max_attempts: Some(max_attempts).filter(|&n| compensatable && n > 0),
        budget: Some(millis("RETRY_BUDGET_MS", DEFAULT_RETRY_BUDGET_MS)?).filter(|_| compensatable),
        initial_backoff: millis("INITIAL_BACKOFF_MS", 100)?,
        max_backoff: millis("MAX_BACKOFF_MS", 2_000)?,
    };
    Ok(StepSettings { timeout: millis("TIMEOUT_MS", 2_000)?, retry, kind })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STEPS: [&str; 2] = ["reserve_inventory", "process_payment"];

    #[test]
    fn per_step_variables_override_the_global_ones_which_override_the_defaults() {
        let env = Env::from_pairs([
            ("STEP_TIMEOUT_MS", "1500"),
            ("STEP_PROCESS_PAYMENT_TIMEOUT_MS", "3000"),
            ("STEP_PROCESS_PAYMENT_MAX_ATTEMPTS", "7"),
            ("STEP_RETRY_BUDGET_MS", "5000"),
            ("STEP_RESERVE_INVENTORY_RETRY_BUDGET_MS", "9000"),
        ]);
        let config = OrchestratorConfig::from_env(&env, &STEPS).unwrap();
        assert_eq!(config.step("reserve_inventory").unwrap().timeout, Duration::from_millis(1500));
        assert_eq!(config.step("reserve_inventory").unwrap().retry.max_attempts, None, "no cap by default");
        assert_eq!(config.step("reserve_inventory").unwrap().retry.budget, Some(Duration::from_secs(9)));
        assert_eq!(config.step("process_payment").unwrap().retry.budget, Some(Duration::from_secs(5)));
        assert_eq!(config.step("process_payment").unwrap().timeout, Duration::from_millis(3000));
        assert_eq!(config.step("process_payment").unwrap().retry.max_attempts, Some(7));
    }

    #[test]
    fn a_lease_shorter_than_two_step_timeouts_is_refused() {
        let env = Env::from_pairs([("LEASE_MS", "3000"), ("STEP_TIMEOUT_MS", "2000")]);
        assert!(OrchestratorConfig::from_env(&env, &STEPS).is_err());
    }

    #[test]
    fn console_links_are_http_urls_kept_without_a_trailing_slash() {
        let read = |url: &str| OrchestratorConfig::from_env(&Env::from_pairs([("TRACE_UI_URL", url)]), &STEPS);
        assert_eq!(read("http://localhost:16686/").unwrap().trace_ui_url.as_deref(), Some("http://localhost:16686"));
        assert_eq!(read("").unwrap().trace_ui_url, None);
        for bad in ["javascript:alert(1)", "localhost:16686", "http://a b", "https://x\"y"] {
            assert!(read(bad).is_err(), "{bad} must be refused");
        }
        let grafana =
            OrchestratorConfig::from_env(&Env::from_pairs([("GRAFANA_URL", "https://grafana.example")]), &STEPS);
        assert_eq!(grafana.unwrap().grafana_url.as_deref(), Some("https://grafana.example"));
    }

    #[test]
    fn the_operator_token_defaults_to_the_admin_token_and_must_not_be_short() {
        let config = OrchestratorConfig::from_env(&Env::from_pairs([("ADMIN_TOKEN", "admin-token")]), &STEPS).unwrap();
        assert_eq!(config.operator_token.as_deref(), Some("admin-token"));
        let env = Env::from_pairs([("ADMIN_TOKEN", "admin-token"), ("OPERATOR_TOKEN", "operator-token")]);
        let config = OrchestratorConfig::from_env(&env, &STEPS).unwrap();
        assert_eq!(config.operator_token.as_deref(), Some("operator-token"));
        assert!(OrchestratorConfig::from_env(&Env::default(), &STEPS).unwrap().operator_token.is_none());
        assert!(OrchestratorConfig::from_env(&Env::from_pairs([("OPERATOR_TOKEN", "short")]), &STEPS).is_err());
    }

    #[test]
    fn a_retriable_step_has_no_attempt_limit() {
        let env = Env::from_pairs([("STEP_PROCESS_PAYMENT_KIND", "retriable")]);
        let config = OrchestratorConfig::from_env(&env, &STEPS).unwrap();
        assert_eq!(config.step("process_payment").unwrap().kind, StepKind::Retriable);
        assert_eq!(config.step("process_payment").unwrap().retry.max_attempts, None);
        assert_eq!(config.step("process_payment").unwrap().retry.budget, None);
    }

    #[test]
    fn steps_retry_for_a_minute_by_default_and_a_zero_budget_is_refused() {
        let config = OrchestratorConfig::from_env(&Env::default(), &STEPS).unwrap();
        assert_eq!(config.step("process_payment").unwrap().retry.budget, Some(Duration::from_secs(60)));
        let env = Env::from_pairs([("STEP_RETRY_BUDGET_MS", "0")]);
        assert!(OrchestratorConfig::from_env(&env, &STEPS).is_err());
    }

    #[test]
    fn admission_is_on_by_default_and_zero_turns_it_off() {
        let config = OrchestratorConfig::from_env(&Env::default(), &STEPS).unwrap();
        assert_eq!(config.max_in_flight, Some(DEFAULT_MAX_IN_FLIGHT));
        let env = Env::from_pairs([("MAX_IN_FLIGHT_SAGAS", "0")]);
        assert_eq!(OrchestratorConfig::from_env(&env, &STEPS).unwrap().max_in_flight, None);
    }

    #[test]
    fn circuits_have_defaults_and_refuse_zero_settings() {
        let config = OrchestratorConfig::from_env(&Env::default(), &STEPS).unwrap();
        assert_eq!(
            (config.circuits.open_after, config.circuits.probe_interval, config.circuits.resume_per_sec),
            (5, Duration::from_millis(500), 200)
        );
        for name in ["CIRCUIT_OPEN_AFTER", "CIRCUIT_PROBE_MS", "CIRCUIT_RESUME_PER_SEC"] {
            assert!(OrchestratorConfig::from_env(&Env::from_pairs([(name, "0")]), &STEPS).is_err(), "{name}=0");
        }
    }
}
