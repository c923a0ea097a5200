//! A local Grafana for `sagactl up`, when its server binary is on PATH: provisioned like the
//! compose one (`grafana/provisioning`), but with the local Prometheus as its datasource and the
//! repository's `grafana/dashboards` loaded from where they are. When it is missing, or the
//! local Prometheus is not running, `up` says so and runs without.
//!
//! No Grafana server can be installed where this was written (it is in none of the registries
//! reachable there), so the launch was tested against a stand-in that answers `/api/health`,
//! not against a real Grafana: the arguments and `GF_*` variables follow Grafana's documented
//! command line and configuration.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::{
    process::Signal,
    services::LauncherEnv,
    state::ToolState,
    supervised::{Log, OnDrop, Readiness, Stopping, Supervised},
};

/// How to get Grafana, printed when it is not found.
pub const INSTALL_HINT: &str = "Grafana not found on PATH (neither `grafana` nor `grafana-server`): \
     install it from Grafana's own packages (Debian has none) or set GRAFANA to its binary; \
     `docker compose up` runs the suite with Grafana";

/// The datasource uid every panel of the dashboard names (as in
/// `grafana/provisioning/datasources/prometheus.yml`): the local datasource must carry it too.
pub const DATASOURCE_UID: &str = "prometheus";

/// The dashboard `up` links to, in the repository's `grafana/dashboards/`.
pub const DASHBOARD_FILE: &str = "sagas.json";

/// The packaged home (Debian and RPM packages), tried when the binary's own tree has none.
const PACKAGED_HOME: &str = "/usr/share/grafana";

/// Grafana migrates its database and loads every plugin before it answers: much slower to start
/// than the services.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// SIGTERM, then SIGKILL after 10 s.
const STOPPING: Stopping = Stopping { signal: Signal::Term, grace: Duration::from_secs(10) };

/// How a Grafana binary takes the `server` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The single binary of Grafana 10 and later: `grafana server …`.
    Single,
    /// The older `grafana-server …` (still shipped by newer releases as a shim).
    Legacy,
}

/// A Grafana server binary and how to call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    pub path: PathBuf,
    pub flavor: Flavor,
}

impl Binary {
    /// A binary called `grafana-server` is the old one; anything else is taken as the single binary.
    fn at(path: PathBuf) -> Self {
        let legacy = path.file_name().is_some_and(|name| name == "grafana-server");
        Self { path, flavor: if legacy { Flavor::Legacy } else { Flavor::Single } }
    }

    /// The arguments that run the server with `home` and `config`.
    pub fn args(&self, home: &Path, config: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if self.flavor == Flavor::Single {
            args.push("server".into());
        }
        args.extend(["--homepath".into(), home.into(), "--config".into(), config.into()]);
        args
    }
}

/// Whether the user switched Grafana off (`GRAFANA=` set but empty).
pub fn disabled(launcher: &LauncherEnv) -> bool {
    launcher.is_set_to_nothing("GRAFANA")
}

/// The Grafana binary: `$GRAFANA`, else `grafana` on PATH, else `grafana-server` on PATH (the
/// new binary first: the old name is only a shim around it in recent releases).
pub fn find(launcher: &LauncherEnv) -> Option<Binary> {
    if let Some(path) = launcher.get("GRAFANA") {
        return Some(Binary::at(PathBuf::from(path)));
    }
    let path = launcher.get("PATH")?;
    ["grafana", "grafana-server"]
        .into_iter()
        .find_map(|name| std::env::split_paths(path).map(|dir| dir.join(name)).find(|p| p.is_file()))
        .map(Binary::at)
}

/// Grafana's home path (the directory whose `conf/defaults.ini` it reads first): `GRAFANA_HOME`,
/// else the binary's install tree (`<home>/bin/grafana`, symlinks followed), else
/// `/usr/share/grafana`. Grafana refuses to start without `conf/defaults.ini`, so a home
/// without one is an error here, with a message that says where it looked.
pub fn home(launcher: &LauncherEnv, binary: &Path) -> anyhow::Result<PathBuf> {
    home_with_fallback(launcher, binary, Path::new(PACKAGED_HOME))
}

