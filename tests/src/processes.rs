//! The services under test, each a real child process of the test on a free loopback port.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    process::ExitStatus,
    time::Duration,
};

use saga_shared::suite;
use saga_suite::{
    supervised::Launch,
    process::{Signal, send_signal},
    services::{self, EnvContext, LauncherEnv},
};
use serde_json::Value;
use tokio::process::Child;

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

    fn is_orchestrator(self) -> bool {
        matches!(self, Self::Orchestrator | Self::OrchestratorB)
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

/// A service process; killed when dropped (with its test).
#[derive(Debug)]
struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A test's database and the services running on it. Dropping it kills the services.
#[derive(Debug)]
pub struct Suite {
    /// The test's database.
    pub db: TestDb,
    /// A client with a generous timeout.
    pub http: Http,
    ports: HashMap<Service, u16>,
    running: HashMap<Service, Running>,
    /// Keeps other test processes off `ports` while this suite lives (services restart on them).
    /// After `running`: fields drop in order, so the services are killed first.
    _reserved: saga_suite::ports::Reserved,
    log_dir: PathBuf,
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

    /// Like [`Suite::start_with_env`], on the database `db`.
    pub async fn start_on(db: TestDb, services: &[Service], env: &[(Service, &str, &str)]) -> Self {
        let log_dir = target_dir().join("test-logs").join(&db.name);
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let reserved = saga_suite::ports::reserve(Service::ALL.len()).expect("reserved ports");
        let mut suite = Self {
            db,
            http: Http::new(Duration::from_secs(30)),
            ports: Service::ALL.iter().copied().zip(reserved.ports().iter().copied()).collect(),
            running: HashMap::new(),
            _reserved: reserved,
            log_dir,
        };
        for &service in services {
            let extra: Vec<(&str, &str)> =
                env.iter().filter(|(s, _, _)| *s == service).map(|(_, k, v)| (*k, *v)).collect();
            suite.spawn(service, &extra).await;
        }
        suite
    }

    /// Base URL of `service` joined with `path`.
    pub fn url(&self, service: Service, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port(service))
    }

    /// The port `service` listens (or will listen) on.
    pub fn port(&self, service: Service) -> u16 {
        *self.ports.get(&service).expect("every service has a port")
    }

    /// Starts `service` (again, on the same port if it ran before) and waits until it is ready.
    /// It is started the way `sagactl up` starts it (the same environment builder and launcher),
    /// with the test settings on top.
    pub async fn spawn(&mut self, service: Service, extra_env: &[(&str, &str)]) {
        let spec = service.spec();
        let port = self.port(service);
        let log_path = self.log_dir.join(format!("{}.log", service.log_name()));
        let ports: BTreeMap<&'static str, u16> = Service::SUITE.iter().map(|&s| (s.name(), self.port(s))).collect();
        let rust_log = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".to_owned());
        let launcher = LauncherEnv::from_pairs([("RUST_LOG".to_owned(), rust_log)]);
        let ctx = EnvContext {
            ports: &ports,
            provisioned: &self.db.provisioned,
            admin_token: ADMIN_TOKEN,
            launcher: &launcher,
        };
        let mut env = services::service_env(spec, &ctx);
        env.insert("PORT".to_owned(), port.to_string());
        env.insert("SHUTDOWN_GRACE_MS".to_owned(), "3000".to_owned());
        if service.is_orchestrator() {
            env.insert("ORCHESTRATOR_ID".to_owned(), service.log_name().to_owned());
            env.extend(ORCHESTRATOR_TEST_ENV.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())));
        }
        env.extend(extra_env.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())));
        let binary = bin_dir().join(spec.name);
        let launch = Launch { name: service.log_name(), binary: &binary, env: &env, log_path: &log_path, port };
        let mut child = launch.spawn().unwrap_or_else(|e| panic!("{e:#} (run `cargo build --workspace` first)"));
        let ready = launch.wait_ready(&mut child).await;
        self.running.insert(service, Running { child });
        if let Err(err) = ready {
            panic!("{err:#}");
        }
    }

    /// SIGKILLs `service` and waits for it to be gone.
    pub async fn kill(&mut self, service: Service) {
        if let Some(mut running) = self.running.remove(&service) {
            running.child.kill().await.expect("kill");
        }
    }

    /// Sends SIGTERM to `service` and waits (at most 15 s) for it to exit.
    pub async fn terminate(&mut self, service: Service) -> ExitStatus {
        let mut running = self.running.remove(&service).expect("service not running");
        let pid = running.child.id().expect("pid");
        saga_suite::process::send_signal(pid, saga_suite::process::Signal::Term).expect("SIGTERM");
        tokio::time::timeout(Duration::from_secs(15), running.child.wait())
            .await
            .expect("service did not exit within 15 s of SIGTERM")
            .expect("wait")
    }

    /// The PID of `service`'s process (it must be running).
    pub fn pid(&self, service: Service) -> u32 {
        let running = self.running.get(&service).unwrap_or_else(|| panic!("{} is not running", service.log_name()));
        running.child.id().expect("a running service has a pid")
    }

    /// Freezes `service` with SIGSTOP, as a long GC pause, a VM migration or a laptop lid would:
    /// it keeps its sockets and its leases but does nothing until [`Suite::thaw`].
    pub fn freeze(&self, service: Service) {
        send_signal(self.pid(service), Signal::Stop).expect("SIGSTOP");
    }

    /// Resumes a service frozen by [`Suite::freeze`] (SIGCONT).
    pub fn thaw(&self, service: Service) {
        send_signal(self.pid(service), Signal::Cont).expect("SIGCONT");
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
        tail(&self.log_dir.join(format!("{}.log", service.log_name())))
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
