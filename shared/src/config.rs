//! Typed configuration read once from environment variables, with defaults that work locally.
//!
//! Nothing deeper in the code reads the environment: each binary builds its config struct here at
//! start-up and fails fast, naming the variable, when a value does not parse.

use std::{collections::HashMap, net::IpAddr, str::FromStr, time::Duration};

use anyhow::{Context, bail};

use crate::faults::FaultConfig;

/// A snapshot of the environment, so config loading is a pure function that tests can feed.
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    /// The process environment. Variables that are not UTF-8 are left out (`std::env::vars`
    /// would panic on them), since none of ours can be.
    pub fn from_process() -> Self {
        let vars =
            std::env::vars_os().filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)));
        Self(vars.collect())
    }

    /// An environment made of the given pairs (for tests, and for launchers composing one).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    /// Every variable that is set (empty ones included), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The raw value, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// The parsed value, or `default` when unset.
    pub fn parse_or<T>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => {
                raw.trim().parse().map_err(|e| anyhow::anyhow!("environment variable {name}={raw:?} is invalid: {e}"))
            }
        }
    }

    /// A boolean flag: `1/true/yes/on` or `0/false/no/off`.
    pub fn flag(&self, name: &str, default: bool) -> anyhow::Result<bool> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => bail!("environment variable {name}={v:?} is not a boolean (true/false)"),
        }
    }

    /// A duration given in milliseconds (the variable's name says so: `…_MS`).
    pub fn millis_or(&self, name: &str, default_ms: u64) -> anyhow::Result<Duration> {
        Ok(Duration::from_millis(self.parse_or(name, default_ms)?))
    }
}

/// Shortest bearer token (`ADMIN_TOKEN`, `OPERATOR_TOKEN`) a service accepts.
pub const MIN_TOKEN_LEN: usize = 8;

/// Refuses a token shorter than [`MIN_TOKEN_LEN`] bytes, naming the variable it came from. The
/// services check their tokens with it at start-up, and the launcher before it starts them.
pub fn validate_token(variable: &str, token: &str) -> anyhow::Result<()> {
    if token.len() < MIN_TOKEN_LEN {
        bail!("{variable} must be at least {MIN_TOKEN_LEN} characters long (it has {})", token.len());
    }
    Ok(())
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for machines.
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" | "text" => Ok(Self::Pretty),
            other => Err(format!("{other:?} is not json or pretty")),
        }
    }
}

/// What every HTTP service of the suite is configured with.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `HOST`: the address to listen on (default 127.0.0.1).
    pub host: IpAddr,
    /// `PORT`: the port to listen on (each service has its own default; 0 picks a free one).
    pub port: u16,
    /// `DATABASE_URL`: the service's own role's connection URL.
    pub database_url: String,
    /// `DB_SCHEMA`: the schema the service owns and migrates (default: the service's name).
    pub db_schema: String,
    /// `DB_MAX_CONNECTIONS`: pool size (default 10).
    pub db_max_connections: u32,
    /// `DB_ACQUIRE_TIMEOUT_MS`: longest wait for a pooled connection before answering 503.
    pub db_acquire_timeout: Duration,
    /// `DB_STARTUP_TIMEOUT_MS`: how long start-up keeps retrying an unreachable database.
    pub db_startup_timeout: Duration,
    /// `REQUEST_TIMEOUT_MS`: longest a request may run before the server answers 503.
    pub request_timeout: Duration,
    /// `BODY_LIMIT_BYTES`: largest accepted request body (default 64 KiB).
    pub body_limit_bytes: usize,
    /// `SHUTDOWN_GRACE_MS`: how long in-flight requests may drain after SIGTERM.
    pub shutdown_grace: Duration,
    /// How long connections may take and hold (`HEADER_READ_TIMEOUT_MS`, `IDLE_TIMEOUT_MS`,
    /// `MAX_CONNECTIONS`; see [`ConnectionLimits`]).
    pub connections: ConnectionLimits,
    /// `ADMIN_TOKEN`: enables `/admin/faults` and is the bearer token it checks.
    pub admin_token: Option<String>,
    /// `FAULT_*`: faults injected from start-up (all off by default).
    pub faults: FaultConfig,
    /// `STEP_BATCHING`: concurrent step requests share one transaction (default on; off puts
    /// each in a transaction of its own, for comparison).
    pub step_batching: bool,
    /// `STEP_QUEUE_LIMIT`: most step requests waiting for the batch writer; past it a `PUT` is
    /// answered 503 `overloaded` with `Retry-After` (default 1024).
    pub step_queue_limit: usize,
    /// `STEP_WRITER_RESTART_MS`: how long a batch writer that panicked stays down (the service
    /// not ready) before it is started again; doubled for each crash in a row, up to 30 s
    /// (default 500 ms).
    pub step_writer_restart: Duration,
}

