#!/usr/bin/env python3
"""No drift between the code, docker-compose.yml, Prometheus and Grafana files.

Usage: check_consistency.py CHECK...   (or `all`; `--list` names the checks)

  compose-env         every variable docker-compose.yml sets on a suite service is one the binaries
                      read (extracted from the Rust sources; orchestrator-only names only on it)
  compose-ports       each service publishes its default port (shared/src/suite.rs) as PORT=P and P:P, its health
                      check and the orchestrator's participant URLs use it; Prometheus 9090,
                      Grafana 3000; nothing else is published
  prometheus-targets  prometheus.yml scrapes <service>:<port> and prometheus.local.yml
                      127.0.0.1:<port>, one job per service, same settings and rule files;
                      the `job=~` lists of alerts and dashboard name exactly the five services
  grafana-wiring      datasource uid, dashboard provider path, compose mounts and the home
                      dashboard agree; panel ids unique, grid positions inside 24 columns
  metric-names        every metric in the alert rules and the dashboard is defined in the code,
                      and every metric the code defines is on the dashboard
  alert-runbooks      every alert carries a runbook_url to its own section of docs/operations.md
  docker-image        the Dockerfile copies a binary for every compose `command` (and sagactl),
                      each one a workspace binary; .dockerignore keeps what the build needs; the
                      runtime stage runs as a non-root user and has the health checks' curl

Needs Python 3.9+ and PyYAML. Exit status: the number of failed checks.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXED_PORTS = {"prometheus": 9090, "grafana": 3000, "jaeger": 16686}
PROMQL_BUILTIN_METRICS = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}


class CheckFailed(Exception):
    """A check found problems; the message lists them."""


def load_yaml(rel: str) -> Any:
    with open(ROOT / rel, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_dashboards() -> dict[str, Any]:
    return {
        p.relative_to(ROOT).as_posix(): json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
    }


def fail_if(problems: list[str]) -> None:
    if problems:
        raise CheckFailed("\n  - " + "\n  - ".join(problems))


# ------------------------------------------------------------------------------------------------
# facts from the code


def suite_table() -> dict[str, tuple[int, str | None]]:
    """The suite's one service table (shared/src/suite.rs): name -> (default port, the
    participant's step or None for the orchestrator)."""
    path = ROOT / "shared" / "src" / "suite.rs"
    row = r'Service::(orchestrator|participant)\("([a-z]+)", (\d+)(?:, "([a-z_]+)")?'
    rows = re.findall(row, path.read_text(encoding="utf-8"))
    table = {name: (int(port), step or None) for kind, name, port, step in rows}
    if len(table) != 5 or sum(1 for _, step in table.values() if step is None) != 1:
        raise CheckFailed(f"expected four participants and one orchestrator in {path.relative_to(ROOT)}, found {table}")
    return table


def code_ports() -> dict[str, int]:
    """Each service's default port."""
    return {name: port for name, (port, _) in suite_table().items()}


SERVICES = list(suite_table())
PARTICIPANTS = [name for name, (_, step) in suite_table().items() if step]
STEPS = [step for _, step in suite_table().values() if step]
PARTICIPANT_URL_VARS = {f"{name.upper()}_URL": name for name in PARTICIPANTS}


def code_metrics() -> set[str]:
    """Metric names declared as `pub const X: &str = "name";` where the code keeps them."""
    files = [ROOT / "shared" / "src" / "metrics.rs", ROOT / "engine" / "src" / "metric_definitions.rs"]
    files += sorted((ROOT / "services").glob("*/src/metric_definitions.rs"))
    names = set()
    for path in files:
        names |= set(re.findall(r'pub const [A-Z0-9_]+: &str = "([a-z_:][a-z0-9_:]*)";', path.read_text(encoding="utf-8")))
    if not names:
        raise CheckFailed("found no metric name constants in the code")
    return names


def read(relative: str) -> str:
    """A file of the repository, as text."""
    return (ROOT / relative).read_text(encoding="utf-8")


