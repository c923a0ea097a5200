//! The suite's processes (one table) and the environment each one is started with.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use saga_shared::config::{Env, validate_token};

use crate::provision::Provisioned;
use crate::text::random_hex;

/// Every process `sagactl up` starts, in start order (participants first, because the
/// orchestrator may call them as soon as it is up): the suite's one table.
pub use saga_shared::suite::{ALL as SUITE, Service};

/// Whether `up` may skip `service` (with a note) when its binary has not been built: the
/// orchestrator, so that the participants can be run alone.
pub fn optional(service: &Service) -> bool {
    !service.is_participant()
}

/// Looks a service up by name, with the valid names in the error.
pub fn spec(name: &str) -> anyhow::Result<&'static Service> {
    SUITE.iter().find(|spec| spec.name == name).with_context(|| {
        let names: Vec<_> = SUITE.iter().map(|spec| spec.name).collect();
        format!("unknown service {name:?} (known: {})", names.join(", "))
    })
}

/// The launcher's environment, read with the same rules as every service's
/// ([`saga_shared::config::Env`]: a snapshot taken once, empty counts as unset, values parsed
/// with the variable's name in the error), plus what only the launcher reads.
#[derive(Debug, Clone, Default)]
pub struct LauncherEnv {
    env: Env,
}

impl LauncherEnv {
    /// The process environment; variables that are not UTF-8 are ignored.
    pub fn from_process() -> Self {
        Self { env: Env::from_process() }
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self { env: Env::from_pairs(pairs) }
    }

    /// The same environment with `key` set to `value`.
    #[must_use]
    pub fn with(&self, key: &str, value: &str) -> Self {
        let others = self.env.iter().filter(|(name, _)| *name != key);
        let pairs = others.map(|(name, value)| (name.to_owned(), value.to_owned()));
        Self::from_pairs(pairs.chain([(key.to_owned(), value.to_owned())]))
    }

    /// A variable's value; empty counts as unset.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env.get(key)
    }

    /// Whether `key` is set, but to nothing (`PROMETHEUS=`: "none, please", not "the default").
    pub fn is_set_to_nothing(&self, key: &str) -> bool {
        self.env.iter().any(|(name, value)| name == key && value.trim().is_empty())
    }

    /// Where the service binaries are: `SAGA_BIN_DIR`, else next to the running `sagactl`
    /// (cargo builds every binary of the workspace into the same directory).
    pub fn bin_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = self.get("SAGA_BIN_DIR") {
            return Ok(PathBuf::from(dir));
        }
        let exe = std::env::current_exe().context("cannot locate the sagactl executable")?;
        exe.parent().map(PathBuf::from).context("the sagactl executable has no parent directory")
    }

    /// `<NAME>_PORT`, else the table's default.
    pub fn port(&self, spec: &Service) -> anyhow::Result<u16> {
        let key = format!("{}_PORT", spec.name.to_uppercase());
        match self.env.parse_or::<u16>(&key, spec.default_port)? {
            0 => bail!("{key} must be a port number from 1 to 65535"),
            port => Ok(port),
        }
    }

    /// `ADMIN_TOKEN`, else a fresh random one; the flag says whether it was generated (and so
    /// must be shown to the user). A token the services would refuse is an error here, before
    /// anything is started.
    pub fn admin_token(&self) -> anyhow::Result<(String, bool)> {
        match self.get("ADMIN_TOKEN") {
            Some(token) => match validate_admin_token(token) {
                Ok(()) => Ok((token.to_owned(), false)),
                Err(err) => bail!("{err:#}; set a longer one, or unset ADMIN_TOKEN to get a random one"),
            },
            None => Ok((random_hex(16), true)),
        }
    }

    /// The bearer token of operator actions: `OPERATOR_TOKEN`, else the suite's admin token
    /// (`admin_token`, from the state file), which the orchestrator takes as its operator token
    /// when it has no other. `None` when neither is known.
    pub fn operator_token(&self, admin_token: Option<&str>) -> Option<String> {
        self.get("OPERATOR_TOKEN").or(admin_token.filter(|token| !token.is_empty())).map(str::to_owned)
    }

    /// `<SERVICE>_FAULT_X=v` becomes `FAULT_X=v` for that service only, so faults can be aimed
    /// at one participant from the launcher's command line.
    pub fn fault_env(&self, service: &str) -> BTreeMap<String, String> {
        let prefix = format!("{}_", service.to_uppercase());
        self.env
            .iter()
            .filter_map(|(key, value)| {
                let rest = key.strip_prefix(&prefix)?;
                rest.starts_with("FAULT_").then(|| (rest.to_owned(), value.to_owned()))
            })
            .collect()
    }
}

/// Fails for a token every service would refuse at start-up (the services' own rule).
pub fn validate_admin_token(token: &str) -> anyhow::Result<()> {
    validate_token("ADMIN_TOKEN", token)
}