/// What a connection may cost the server. A slow or silent client holds a connection (a socket,
/// a task, buffers) until one of these ends it, so each is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `HEADER_READ_TIMEOUT_MS`: longest a request's head may take to arrive, from its first byte
    /// (and, on a new connection, from the connection's accept: one that never sends anything
    /// is closed then too). Default 10 s.
    pub header_read_timeout: Duration,
    /// `IDLE_TIMEOUT_MS`: longest a keep-alive connection may wait between requests. Default
    /// 120 s: above the 90 s after which our clients (reqwest) drop an idle pooled connection,
    /// so the client, not the server, closes it, and a request never races the server's close.
    pub idle_timeout: Duration,
    /// `MAX_CONNECTIONS`: most connections served at once. Past it, new connections wait in the
    /// kernel's accept queue, and idle keep-alive connections are closed to make room. Default
    /// 1024; keep it below the process's open-file limit.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// Reads `HEADER_READ_TIMEOUT_MS`, `IDLE_TIMEOUT_MS` and `MAX_CONNECTIONS`.
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        let limits = Self {
            header_read_timeout: env.millis_or("HEADER_READ_TIMEOUT_MS", 10_000)?,
            idle_timeout: env.millis_or("IDLE_TIMEOUT_MS", 120_000)?,
            max_connections: env.parse_or("MAX_CONNECTIONS", 1024)?,
        };
        // Zero would close every connection at once (or accept none): never what is meant.
        if limits.header_read_timeout.is_zero() {
            bail!("HEADER_READ_TIMEOUT_MS must be at least 1");
        }
        if limits.idle_timeout.is_zero() {
            bail!("IDLE_TIMEOUT_MS must be at least 1");
        }
        if limits.max_connections == 0 {
            bail!("MAX_CONNECTIONS must be at least 1");
        }
        Ok(limits)
    }
}

impl ServiceConfig {
    /// Reads the common variables; `service` gives the default schema, role and port.
    pub fn from_env(env: &Env, service: &crate::suite::Service) -> anyhow::Result<Self> {
        let (default_port, service) = (service.default_port, service.name);
        let database_url = env
            .get("DATABASE_URL")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("postgres://{service}:{service}-secret@127.0.0.1:5432/saga"));
        let admin_token = env.get("ADMIN_TOKEN").map(str::to_owned);
        if let Some(token) = &admin_token {
            validate_token("ADMIN_TOKEN", token)?;
        }
        let config = Self {
            host: env.parse_or("HOST", IpAddr::from([127, 0, 0, 1]))?,
            port: env.parse_or("PORT", default_port)?,
            database_url,
            db_schema: env.get("DB_SCHEMA").unwrap_or(service).to_owned(),
            db_max_connections: env.parse_or("DB_MAX_CONNECTIONS", 10)?,
            db_acquire_timeout: env.millis_or("DB_ACQUIRE_TIMEOUT_MS", 2_000)?,
            db_startup_timeout: env.millis_or("DB_STARTUP_TIMEOUT_MS", 30_000)?,
            request_timeout: env.millis_or("REQUEST_TIMEOUT_MS", 30_000)?,
            body_limit_bytes: env.parse_or("BODY_LIMIT_BYTES", 64 * 1024)?,
            shutdown_grace: env.millis_or("SHUTDOWN_GRACE_MS", 10_000)?,
            connections: ConnectionLimits::from_env(env)?,
            admin_token,
            faults: FaultConfig::from_env(env).context("invalid FAULT_* configuration")?,
            step_batching: env.flag("STEP_BATCHING", true)?,
            step_queue_limit: env.parse_or("STEP_QUEUE_LIMIT", 1024)?,
            step_writer_restart: env.millis_or("STEP_WRITER_RESTART_MS", 500)?,
        };
        if config.db_max_connections == 0 {
            bail!("DB_MAX_CONNECTIONS must be at least 1");
        }
        if config.step_queue_limit == 0 {
            bail!("STEP_QUEUE_LIMIT must be at least 1");
        }
        // Zero would restart a writer that panics at every round at once, forever (0 doubled).
        if config.step_writer_restart.is_zero() {
            bail!("STEP_WRITER_RESTART_MS must be at least 1");
        }
        if !config.db_schema.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            bail!("DB_SCHEMA must be a lowercase identifier");
        }
        Ok(config)
    }
}

/// Logging settings every binary reads: `LOG_FORMAT` (json|pretty) and `RUST_LOG`.
pub fn log_format(env: &Env) -> anyhow::Result<LogFormat> {
    env.parse_or("LOG_FORMAT", LogFormat::Pretty)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_without_any_variable() -> anyhow::Result<()> {
        let config = ServiceConfig::from_env(&Env::default(), &crate::suite::PAYMENT)?;
        assert_eq!(config.port, 8082);
        assert_eq!(config.db_schema, "payment");
        assert!(config.admin_token.is_none());
        assert!(!config.faults.any_enabled());
        Ok(())
    }

    #[test]
    fn an_unparsable_variable_is_named_in_the_error() {
        let env = Env::from_pairs([("PORT", "eighty")]);
        let err = ServiceConfig::from_env(&env, &crate::suite::PAYMENT).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("PORT"), "{err}");
    }

    #[test]
    fn connection_limits_have_defaults_and_refuse_zero() -> anyhow::Result<()> {
        let limits = ServiceConfig::from_env(&Env::default(), &crate::suite::PAYMENT)?.connections;
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(120));
        assert_eq!(limits.max_connections, 1024);
        for variable in [
            "HEADER_READ_TIMEOUT_MS",
            "IDLE_TIMEOUT_MS",
            "MAX_CONNECTIONS",
            "STEP_QUEUE_LIMIT",
            "STEP_WRITER_RESTART_MS",
        ] {
            let err = ServiceConfig::from_env(&Env::from_pairs([(variable, "0")]), &crate::suite::PAYMENT).unwrap_err();
            assert!(err.to_string().contains(variable), "{err}");
        }
        Ok(())
    }

    #[test]
    fn a_short_admin_token_is_refused() {
        let env = Env::from_pairs([("ADMIN_TOKEN", "abc")]);
        assert!(ServiceConfig::from_env(&env, &crate::suite::PAYMENT).is_err());
    }
}
