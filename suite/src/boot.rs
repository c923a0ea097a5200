//! [`Suite::start`]: the one way the suite is booted — its database (a cluster of its own, an
//! existing server, or a database already provisioned), the provisioning, then each service in
//! turn, started as a [`Supervised`] child with the environment `sagactl up` gives it and
//! waited for until ready. `sagactl up`, `sagactl bench` and the end-to-end tests all call it
//! and differ only in their [`SuiteOptions`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use saga_shared::suite::Service;

use crate::database::Database;
use crate::ports::Reserved;
use crate::postgres::TempPostgresOptions;
use crate::provision::{Provisioned, provision};
use crate::services::{EnvContext, LauncherEnv, service_env};
use crate::state::ServiceState;
use crate::supervised::{OnDrop, Supervised};

/// Where the suite's data lives.
#[derive(Debug)]
pub enum DatabaseChoice {
    /// A cluster of the suite's own, stopped (and, unless kept, deleted) with it.
    Temporary(TempPostgresOptions),
    /// An existing server, reached with this superuser URL; not the suite's to stop.
    External { admin_url: String },
    /// A database provisioned already (a test's own database on a shared cluster).
    Provisioned(Provisioned),
}

/// One process of the suite: a service of the table under a name of its own (a second
/// orchestrator replica is `orchestrator-b`), on its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Its log file's name and, for a replica, its `ORCHESTRATOR_ID`.
    pub name: String,
    pub service: &'static Service,
    pub port: u16,
}

impl Instance {
    /// The service itself, named after it.
    pub fn of(service: &'static Service, port: u16) -> Self {
        Self { name: service.name.to_owned(), service, port }
    }

    /// Whether this is a second process of its service (named differently).
    pub fn is_replica(&self) -> bool {
        self.name != self.service.name
    }
}

/// Everything [`Suite::start`] needs. The environment of a service is layered: what `sagactl
/// up` sets ([`service_env`]), then `env`, then `orchestrator_env` for orchestrators, then a
/// replica's `ORCHESTRATOR_ID`, then `instance_env` of its instance.
#[derive(Debug)]
pub struct SuiteOptions {
    pub database: DatabaseChoice,
    /// The database created on a temporary or external server.
    pub database_name: String,
    /// Every process the suite knows, in start order (participants first: the orchestrator
    /// calls them as soon as it is up). Their ports are taken while the suite lives.
    pub instances: Vec<Instance>,
    /// The names of the instances started now; the others can be started later
    /// ([`Suite::start_instance`]).
    pub start: Vec<String>,
    /// Where the service binaries are.
    pub bin_dir: PathBuf,
    /// One `<instance>.log` per process, appended to across restarts.
    pub log_dir: PathBuf,
    pub admin_token: String,
    /// The launcher's environment (log format and filter, faults per service).
    pub launcher: LauncherEnv,
    pub env: BTreeMap<String, String>,
    pub orchestrator_env: BTreeMap<String, String>,
    pub instance_env: BTreeMap<String, BTreeMap<String, String>>,
    /// What happens to the services when the suite is dropped.
    pub on_drop: OnDrop,
    /// Ports kept from other processes of ours while the suite lives (services restart on them).
    pub reserved: Option<Reserved>,
}

impl SuiteOptions {
    /// Options for `instances`, all started now, everything else at its default: services
    /// killed with the suite, no extra environment.
    pub fn new(database: DatabaseChoice, instances: Vec<Instance>, bin_dir: PathBuf, log_dir: PathBuf) -> Self {
        let start = instances.iter().map(|instance| instance.name.clone()).collect();
        Self {
            database,
            database_name: "saga".to_owned(),
            instances,
            start,
            bin_dir,
            log_dir,
            admin_token: String::new(),
            launcher: LauncherEnv::default(),
            env: BTreeMap::new(),
            orchestrator_env: BTreeMap::new(),
            instance_env: BTreeMap::new(),
            on_drop: OnDrop::Kill,
            reserved: None,
        }
    }
}

/// A running suite. Dropping it ends its services (as `on_drop` says), then its own database.
#[derive(Debug)]
pub struct Suite {
    /// Declared first: fields drop in order, so the services go before their database.
    running: BTreeMap<String, Supervised>,
    /// The server the suite started or was pointed at (`None` for a database provisioned by
    /// the caller).
    pub database: Option<Database>,
    /// How each service logs in.
    pub provisioned: Provisioned,
    options: SuiteOptions,
}