def known_env() -> tuple[set[str], set[str]]:
    """(read by every service, read by the orchestrator only), extracted from the Rust sources,
    so a variable set in compose but read by no binary fails, whatever a hand-kept list says.

    Every service reads its settings through `Env::{get, parse_or, millis_or, flag}("NAME", …)`
    in shared/src/config.rs and shared/src/faults.rs (and the OTLP endpoint in shared/src/telemetry.rs); the orchestrator adds its own in
    engine/src/config.rs (its console's links through `link(env, "NAME")`), including per-step overrides built as `STEP_{upper}_{suffix}` for
    each participant's step, and each participant's `<NAME>_URL` (`Service::url_variable`).
    RUST_LOG is read by shared/src/telemetry.rs."""
    literal = re.compile(r'(?:get|parse_or|millis_or|flag|url)\(\s*"([A-Z][A-Z0-9_]*)"')
    shared = set(literal.findall(read("shared/src/config.rs"))) | set(literal.findall(read("shared/src/faults.rs")))
    shared.add("RUST_LOG")
    # The trace export is switched on by the OTLP endpoint variables telemetry.rs names.
    shared |= set(re.findall(r'"(OTEL_[A-Z_]+)"', read("shared/src/telemetry.rs")))
    orchestrator_src = read("engine/src/config.rs")
    orchestrator = set(literal.findall(orchestrator_src))
    orchestrator |= set(re.findall(r'link\(\s*env,\s*"([A-Z][A-Z0-9_]*)"', orchestrator_src))
    # Per-step settings: millis("SUFFIX", …) expands to STEP_SUFFIX and STEP_<STEP>_SUFFIX;
    # format!("STEP_{upper}_NAME") to STEP_<STEP>_NAME.
    suffixes = set(re.findall(r'millis\(\s*"([A-Z_]+)"', orchestrator_src))
    per_step = set(re.findall(r'format!\("STEP_\{upper\}_([A-Z_]+)"\)', orchestrator_src)) | suffixes
    reads_urls = "url_variable()" in orchestrator_src and '"{}_URL"' in read("shared/src/suite.rs")
    if not suffixes or not per_step or not reads_urls:
        raise CheckFailed("cannot find the orchestrator's step settings or participant URLs in its sources (did the code move?)")
    orchestrator |= {f"STEP_{s}" for s in suffixes}
    orchestrator |= {f"STEP_{step.upper()}_{s}" for step in STEPS for s in per_step}
    orchestrator |= set(PARTICIPANT_URL_VARS)
    if len(shared) < 10 or len(orchestrator) < 10:
        raise CheckFailed(f"suspiciously few env vars found in the sources: {sorted(shared)} {sorted(orchestrator)}")
    return shared, orchestrator - shared


# ------------------------------------------------------------------------------------------------
# docker-compose.yml