/// True for variables that configure faults (`FAULT_*`, `<SERVICE>_FAULT_*`). They are removed
/// from what a child inherits, so only the mapping in [`LauncherEnv::fault_env`] decides which
/// service misbehaves.
pub fn is_fault_var(key: &str) -> bool {
    key.starts_with("FAULT_")
        || SUITE.iter().any(|spec| {
            key.strip_prefix(&format!("{}_", spec.name.to_uppercase())).is_some_and(|rest| rest.starts_with("FAULT_"))
        })
}

/// What a service needs to find its peers and its database.
#[derive(Debug)]
pub struct EnvContext<'a> {
    /// Port of every service being started (the orchestrator gets the participants' URLs).
    pub ports: &'a BTreeMap<&'static str, u16>,
    pub provisioned: &'a Provisioned,
    pub admin_token: &'a str,
    pub launcher: &'a LauncherEnv,
}

/// The variables `sagactl` sets for one service (on top of the inherited environment).
pub fn service_env(spec: &Service, ctx: &EnvContext<'_>) -> BTreeMap<String, String> {
    let port = ctx.ports.get(spec.name).copied().unwrap_or(spec.default_port);
    let mut env = BTreeMap::from([
        ("HOST".to_owned(), "127.0.0.1".to_owned()),
        ("PORT".to_owned(), port.to_string()),
        ("DATABASE_URL".to_owned(), ctx.provisioned.service_url(spec.name)),
        ("DB_SCHEMA".to_owned(), spec.name.to_owned()),
        ("LOG_FORMAT".to_owned(), ctx.launcher.get("LOG_FORMAT").unwrap_or("pretty").to_owned()),
        ("ADMIN_TOKEN".to_owned(), ctx.admin_token.to_owned()),
    ]);
    if let Some(filter) = ctx.launcher.get("RUST_LOG") {
        env.insert("RUST_LOG".to_owned(), filter.to_owned());
    }
    if !spec.is_participant() {
        for participant in SUITE.iter().filter(|s| s.is_participant()) {
            if let Some(&port) = ctx.ports.get(participant.name) {
                env.insert(participant.url_variable(), participant.local_url(port));
            }
        }
        // Where the console links to (`sagactl up` sets GRAFANA_URL for the Grafana it starts).
        for link in ["GRAFANA_URL", "TRACE_UI_URL"] {
            if let Some(url) = ctx.launcher.get(link) {
                env.insert(link.to_owned(), url.to_owned());
            }
        }
    }
    env.extend(ctx.launcher.fault_env(spec.name));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> LauncherEnv {
        LauncherEnv::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn every_service_has_a_schema_and_only_the_orchestrator_is_optional() {
        for spec in &SUITE {
            assert!(crate::provision::SERVICES.contains(&spec.name), "{} has no schema", spec.name);
            assert_eq!(optional(spec), !spec.is_participant());
        }
        assert_eq!(spec("payment").map(|s| s.default_port).ok(), Some(8082));
        assert!(spec("billing").is_err());
    }

    #[test]
    fn a_variable_can_be_set_on_a_copy_of_the_environment() {
        let launcher = env(&[("GRAFANA_URL", "http://old"), ("RUST_LOG", "info")]);
        let changed = launcher.with("GRAFANA_URL", "http://127.0.0.1:3000");
        assert_eq!(changed.get("GRAFANA_URL"), Some("http://127.0.0.1:3000"));
        assert_eq!((changed.get("RUST_LOG"), launcher.get("GRAFANA_URL")), (Some("info"), Some("http://old")));
    }

    #[test]
    fn fault_variables_are_mapped_to_their_service_only() {
        let launcher = env(&[
            ("PAYMENT_FAULT_LATENCY_MS", "200"),
            ("PAYMENT_FAULT_ERROR_RATE", "0.5"),
            ("SHIPPING_FAULT_LATENCY_MS", "5"),
            ("PAYMENT_PORT", "9000"),
            ("FAULT_GLOBAL", "1"),
        ]);
        let payment = launcher.fault_env("payment");
        assert_eq!(
            payment,
            BTreeMap::from([
                ("FAULT_ERROR_RATE".to_owned(), "0.5".to_owned()),
                ("FAULT_LATENCY_MS".to_owned(), "200".to_owned()),
            ])
        );
        assert!(launcher.fault_env("inventory").is_empty());
        assert!(is_fault_var("FAULT_GLOBAL"));
        assert!(is_fault_var("SHIPPING_FAULT_LATENCY_MS"));
        assert!(!is_fault_var("PAYMENT_PORT"));
    }

    #[test]
    fn ports_can_be_overridden_and_are_validated() -> anyhow::Result<()> {
        let inventory = spec("inventory")?;
        assert_eq!(env(&[]).port(inventory)?, 8081);
        assert_eq!(env(&[("INVENTORY_PORT", "9181")]).port(inventory)?, 9181);
        assert!(env(&[("INVENTORY_PORT", "http")]).port(inventory).is_err());
        assert!(env(&[("INVENTORY_PORT", "0")]).port(inventory).is_err());
        Ok(())
    }

    #[test]
    fn admin_token_comes_from_the_environment_or_is_generated() -> anyhow::Result<()> {
        assert_eq!(env(&[("ADMIN_TOKEN", "t0k3n-ok")]).admin_token()?, ("t0k3n-ok".to_owned(), false));
        let (token, generated) = env(&[]).admin_token()?;
        assert!(generated);
        assert_eq!(token.len(), 32);
        validate_admin_token(&token)?;
        Ok(())
    }

    #[test]
    fn a_short_admin_token_is_refused_with_the_minimum_named() -> anyhow::Result<()> {
        let err = env(&[("ADMIN_TOKEN", "1234567")]).admin_token().err().context("7 characters accepted")?;
        let message = format!("{err:#}");
        assert!(message.contains("ADMIN_TOKEN"), "{message}");
        assert!(message.contains("at least 8"), "{message}");
        Ok(())
    }

    #[test]
    fn each_service_gets_its_database_login_port_and_token() -> anyhow::Result<()> {
        let provisioned = Provisioned::for_tests("127.0.0.1", 5433, "saga");
        let ports = BTreeMap::from([("inventory", 8081), ("payment", 9082), ("orchestrator", 8080)]);
        let launcher = env(&[("RUST_LOG", "debug"), ("PAYMENT_FAULT_LATENCY_MS", "200")]);
        let ctx = EnvContext { ports: &ports, provisioned: &provisioned, admin_token: "tok", launcher: &launcher };

        let payment = service_env(spec("payment")?, &ctx);
        assert_eq!(payment["PORT"], "9082");
        assert_eq!(payment["HOST"], "127.0.0.1");
        assert_eq!(payment["DATABASE_URL"], "postgres://payment:payment-secret@127.0.0.1:5433/saga");
        assert_eq!(payment["DB_SCHEMA"], "payment");
        assert_eq!(payment["LOG_FORMAT"], "pretty");
        assert_eq!(payment["RUST_LOG"], "debug");
        assert_eq!(payment["ADMIN_TOKEN"], "tok");
        assert_eq!(payment["FAULT_LATENCY_MS"], "200");
        assert!(!payment.contains_key("INVENTORY_URL"));

        let inventory = service_env(spec("inventory")?, &ctx);
        assert!(!inventory.contains_key("FAULT_LATENCY_MS"));

        let orchestrator = service_env(spec("orchestrator")?, &ctx);
        assert_eq!(orchestrator["INVENTORY_URL"], "http://127.0.0.1:8081");
        assert_eq!(orchestrator["PAYMENT_URL"], "http://127.0.0.1:9082");
        // Services not being started get no URL.
        assert!(!orchestrator.contains_key("SHIPPING_URL"));
        Ok(())
    }

    #[test]
    fn the_orchestrator_gets_every_participants_actual_port_and_its_own_database() -> anyhow::Result<()> {
        let provisioned = Provisioned::for_tests("127.0.0.1", 5433, "saga");
        let ports = BTreeMap::from([
            ("inventory", 18081),
            ("payment", 18082),
            ("shipping", 18083),
            ("notification", 18084),
            ("orchestrator", 18080),
        ]);
        let launcher = env(&[]);
        let ctx = EnvContext { ports: &ports, provisioned: &provisioned, admin_token: "tok", launcher: &launcher };
        let orchestrator = service_env(spec("orchestrator")?, &ctx);
        assert_eq!(orchestrator["PORT"], "18080");
        assert_eq!(orchestrator["INVENTORY_URL"], "http://127.0.0.1:18081");
        assert_eq!(orchestrator["PAYMENT_URL"], "http://127.0.0.1:18082");
        assert_eq!(orchestrator["SHIPPING_URL"], "http://127.0.0.1:18083");
        assert_eq!(orchestrator["NOTIFICATION_URL"], "http://127.0.0.1:18084");
        assert_eq!(orchestrator["DB_SCHEMA"], "orchestrator");
        assert_eq!(orchestrator["DATABASE_URL"], "postgres://orchestrator:orchestrator-secret@127.0.0.1:5433/saga");
        Ok(())
    }

    #[test]
    fn the_launchers_log_format_wins_over_the_default() -> anyhow::Result<()> {
        let provisioned = Provisioned::for_tests("127.0.0.1", 5432, "saga");
        let ports = BTreeMap::new();
        let launcher = env(&[("LOG_FORMAT", "json")]);
        let ctx = EnvContext { ports: &ports, provisioned: &provisioned, admin_token: "t", launcher: &launcher };
        let shipping = service_env(spec("shipping")?, &ctx);
        assert_eq!(shipping["LOG_FORMAT"], "json");
        assert_eq!(shipping["PORT"], "8083");
        assert!(!shipping.contains_key("RUST_LOG"));
        Ok(())
    }
}