fn home_with_fallback(launcher: &LauncherEnv, binary: &Path, fallback: &Path) -> anyhow::Result<PathBuf> {
    let has_defaults = |dir: &Path| dir.join("conf/defaults.ini").is_file();
    if let Some(home) = launcher.get("GRAFANA_HOME") {
        let home = PathBuf::from(home);
        if !has_defaults(&home) {
            bail!("GRAFANA_HOME={} has no conf/defaults.ini", home.display());
        }
        return Ok(home);
    }
    // The path as found and, when it is a symlink (e.g. /usr/local/bin/grafana), its target.
    let mut binaries = vec![binary.to_path_buf()];
    binaries.extend(binary.canonicalize().ok());
    let tree = binaries.iter().filter_map(|b| b.parent()?.parent().map(Path::to_path_buf)).find(|d| has_defaults(d));
    if let Some(home) = tree.or_else(|| has_defaults(fallback).then(|| fallback.to_path_buf())) {
        return Ok(home);
    }
    bail!(
        "no Grafana home with conf/defaults.ini found (looked next to {} and in {}); set \
         GRAFANA_HOME to the directory of Grafana's conf/ and public/",
        binary.display(),
        fallback.display()
    )
}

/// The repository's dashboards, as `up` provisions them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboards {
    /// Absolute: Grafana resolves a relative provider path against its own working directory.
    pub dir: PathBuf,
    /// The uid of [`DASHBOARD_FILE`]'s dashboard, for its URL.
    pub uid: String,
    pub title: String,
}

/// The dashboards under `repo_root` (`grafana/dashboards`), read from the file itself so the
/// printed URL follows a changed uid.
pub fn dashboards(repo_root: &Path) -> anyhow::Result<Dashboards> {
    let dir = repo_root.join("grafana/dashboards");
    let file = dir.join(DASHBOARD_FILE);
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!("cannot read {} (run `sagactl up` from the repository root to get the dashboard)", file.display())
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", file.display()))?;
    let field = |key: &str| json.get(key).and_then(serde_json::Value::as_str).map(str::to_owned);
    let uid = field("uid").with_context(|| format!("{} has no uid", file.display()))?;
    let title = field("title").unwrap_or_else(|| uid.clone());
    let dir = dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))?;
    Ok(Dashboards { dir, uid, title })
}

/// A value Grafana reads literally: it expands `$VAR` in provisioning files, so `$` is doubled
/// (paths may hold one).
fn literal(text: &str) -> String {
    text.replace('$', "$$")
}

/// The datasource file: `grafana/provisioning/datasources/prometheus.yml` with the local
/// Prometheus's URL, its scrape interval as `timeInterval` (so `$__rate_interval` spans enough
/// samples).
pub fn datasource_yaml(prometheus_url: &str) -> anyhow::Result<String> {
    let document = serde_json::json!({
        "apiVersion": 1,
        "datasources": [{
            "name": "Prometheus",
            "type": "prometheus",
            "uid": DATASOURCE_UID,
            "access": "proxy",
            "url": literal(prometheus_url),
            "isDefault": true,
            "editable": false,
            "jsonData": { "timeInterval": super::prometheus::SCRAPE_INTERVAL, "httpMethod": "POST" },
        }],
    });
    super::yaml_document(&document)
}

/// The dashboards provider: `grafana/provisioning/dashboards/dashboards.yml` with the
/// repository's directory in place of compose's mount point.
pub fn dashboards_yaml(dir: &Path) -> anyhow::Result<String> {
    let document = serde_json::json!({
        "apiVersion": 1,
        "providers": [{
            "name": "saga-suite",
            "orgId": 1,
            "folder": "",
            "type": "file",
            "disableDeletion": true,
            "allowUiUpdates": false,
            "updateIntervalSeconds": 30,
            "options": { "path": literal(&dir.display().to_string()), "foldersFromFilesStructure": false },
        }],
    });
    super::yaml_document(&document)
}