def compose() -> dict[str, Any]:
    doc = load_yaml("docker-compose.yml")
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        raise CheckFailed("docker-compose.yml has no services")
    return doc["services"]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.split("=", 1) for item in env]
        return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def published_ports(svc: dict[str, Any]) -> list[tuple[int, int]]:
    """(published, target) pairs of a service's `ports`."""
    out = []
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            out.append((int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) < 2:
            raise CheckFailed(f"port {entry!r} publishes a random host port; give HOST:CONTAINER")
        out.append((int(parts[-2]), int(parts[-1])))
    return out


def suite_services(services: dict[str, Any]) -> list[str]:
    """The compose services that run the suite's image."""
    image = services.get("orchestrator", {}).get("image")
    return [name for name, svc in services.items() if "build" in svc or (image and svc.get("image") == image)]


def check_compose_env() -> str:
    services = compose()
    everyone, orchestrator_only = known_env()
    problems = []
    ours = suite_services(services)
    for name in SERVICES:
        if name not in services:
            problems.append(f"service {name} is missing from docker-compose.yml")
    for name in ours:
        if name not in SERVICES:
            problems.append(f"service {name} runs the suite image but is not one of {SERVICES}")
            continue
        svc = services[name]
        if "env_file" in svc:
            problems.append(f"{name}: env_file cannot be checked; set variables under environment")
        allowed = everyone | (orchestrator_only if name == "orchestrator" else set())
        for var in sorted(environment(svc)):
            if var not in allowed:
                where = " (orchestrator only)" if var in orchestrator_only else ""
                problems.append(f"{name}: {var} is not a variable the {name} binary reads{where}")
    fail_if(problems)
    count = sum(len(environment(services[n])) for n in ours if n in SERVICES)
    return f"{count} variables on {len(ours)} services, all read by the binaries"


def check_compose_ports() -> str:
    services = compose()
    ports = code_ports()
    problems = []
    for name, port in ports.items():
        svc = services.get(name)
        if svc is None:
            problems.append(f"service {name} is missing")
            continue
        env = environment(svc)
        if env.get("PORT") != str(port):
            problems.append(f"{name}: PORT={env.get('PORT')!r}, the code's default is {port}")
        if env.get("HOST") != "0.0.0.0":
            problems.append(f"{name}: HOST must be 0.0.0.0 to be reachable from other containers")
        if published_ports(svc) != [(port, port)]:
            problems.append(f"{name}: publishes {published_ports(svc)}, expected [({port}, {port})]")
        if svc.get("command") not in ([name], name):
            problems.append(f"{name}: command {svc.get('command')!r}, expected [{name!r}]")
        test = " ".join(map(str, (svc.get("healthcheck") or {}).get("test") or []))
        if f"127.0.0.1:{port}/readyz" not in test:
            problems.append(f"{name}: the health check does not probe 127.0.0.1:{port}/readyz")
        if not str(env.get("DATABASE_URL", "")).startswith(f"postgres://{name}:"):
            problems.append(f"{name}: DATABASE_URL must log in as role {name}")
        # Raw YAML: the value is `${OTEL_EXPORTER_OTLP_ENDPOINT:-default}` or the URL itself.
        endpoint = re.sub(r"^\$\{OTEL_EXPORTER_OTLP_ENDPOINT:-(.*)\}$", r"\1", env.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""))
        if endpoint != "http://jaeger:4318":
            problems.append(f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT must default to Jaeger's OTLP/HTTP port (http://jaeger:4318)")
    orchestrator_env = environment(services.get("orchestrator", {}))
    for var, participant in PARTICIPANT_URL_VARS.items():
        want = f"http://{participant}:{ports[participant]}"
        if orchestrator_env.get(var) != want:
            problems.append(f"orchestrator: {var}={orchestrator_env.get(var)!r}, expected {want}")
    for name, port in FIXED_PORTS.items():
        if name not in services:
            problems.append(f"service {name} is missing")
        elif published_ports(services[name]) != [(port, port)]:
            problems.append(f"{name}: publishes {published_ports(services[name])}, expected [({port}, {port})]")
    for name, svc in services.items():
        if name not in ports and name not in FIXED_PORTS and svc.get("ports"):
            problems.append(f"{name}: publishes ports; only the services, Prometheus, Grafana and Jaeger do")
    fail_if(problems)
    return ", ".join(f"{n} {p}" for n, p in {**ports, **FIXED_PORTS}.items())


# ------------------------------------------------------------------------------------------------
# Prometheus


def scrape_targets(config: dict[str, Any]) -> dict[str, list[str]]:
    jobs: dict[str, list[str]] = {}
    for job in config.get("scrape_configs") or []:
        targets = [t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
        jobs[job["job_name"]] = targets
    return jobs


def job_lists(text: str) -> list[set[str]]:
    return [set(m.split("|")) for m in re.findall(r'job=~"([^"]*)"', text)]


def check_prometheus_targets() -> str:
    ports = code_ports()
    problems = []
    compose_cfg = load_yaml("prometheus/prometheus.yml")
    local_cfg = load_yaml("prometheus/prometheus.local.yml")
    want_compose = {s: [f"{s}:{p}"] for s, p in ports.items()}
    want_local = {s: [f"127.0.0.1:{p}"] for s, p in ports.items()}
    if scrape_targets(compose_cfg) != want_compose:
        problems.append(f"prometheus.yml scrapes {scrape_targets(compose_cfg)}, expected {want_compose}")
    if scrape_targets(local_cfg) != want_local:
        problems.append(f"prometheus.local.yml scrapes {scrape_targets(local_cfg)}, expected {want_local}")
    for key in ("global", "rule_files"):
        if compose_cfg.get(key) != local_cfg.get(key):
            problems.append(f"prometheus.yml and prometheus.local.yml differ in {key}")
    strip = lambda cfg: [{k: v for k, v in job.items() if k != "static_configs"} for job in cfg["scrape_configs"]]
    if strip(compose_cfg) != strip(local_cfg):
        problems.append("prometheus.yml and prometheus.local.yml differ in job settings")
    if compose_cfg.get("rule_files") != ["alerts.yml"]:
        problems.append("prometheus.yml must load rule_files: [alerts.yml]")
    # compose mounts both files side by side
    prom = compose().get("prometheus", {})
    volumes = [str(v) for v in prom.get("volumes") or []]
    for host, container in (("./prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml"),
                            ("./prometheus/alerts.yml", "/etc/prometheus/alerts.yml")):
        if not any(v.startswith(f"{host}:{container}") for v in volumes):
            problems.append(f"docker-compose.yml: prometheus must mount {host} at {container}")
    # the job lists of the alert rules and the dashboard name exactly the five services
    texts = {"prometheus/alerts.yml": (ROOT / "prometheus" / "alerts.yml").read_text(encoding="utf-8")}
    texts.update({f: json.dumps(d) for f, d in load_dashboards().items()})
    for file, text in texts.items():
        for jobs in job_lists(text):
            if jobs != set(SERVICES):
                problems.append(f"{file}: job=~ lists {sorted(jobs)}, expected {sorted(SERVICES)}")
    fail_if(problems)
    return "5 jobs, compose and local targets match the code's ports"


# ------------------------------------------------------------------------------------------------
# Grafana


def check_grafana_wiring() -> str:
    problems = []
    datasources = load_yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"]
    prom_ds = [d for d in datasources if d.get("type") == "prometheus"]
    if len(prom_ds) != 1:
        raise CheckFailed("grafana/provisioning/datasources/prometheus.yml must define one Prometheus datasource")
    uid = prom_ds[0].get("uid")
    if prom_ds[0].get("url") != f"http://prometheus:{FIXED_PORTS['prometheus']}":
        problems.append(f"datasource url {prom_ds[0].get('url')!r} is not the compose Prometheus")
    providers = load_yaml("grafana/provisioning/dashboards/dashboards.yml")["providers"]
    paths = {p["options"]["path"] for p in providers}
    services = compose()
    grafana = services.get("grafana", {})
    volumes = [str(v) for v in grafana.get("volumes") or []]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in volumes}
    for path in paths:
        if mounts.get(path) != "./grafana/dashboards":
            problems.append(f"provider path {path} is not where docker-compose.yml mounts ./grafana/dashboards")
    if mounts.get("/etc/grafana/provisioning") != "./grafana/provisioning":
        problems.append("docker-compose.yml must mount ./grafana/provisioning at /etc/grafana/provisioning")
    for container_path, host_path in mounts.items():
        if not (ROOT / host_path).exists():
            problems.append(f"docker-compose.yml mounts {host_path}, which does not exist")
    for name, svc in services.items():
        for v in svc.get("volumes") or []:
            host = str(v).split(":")[0]
            if host.startswith("./") and not (ROOT / host).exists():
                problems.append(f"{name} mounts {host}, which does not exist")
    env = environment(grafana)
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "")
    home_dir, _, home_file = home.rpartition("/")
    if home_dir not in paths or not (ROOT / "grafana" / "dashboards" / home_file).is_file():
        problems.append(f"GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH={home!r} is not a provisioned dashboard")
    if env.get("GF_AUTH_ANONYMOUS_ENABLED") != "true" or env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") != "Viewer":
        problems.append("Grafana must allow anonymous viewers")
    panels_total = 0
    for file, dash in load_dashboards().items():
        ids, uids = [], set()
        for panel in dash.get("panels", []):
            ids.append(panel.get("id"))
            grid = panel.get("gridPos", {})
            if grid.get("x", 0) + grid.get("w", 0) > 24:
                problems.append(f"{file}: panel {panel.get('title')!r} is wider than the 24-column grid")
            refs = [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]
            uids |= {r.get("uid") for r in refs if isinstance(r, dict)}
            if panel.get("type") != "row":
                panels_total += 1
                if not panel.get("targets") and panel.get("type") != "text":
                    problems.append(f"{file}: panel {panel.get('title')!r} has no query")
        if len(ids) != len(set(ids)):
            problems.append(f"{file}: panel ids are not unique")
        if uids - {uid}:
            problems.append(f"{file}: datasource uids {sorted(uids - {uid})} are not the provisioned {uid!r}")
    fail_if(problems)
    return f"datasource uid {uid!r}, {panels_total} panels, home dashboard {home}"