impl Suite {
    /// Starts the database (unless given), provisions it, and starts the instances of
    /// `options.start` in order, each waited for until ready. A failure (or the future being
    /// dropped, as by a Ctrl-C) ends what was started.
    pub async fn start(options: SuiteOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.log_dir)
            .with_context(|| format!("cannot create {}", options.log_dir.display()))?;
        let (database, provisioned) = match &options.database {
            DatabaseChoice::Provisioned(provisioned) => (None, provisioned.clone()),
            choice => {
                let database = Database::start(choice).await?;
                let provisioned = provision(&database.admin_url(), &options.database_name)
                    .await
                    .with_context(|| format!("cannot provision database {}", options.database_name))?;
                (Some(database), provisioned)
            }
        };
        let mut suite = Self { running: BTreeMap::new(), database, provisioned, options };
        for name in suite.options.start.clone() {
            suite.start_instance(&name, &[]).await?;
        }
        Ok(suite)
    }

    /// Starts `name` (again, on the same port and log if it ran before) with `extra` on top of
    /// its environment, and waits until it is ready; returns its PID.
    pub async fn start_instance(&mut self, name: &str, extra: &[(&str, &str)]) -> anyhow::Result<u32> {
        let mut entry = self.service_state(name)?;
        entry.env.extend(extra.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())));
        eprintln!("sagactl: starting {name} on port {}", entry.port);
        let launch = entry.launch(name);
        let mut process = launch.spawn(self.options.on_drop)?;
        launch
            .wait_ready(&mut process)
            .await
            .with_context(|| format!("{name} did not become ready (log: {})", entry.log_path.display()))?;
        let pid = process.pid();
        self.running.insert(name.to_owned(), process);
        Ok(pid)
    }

    /// How `name` is started: its binary, port, log and environment (without a PID).
    pub fn service_state(&self, name: &str) -> anyhow::Result<ServiceState> {
        let instance = self.instance(name)?;
        Ok(ServiceState {
            pid: self.running.get(name).map(Supervised::pid),
            port: instance.port,
            url: instance.service.local_url(instance.port),
            binary: self.options.bin_dir.join(instance.service.name),
            env: self.env_of(instance),
            log_path: self.options.log_dir.join(format!("{name}.log")),
        })
    }

    fn instance(&self, name: &str) -> anyhow::Result<&Instance> {
        self.options.instances.iter().find(|instance| instance.name == name).with_context(|| {
            let names: Vec<_> = self.options.instances.iter().map(|i| i.name.as_str()).collect();
            format!("unknown instance {name:?} (known: {})", names.join(", "))
        })
    }

    fn env_of(&self, instance: &Instance) -> BTreeMap<String, String> {
        let options = &self.options;
        // The orchestrator is given the first instance of each participant.
        let mut ports: BTreeMap<&'static str, u16> = BTreeMap::new();
        for other in &options.instances {
            ports.entry(other.service.name).or_insert(other.port);
        }
        let ctx = EnvContext {
            ports: &ports,
            provisioned: &self.provisioned,
            admin_token: &options.admin_token,
            launcher: &options.launcher,
        };
        let mut env = service_env(instance.service, &ctx);
        env.insert("PORT".to_owned(), instance.port.to_string());
        env.extend(options.env.clone());
        if !instance.service.is_participant() {
            env.extend(options.orchestrator_env.clone());
        }
        if instance.is_replica() {
            env.insert("ORCHESTRATOR_ID".to_owned(), instance.name.clone());
        }
        if let Some(own) = options.instance_env.get(&instance.name) {
            env.extend(own.clone());
        }
        env
    }

    /// The port of `name`.
    pub fn port(&self, name: &str) -> anyhow::Result<u16> {
        Ok(self.instance(name)?.port)
    }

    /// The running process of `name`, if any.
    pub fn process(&self, name: &str) -> Option<&Supervised> {
        self.running.get(name)
    }

    /// Hands the process of `name` to the caller (to kill it, or stop it and read how it ended).
    pub fn take(&mut self, name: &str) -> Option<Supervised> {
        self.running.remove(name)
    }

    /// Leaves every service running on its own and returns their PIDs by name: `sagactl up`
    /// tracks them in its state file from then on, since other terminals restart them.
    pub fn detach_services(&mut self) -> BTreeMap<String, u32> {
        std::mem::take(&mut self.running).into_iter().map(|(name, process)| (name, process.detach())).collect()
    }

    /// Stops every service still held (SIGTERM, grace, SIGKILL), in reverse start order (the
    /// orchestrator before the participants it calls), then its own database.
    pub async fn stop(mut self) {
        for instance in self.options.instances.iter().rev() {
            if let Some(process) = self.running.remove(&instance.name) {
                process.stop().await;
            }
        }
    }

    /// The ports the suite keeps while it lives.
    pub fn reserved(&self) -> Option<&Reserved> {
        self.options.reserved.as_ref()
    }

    /// The options it was started with.
    pub fn options(&self) -> &SuiteOptions {
        &self.options
    }
}
