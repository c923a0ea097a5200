//! The services under test, each a real child process of the test on a free loopback port,
//! booted by the launcher's own [`saga_suite::Suite::start`] with the test settings on top.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitStatus,
    time::Duration,
};

use saga_shared::suite;
use saga_suite::{DatabaseChoice, Instance, SuiteOptions, process::Signal, services::LauncherEnv};
use serde_json::Value;

use crate::{TestDb, client::Http};

/// A participant service of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Stock and reservations.
    Inventory,
    /// Balances and payments.
    Payment,
    /// Shipments.
    Shipping,
    /// Confirmations and cancellation notices.
    Notification,
    /// The saga orchestrator.
    Orchestrator,
    /// A second orchestrator replica on the same database.
    OrchestratorB,
}

impl Service {
    /// All four participants, in saga order.
    pub const PARTICIPANTS: [Service; 4] = [Self::Inventory, Self::Payment, Self::Shipping, Self::Notification];

    /// Every service a suite can run (ports are assigned to all of them up front).
    pub const ALL: [Service; 6] =
        [Self::Inventory, Self::Payment, Self::Shipping, Self::Notification, Self::Orchestrator, Self::OrchestratorB];

    /// The participants and one orchestrator: the whole suite.
    pub const SUITE: [Service; 5] =
        [Self::Inventory, Self::Payment, Self::Shipping, Self::Notification, Self::Orchestrator];

    /// Its entry in the suite's table (both orchestrator replicas are the orchestrator).
    pub fn spec(self) -> &'static suite::Service {
        match self {
            Self::Inventory => &suite::INVENTORY,
            Self::Payment => &suite::PAYMENT,
            Self::Shipping => &suite::SHIPPING,
            Self::Notification => &suite::NOTIFICATION,
            Self::Orchestrator | Self::OrchestratorB => &suite::ORCHESTRATOR,
        }
    }

    /// Schema and role name (and binary name, but for the second replica).
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Distinct per process (the second orchestrator replica differs): log file and job name.
    pub fn log_name(self) -> &'static str {
        match self {
            Self::OrchestratorB => "orchestrator-b",
            other => other.name(),
        }
    }
}

/// Orchestrator settings for tests: short timeouts, leases and backoffs so failures and recovery
/// play out in seconds. A test can override any of them.
pub(crate) const ORCHESTRATOR_TEST_ENV: [(&str, &str); 11] = [
    ("STEP_TIMEOUT_MS", "1000"),
    ("STEP_INITIAL_BACKOFF_MS", "50"),
    ("STEP_MAX_BACKOFF_MS", "300"),
    // Failure tests need steps to give up soon; the tests of riding out outages set their own.
    ("STEP_RETRY_BUDGET_MS", "2000"),
    ("COMPENSATION_INITIAL_BACKOFF_MS", "100"),
    ("COMPENSATION_MAX_BACKOFF_MS", "500"),
    ("LEASE_MS", "3000"),
    ("RECOVERY_INTERVAL_MS", "200"),
    ("GAUGE_REFRESH_MS", "200"),
    ("STUCK_AFTER_MS", "2000"),
    ("DB_MAX_CONNECTIONS", "20"),
];

/// How long a slowed participant takes to answer, in a test that acts in the middle of its call
/// (kills a service, cancels the saga): room to act in time on a loaded machine, where 700 ms
/// once was not (the saga had moved on before the test acted).
pub const SLOW_CALL_MS: u64 = 2500;

/// Orchestrator settings under which a call slowed by [`SLOW_CALL_MS`] still succeeds: a step
/// timeout above it, and a lease above twice the timeout (the orchestrator requires that).
pub const SLOW_CALL_ENV: [(&str, &str); 2] = [("STEP_TIMEOUT_MS", "5000"), ("LEASE_MS", "12000")];

/// The admin token every test service is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A test's database and the services running on it. Dropping it kills the services.
#[derive(Debug)]
pub struct Suite {
    /// Declared first: fields drop in order, so the services are killed before the database
    /// (and its cluster, when it is the test's own) goes.
    suite: saga_suite::Suite,
    /// The test's database.
    pub db: TestDb,
    /// A client with a generous timeout.
    pub http: Http,
}

impl Suite {
    /// A fresh database with `services` running on it (with `ADMIN_TOKEN` set).
    pub async fn start(services: &[Service]) -> Self {
        Self::start_with_env(services, &[]).await
    }

    /// Like [`Suite::start`], with the orchestrator's settings for [`SLOW_CALL_MS`].
    pub async fn start_for_slow_calls(services: &[Service]) -> Self {
        let env: Vec<_> = SLOW_CALL_ENV.iter().map(|&(k, v)| (Service::Orchestrator, k, v)).collect();
        Self::start_with_env(services, &env).await
    }

    /// Like [`Suite::start`], with extra environment variables per service.
    pub async fn start_with_env(services: &[Service], env: &[(Service, &str, &str)]) -> Self {
        Self::start_on(TestDb::new().await.expect("test database"), services, env).await
    }