/// Writes a fresh provisioning tree under `dir` (stale files of an earlier run would be loaded
/// too) and returns it.
pub fn write_provisioning(dir: &Path, prometheus_url: &str, dashboards: &Dashboards) -> anyhow::Result<PathBuf> {
    let root = dir.join("provisioning");
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("cannot remove {}", root.display()))?;
    }
    // Grafana reads each of these at start; empty ones just provision nothing.
    for sub in ["datasources", "dashboards", "plugins", "alerting"] {
        let path = root.join(sub);
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
    }
    let files = [
        (root.join("datasources/prometheus.yml"), datasource_yaml(prometheus_url)?),
        (root.join("dashboards/dashboards.yml"), dashboards_yaml(&dashboards.dir)?),
    ];
    for (path, text) in files {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(root)
}

/// The `GF_*` variables that place everything Grafana writes under `dir`, bind it to loopback
/// on `port`, open the dashboards to anonymous viewers, and keep it from calling home.
pub fn server_env(dir: &Path, provisioning: &Path, port: u16, dashboards: &Dashboards) -> Vec<(String, OsString)> {
    let path = |sub: &str| dir.join(sub).into_os_string();
    let text = |value: &str| OsString::from(value);
    vec![
        ("GF_PATHS_DATA".into(), path("data")),
        ("GF_PATHS_LOGS".into(), path("logs")),
        ("GF_PATHS_PLUGINS".into(), path("plugins")),
        ("GF_PATHS_PROVISIONING".into(), provisioning.as_os_str().to_owned()),
        // Everything to stdout, so one log (the state dir's grafana.log) has it all.
        ("GF_LOG_MODE".into(), text("console")),
        ("GF_SERVER_HTTP_ADDR".into(), text("127.0.0.1")),
        ("GF_SERVER_HTTP_PORT".into(), text(&port.to_string())),
        ("GF_AUTH_ANONYMOUS_ENABLED".into(), text("true")),
        ("GF_AUTH_ANONYMOUS_ORG_ROLE".into(), text("Viewer")),
        // The home page is the dashboard, as with compose.
        ("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH".into(), dashboards.dir.join(DASHBOARD_FILE).into_os_string()),
        ("GF_ANALYTICS_REPORTING_ENABLED".into(), text("false")),
        ("GF_ANALYTICS_CHECK_FOR_UPDATES".into(), text("false")),
        ("GF_NEWS_NEWS_FEED_ENABLED".into(), text("false")),
        // Recent releases download "preinstalled" plugins at start; the dashboard needs none.
        ("GF_PLUGINS_PREINSTALL_DISABLED".into(), text("true")),
    ]
}

/// A running local Grafana; stopped by [`LocalGrafana::stop`] (or killed on drop).
#[derive(Debug)]
pub struct LocalGrafana {
    process: Supervised,
    /// The dashboard's page.
    pub dashboard_url: String,
    /// `/api/health`.
    health_url: String,
}

/// What [`LocalGrafana::start`] needs besides its ports and files.
#[derive(Debug)]
pub struct Setup<'a> {
    pub binary: &'a Binary,
    pub home: &'a Path,
    pub dashboards: &'a Dashboards,
    /// The datasource's URL.
    pub prometheus_url: &'a str,
}

impl LocalGrafana {
    /// Starts Grafana on `port` with everything it writes under `dir`, and waits until
    /// `/api/health` answers 200.
    pub async fn start(setup: &Setup<'_>, dir: &Path, port: u16, log_path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let provisioning = write_provisioning(dir, setup.prometheus_url, setup.dashboards)?;
        // Our own (empty) configuration file: every setting comes from GF_* variables, and the
        // packaged /etc/grafana/grafana.ini would point Grafana at system directories.
        let config = dir.join("grafana.ini");
        std::fs::write(&config, "; Written by sagactl up: the settings are GF_* variables.\n")
            .with_context(|| format!("cannot write {}", config.display()))?;
        let mut command = Command::new(&setup.binary.path);
        command
            .args(setup.binary.args(setup.home, &config))
            .envs(server_env(dir, &provisioning, port, setup.dashboards))
            // Grafana resolves some relative paths against its working directory.
            .current_dir(setup.home);
        let mut process = Supervised::spawn("Grafana", command, log_path, Log::Append, STOPPING, OnDrop::Kill)?;
        let url = format!("http://127.0.0.1:{port}");
        let health_url = format!("{url}/api/health");
        let readiness = Readiness { timeout: HEALTH_TIMEOUT, every: Duration::from_millis(250) };
        process.ready_on_http(&health_url, readiness).await?;
        Ok(Self { process, dashboard_url: format!("{url}/d/{}", setup.dashboards.uid), health_url })
    }