# ------------------------------------------------------------------------------------------------
# metric names


def promql_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression (no parser: strings, matchers and label lists removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\$\w+", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", text):
        name, call = m.group(1), m.group(2)
        if call or name in PROMQL_KEYWORDS or name in ("inf", "nan", "Inf", "NaN"):
            continue
        names.add(name)
    return names


def alert_exprs() -> dict[str, str]:
    out = {}
    for group in load_yaml("prometheus/alerts.yml")["groups"]:
        for rule in group["rules"]:
            out[f"alert {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    return out


def dashboard_exprs() -> dict[str, str]:
    out = {}
    for file, dash in load_dashboards().items():
        for panel in dash.get("panels", []):
            for target in panel.get("targets", []):
                if "expr" in target:
                    out[f"{file} panel {panel.get('title')!r} {target.get('refId')}"] = target["expr"]
    return out


def check_metric_names() -> str:
    defined = code_metrics()
    problems = []

    def known(name: str) -> bool:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        return name in defined or base in defined or name in PROMQL_BUILTIN_METRICS

    on_dashboard = set()
    for where, expr in {**alert_exprs(), **dashboard_exprs()}.items():
        used = promql_metrics(expr)
        if where.startswith("grafana/"):
            on_dashboard |= {re.sub(r"_(bucket|sum|count)$", "", n) for n in used}
        for name in sorted(used):
            if not known(name):
                problems.append(f"{where}: metric {name} is not defined in the code")
    for name in sorted(defined - on_dashboard):
        problems.append(f"metric {name} (defined in the code) is on no dashboard panel")
    fail_if(problems)
    return f"{len(defined)} metrics defined in the code, all on the dashboard; alerts and panels use no other"


def github_anchor(heading: str) -> str:
    """The anchor a Markdown renderer (GitHub's) gives a heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def check_alert_runbooks() -> str:
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", read("docs/operations.md"), re.M)}
    problems = []
    alerts = [rule for group in load_yaml("prometheus/alerts.yml")["groups"] for rule in group["rules"] if "alert" in rule]
    for rule in alerts:
        url = rule.get("annotations", {}).get("runbook_url", "")
        page, _, anchor = url.partition("#")
        if page != "docs/operations.md" or anchor != github_anchor(rule["alert"]):
            problems.append(f"{rule['alert']}: runbook_url {url!r} is not docs/operations.md#{github_anchor(rule['alert'])}")
        elif anchor not in anchors:
            problems.append(f"{rule['alert']}: docs/operations.md has no section #{anchor}")
    fail_if(problems)
    return f"{len(alerts)} alerts, each with its runbook section in docs/operations.md"


# ------------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore


def workspace_members() -> list[str]:
    cargo = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    m = re.search(r"members\s*=\s*\[(.*?)\]", cargo, re.S)
    if not m:
        raise CheckFailed("Cargo.toml has no workspace members")
    return re.findall(r'"([^"]+)"', m.group(1))


def workspace_binaries() -> set[str]:
    """Binary targets of the workspace: packages with src/main.rs, and [[bin]] names."""
    bins = set()
    for member in workspace_members():
        manifest = (ROOT / member / "Cargo.toml").read_text(encoding="utf-8")
        package = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([^"]+)"', manifest, re.M | re.S)
        if package and (ROOT / member / "src" / "main.rs").is_file():
            bins.add(package.group(1))
        bins |= set(re.findall(r'^\[\[bin\]\][^\[]*?^name\s*=\s*"([^"]+)"', manifest, re.M | re.S))
    return bins


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore `patterns` exclude `path` (or a folder above it); `!` re-includes."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        variants = {pattern, pattern[3:]} if pattern.startswith("**/") else {pattern}
        if any(fnmatch.fnmatchcase(p, v) for p in prefixes for v in variants):
            excluded = not negate
    return excluded


def check_docker_image() -> str:
    problems = []
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    m = re.search(r"for bin in ([a-z0-9_ -]+); do", dockerfile)
    if not m:
        raise CheckFailed("Dockerfile: no `for bin in …; do` list of the binaries it copies")
    copied = set(m.group(1).split())
    binaries = workspace_binaries()
    for name in sorted(copied - binaries):
        problems.append(f"Dockerfile copies {name}, which is no binary of the workspace")
    services = compose()
    commands = set()
    for name in suite_services(services):
        command = services[name].get("command")
        commands.add(command[0] if isinstance(command, list) else str(command).split()[0])
    for name in sorted((commands | set(SERVICES) | {"sagactl"}) - copied):
        problems.append(f"Dockerfile does not copy the {name} binary")
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)
    runtime = stages[-1]
    users = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("Dockerfile: the runtime stage must end with a non-root USER")
    uses_curl = any("curl" in " ".join(map(str, (s.get("healthcheck") or {}).get("test") or []))
                    for n, s in services.items() if n in SERVICES)
    if uses_curl and not re.search(r"apt-get install[^\n]*\bcurl\b", runtime):
        problems.append("Dockerfile: compose health checks use curl, the runtime stage does not install it")
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.strip().startswith("#")]
    needed = ["Cargo.toml", "Cargo.lock", "migrations/orchestrator"] + [f"{m}/Cargo.toml" for m in workspace_members()]
    needed += [f"{m}/src" for m in workspace_members()]
    for path in needed:
        if dockerignored(path, patterns):
            problems.append(f".dockerignore excludes {path}, which the build needs")
    if not dockerignored("target/release/orchestrator", patterns):
        problems.append(".dockerignore must exclude target/")
    fail_if(problems)
    return f"copies {', '.join(sorted(copied))}; runs as {users[-1]}"


def check_postgres_settings() -> str:
    """Compose's Postgres gets the checkpoint settings of every cluster sagactl starts."""
    source = read("suite/src/postgres/mod.rs")
    m = re.search(r"const CHECKPOINT_SETTINGS: \[&str; \d+\] = \[([^\]]*)\];", source)
    if not m:
        raise CheckFailed("suite/src/postgres/mod.rs: no CHECKPOINT_SETTINGS (did the code move?)")
    wanted = re.findall(r'"([^"]+)"', m.group(1))
    command = compose().get("postgres", {}).get("command") or []
    given = [command[i + 1] for i, arg in enumerate(command[:-1]) if arg == "-c"]
    missing = [setting for setting in wanted if setting not in given]
    if missing:
        raise CheckFailed(f"docker-compose.yml's postgres lacks -c {', -c '.join(missing)} (suite/src/postgres/mod.rs)")
    return f"compose's postgres has {', '.join(wanted)}"


CHECKS: dict[str, Callable[[], str]] = {
    "compose-env": check_compose_env,
    "compose-ports": check_compose_ports,
    "prometheus-targets": check_prometheus_targets,
    "grafana-wiring": check_grafana_wiring,
    "metric-names": check_metric_names,
    "alert-runbooks": check_alert_runbooks,
    "docker-image": check_docker_image,
    "postgres-settings": check_postgres_settings,
}


def main(argv: list[str]) -> int:
    if argv == ["--list"]:
        print("\n".join(CHECKS))
        return 0
    names = list(CHECKS) if argv in ([], ["all"]) else argv
    failed = 0
    for name in names:
        check = CHECKS.get(name)
        if check is None:
            print(f"unknown check {name!r}; known: {', '.join(CHECKS)}", file=sys.stderr)
            return 2
        try:
            print(f"ok   {name}: {check()}")
        except (CheckFailed, OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as err:
            print(f"FAIL {name}: {type(err).__name__ + ': ' if not isinstance(err, CheckFailed) else ''}{err}")
            failed += 1
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