    /// Like [`Suite::start_with_env`], on the database `db`. Every service of [`Service::ALL`]
    /// gets a port now (kept while the suite lives), so any of them can be started later.
    pub async fn start_on(db: TestDb, services: &[Service], env: &[(Service, &str, &str)]) -> Self {
        let reserved = saga_suite::ports::reserve(Service::ALL.len()).expect("reserved ports");
        let instances = Service::ALL
            .iter()
            .zip(reserved.ports())
            .map(|(&service, &port)| Instance { name: service.log_name().to_owned(), service: service.spec(), port })
            .collect();
        let mut instance_env: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for &(service, key, value) in env {
            instance_env.entry(service.log_name().to_owned()).or_default().insert(key.to_owned(), value.to_owned());
        }
        let rust_log = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".to_owned());
        let options = SuiteOptions {
            start: services.iter().map(|service| service.log_name().to_owned()).collect(),
            admin_token: ADMIN_TOKEN.to_owned(),
            launcher: LauncherEnv::from_pairs([("RUST_LOG".to_owned(), rust_log)]),
            env: BTreeMap::from([("SHUTDOWN_GRACE_MS".to_owned(), "3000".to_owned())]),
            orchestrator_env: ORCHESTRATOR_TEST_ENV
                .iter()
                .chain(&[("ORCHESTRATOR_ID", "orchestrator")])
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            instance_env,
            reserved: Some(reserved),
            ..SuiteOptions::new(
                DatabaseChoice::Provisioned(db.provisioned.clone()),
                instances,
                bin_dir(),
                target_dir().join("test-logs").join(&db.name),
            )
        };
        let suite = saga_suite::Suite::start(options)
            .await
            .unwrap_or_else(|e| panic!("{e:#} (run `cargo build --workspace` first)"));
        Self { suite, db, http: Http::new(Duration::from_secs(30)) }
    }

    /// Base URL of `service` joined with `path`.
    pub fn url(&self, service: Service, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port(service))
    }

    /// The port `service` listens (or will listen) on.
    pub fn port(&self, service: Service) -> u16 {
        self.suite.port(service.log_name()).expect("every service has a port")
    }

    /// Starts `service` (again, on the same port if it ran before) and waits until it is ready,
    /// with `extra_env` on top of its environment.
    pub async fn spawn(&mut self, service: Service, extra_env: &[(&str, &str)]) {
        if let Err(err) = self.suite.start_instance(service.log_name(), extra_env).await {
            panic!("{err:#}");
        }
    }

    /// SIGKILLs `service` and waits for it to be gone.
    pub async fn kill(&mut self, service: Service) {
        if let Some(mut process) = self.suite.take(service.log_name()) {
            process.kill();
        }
    }

    /// Sends SIGTERM to `service` and waits (at most 15 s) for it to exit.
    pub async fn terminate(&mut self, service: Service) -> ExitStatus {
        let mut process = self.suite.take(service.log_name()).expect("service not running");
        process.signal(Signal::Term);
        process.wait_exit(Duration::from_secs(15)).await.expect("service did not exit within 15 s of SIGTERM")
    }

    /// The PID of `service`'s process (it must be running).
    pub fn pid(&self, service: Service) -> u32 {
        let process = self.suite.process(service.log_name());
        process.unwrap_or_else(|| panic!("{} is not running", service.log_name())).pid()
    }

    /// Freezes `service` with SIGSTOP, as a long GC pause, a VM migration or a laptop lid would:
    /// it keeps its sockets and its leases but does nothing until [`Suite::thaw`].
    pub fn freeze(&self, service: Service) {
        self.signal(service, Signal::Stop);
    }

    /// Resumes a service frozen by [`Suite::freeze`] (SIGCONT).
    pub fn thaw(&self, service: Service) {
        self.signal(service, Signal::Cont);
    }

    fn signal(&self, service: Service, signal: Signal) {
        let process = self.suite.process(service.log_name());
        process.unwrap_or_else(|| panic!("{} is not running", service.log_name())).signal(signal);
    }

    /// Replaces `service`'s faults through its admin API.
    pub async fn set_faults(&self, service: Service, faults: &Value) {
        let response = self
            .http
            .inner()
            .put(self.url(service, "/admin/faults"))
            .bearer_auth(ADMIN_TOKEN)
            .json(faults)
            .send()
            .await
            .expect("PUT /admin/faults");
        assert_eq!(response.status(), 200, "setting faults failed");
    }

    /// The log of `service` so far (to explain a failure).
    pub fn log(&self, service: Service) -> String {
        tail(&self.suite.options().log_dir.join(format!("{}.log", service.log_name())))
    }
}

/// `target/<profile>`: where cargo put this test executable's sibling binaries.
pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-exe>
    exe.parent().and_then(Path::parent).map(Path::to_path_buf).expect("target dir")
}

/// Where the binaries under test are: `SAGA_BIN_DIR`, else beside the test executable.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("SAGA_BIN_DIR").map(PathBuf::from).unwrap_or_else(target_dir)
}

pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