    /// What `sagactl status` shows of it.
    pub fn tool_state(&self) -> ToolState {
        ToolState { pid: self.process.pid(), url: self.dashboard_url.clone(), health_url: self.health_url.clone() }
    }

    /// SIGTERM to its group, then SIGKILL after the grace.
    pub async fn stop(self) {
        self.process.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> LauncherEnv {
        LauncherEnv::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    fn temp_dir(tag: &str) -> anyhow::Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("sagactl-grafana-{tag}-{}", crate::text::random_hex(6)));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn executable(path: &Path, text: &str) -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    /// A Grafana install tree: `<root>/bin/<binary>` and `<root>/conf/defaults.ini`.
    fn install_tree(root: &Path, binary: &str) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(root.join("conf"))?;
        std::fs::write(root.join("conf/defaults.ini"), "")?;
        let path = root.join("bin").join(binary);
        executable(&path, "#!/bin/sh\n")?;
        Ok(path)
    }

    fn repo_root() -> anyhow::Result<PathBuf> {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).context("sagactl has no parent dir")
    }

    #[test]
    fn the_new_binary_is_preferred_and_each_flavor_gets_its_own_command_line() -> anyhow::Result<()> {
        let dir = temp_dir("find")?;
        let (old_dir, new_dir, empty) = (dir.join("old"), dir.join("new"), dir.join("empty"));
        executable(&old_dir.join("grafana-server"), "#!/bin/sh\n")?;
        std::fs::create_dir_all(&empty)?;
        let path_of = |dirs: &[&Path]| std::env::join_paths(dirs).map(|p| p.to_string_lossy().into_owned());

        let only_old = path_of(&[&empty, &old_dir])?;
        let found = find(&env(&[("PATH", &only_old)])).context("grafana-server not found")?;
        assert_eq!(found, Binary { path: old_dir.join("grafana-server"), flavor: Flavor::Legacy });
        let args = found.args(Path::new("/h"), Path::new("/c.ini"));
        assert_eq!(args, ["--homepath", "/h", "--config", "/c.ini"].map(OsString::from));

        // `grafana` wins even when `grafana-server` comes earlier on PATH.
        executable(&new_dir.join("grafana"), "#!/bin/sh\n")?;
        let both = path_of(&[&old_dir, &new_dir])?;
        let found = find(&env(&[("PATH", &both)])).context("grafana not found")?;
        assert_eq!(found.flavor, Flavor::Single);
        assert_eq!(found.path, new_dir.join("grafana"));
        let args = found.args(Path::new("/h"), Path::new("/c.ini"));
        assert_eq!(args, ["server", "--homepath", "/h", "--config", "/c.ini"].map(OsString::from));

        assert_eq!(find(&env(&[("PATH", &path_of(&[&empty])?)])), None);
        assert_eq!(find(&env(&[])), None);
        let explicit = find(&env(&[("GRAFANA", "/opt/g/bin/grafana-server"), ("PATH", &both)]));
        assert_eq!(explicit.map(|b| b.flavor), Some(Flavor::Legacy));
        assert!(disabled(&env(&[("GRAFANA", "")])));
        assert!(!disabled(&env(&[("PATH", &both)])));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn the_home_is_grafana_home_else_the_binarys_tree_else_the_packaged_one() -> anyhow::Result<()> {
        let dir = temp_dir("home")?;
        let tree = dir.join("grafana-11.2.0");
        let binary = install_tree(&tree, "grafana")?;
        let packaged = dir.join("usr-share-grafana");
        let nowhere = dir.join("nowhere");

        // The binary's own tree, directly or through a symlink elsewhere on PATH.
        assert_eq!(home_with_fallback(&env(&[]), &binary, &nowhere)?, tree);
        let link = dir.join("usr-local-bin/grafana");
        std::fs::create_dir_all(dir.join("usr-local-bin"))?;
        std::os::unix::fs::symlink(&binary, &link)?;
        assert_eq!(home_with_fallback(&env(&[]), &link, &nowhere)?, tree.canonicalize()?);

        // A binary outside any tree: the packaged home if it has conf/defaults.ini, else an error
        // that says what to set.
        let loose = dir.join("usr-bin/grafana");
        executable(&loose, "#!/bin/sh\n")?;
        let err = home_with_fallback(&env(&[]), &loose, &nowhere).err().context("a home without defaults.ini")?;
        assert!(format!("{err:#}").contains("set GRAFANA_HOME"), "{err:#}");
        install_tree(&packaged, "grafana")?;
        assert_eq!(home_with_fallback(&env(&[]), &loose, &packaged)?, packaged);

        // GRAFANA_HOME wins, and must have conf/defaults.ini.
        let chosen = env(&[("GRAFANA_HOME", &tree.display().to_string())]);
        assert_eq!(home_with_fallback(&chosen, &loose, &packaged)?, tree);
        let wrong = env(&[("GRAFANA_HOME", &nowhere.display().to_string())]);
        let err = home_with_fallback(&wrong, &binary, &packaged).err().context("GRAFANA_HOME without defaults")?;
        assert!(format!("{err:#}").contains("has no conf/defaults.ini"), "{err:#}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn the_provisioning_points_at_the_local_prometheus_and_the_repositorys_dashboard() -> anyhow::Result<()> {
        let repo = repo_root()?;
        let dashboards = dashboards(&repo)?;
        assert!(dashboards.dir.is_absolute());
        assert!(dashboards.dir.join(DASHBOARD_FILE).is_file());
        assert_eq!(dashboards.uid, "saga-suite");

        let dir = temp_dir("provisioning")?;
        // A stale file from an earlier run must not be provisioned again.
        std::fs::create_dir_all(dir.join("provisioning/datasources"))?;
        std::fs::write(dir.join("provisioning/datasources/old.yml"), "stale")?;
        let root = write_provisioning(&dir, "http://127.0.0.1:19090", &dashboards)?;
        assert!(!root.join("datasources/old.yml").exists());

        let read = |file: &str| -> anyhow::Result<serde_json::Value> {
            Ok(serde_json::from_str(&std::fs::read_to_string(root.join(file))?)?)
        };
        let datasource = &read("datasources/prometheus.yml")?["datasources"][0];
        assert_eq!(datasource["uid"], "prometheus");
        assert_eq!(datasource["url"], "http://127.0.0.1:19090");
        assert_eq!(datasource["jsonData"]["timeInterval"], "5s");
        let provider = &read("dashboards/dashboards.yml")?["providers"][0];
        assert_eq!(provider["options"]["path"], dashboards.dir.display().to_string());

        // The uid the local datasource carries is the one every panel names, and the one the
        // compose provisioning uses.
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dashboards.dir.join(DASHBOARD_FILE))?)?;
        let mut named = Vec::new();
        collect_datasource_uids(&json, &mut named);
        assert!(!named.is_empty());
        assert!(named.iter().all(|uid| uid == DATASOURCE_UID), "{named:?}");
        let compose = std::fs::read_to_string(repo.join("grafana/provisioning/datasources/prometheus.yml"))?;
        assert!(compose.contains(&format!("\n    uid: {DATASOURCE_UID}\n")), "{compose}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// Every `datasource.uid` of type prometheus in the dashboard (Grafana's own `-- Grafana --`
    /// annotation source aside).
    fn collect_datasource_uids(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(source) = map.get("datasource")
                    && source.get("type").and_then(serde_json::Value::as_str) == Some("prometheus")
                {
                    out.extend(source.get("uid").and_then(serde_json::Value::as_str).map(str::to_owned));
                }
                map.values().for_each(|v| collect_datasource_uids(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_datasource_uids(v, out)),
            _ => {}
        }
    }

    #[test]
    fn odd_paths_stay_intact_and_grafana_does_not_expand_a_dollar_in_them() -> anyhow::Result<()> {
        let text = dashboards_yaml(Path::new("/a b/c:#d/$HOME/x\"y\\z"))?;
        let document: serde_json::Value = serde_json::from_str(&text)?;
        assert_eq!(document["providers"][0]["options"]["path"], "/a b/c:#d/$$HOME/x\"y\\z");
        Ok(())
    }

    /// A stand-in for Grafana (no real one can be installed here): records its arguments and
    /// `GF_*` variables, then answers 200 on `/api/health` on the port it was given. Shared with
    /// the end-to-end test of `sagactl status`.
    const FAKE_GRAFANA: &str = include_str!("../../../tests/fixtures/stand-in-grafana.sh");

    #[tokio::test]
    async fn start_runs_the_server_with_its_home_config_and_env_waits_for_health_and_stops() -> anyhow::Result<()> {
        let dir = temp_dir("start")?;
        let home = dir.join("home");
        let binary_path = install_tree(&home, "grafana")?;
        executable(&binary_path, FAKE_GRAFANA)?;
        let binary = Binary::at(binary_path.clone());
        let dashboards = dashboards(&repo_root()?)?;
        let reserved = crate::ports::reserve(1)?;
        let port = reserved.port();
        let setup = Setup { binary: &binary, home: &home, dashboards: &dashboards, prometheus_url: "http://p:1" };
        let state = dir.join("state");
        let log_path = dir.join("grafana.log");

        let grafana = LocalGrafana::start(&setup, &state, port, &log_path).await?;

        assert_eq!(grafana.dashboard_url, format!("http://127.0.0.1:{port}/d/saga-suite"));
        let args = std::fs::read_to_string(dir.join("home/bin/grafana.args"))?;
        let expected =
            format!("server\n--homepath\n{}\n--config\n{}\n", home.display(), state.join("grafana.ini").display());
        assert_eq!(args, expected);
        let gf = std::fs::read_to_string(dir.join("home/bin/grafana.env"))?;
        for line in [
            format!("GF_PATHS_DATA={}", state.join("data").display()),
            format!("GF_PATHS_PROVISIONING={}", state.join("provisioning").display()),
            format!("GF_SERVER_HTTP_PORT={port}"),
            "GF_SERVER_HTTP_ADDR=127.0.0.1".to_owned(),
            "GF_AUTH_ANONYMOUS_ENABLED=true".to_owned(),
            "GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer".to_owned(),
            "GF_ANALYTICS_REPORTING_ENABLED=false".to_owned(),
            "GF_NEWS_NEWS_FEED_ENABLED=false".to_owned(),
        ] {
            assert!(gf.lines().any(|l| l == line), "{line} missing from:\n{gf}");
        }
        assert!(state.join("provisioning/datasources/prometheus.yml").is_file());

        grafana.stop().await;
        assert!(crate::ports::port_is_free(port), "the stand-in still listens after stop");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn a_grafana_that_exits_at_start_fails_at_once_not_after_the_wait() -> anyhow::Result<()> {
        let dir = temp_dir("exits")?;
        let home = dir.join("home");
        let binary_path = install_tree(&home, "grafana-server")?;
        executable(&binary_path, "#!/bin/sh\necho 'cannot bind' >&2\nexit 1\n")?;
        let binary = Binary::at(binary_path);
        let dashboards = dashboards(&repo_root()?)?;
        let setup = Setup { binary: &binary, home: &home, dashboards: &dashboards, prometheus_url: "http://p:1" };
        let log_path = dir.join("grafana.log");
        let started = std::time::Instant::now();

        let reserved = crate::ports::reserve(1)?;
        let err = LocalGrafana::start(&setup, &dir.join("state"), reserved.port(), &log_path)
            .await
            .err()
            .context("a Grafana that exits started")?;

        assert!(format!("{err:#}").contains("exited"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(std::fs::read_to_string(&log_path)?.contains("cannot bind"));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
