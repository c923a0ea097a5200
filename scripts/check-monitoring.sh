#!/usr/bin/env bash
# Checks the monitoring and deployment files without running Docker, Prometheus or Grafana servers:
#   - Prometheus: both configs, the alert rules and their unit tests (promtool);
#   - Grafana: the dashboard typed against @grafana/schema (tsc), its queries parsed as PromQL;
#   - docker-compose.yml: validated by docker-compose and by the compose-spec JSON schema;
#   - no drift between code, compose, Prometheus and Grafana (monitoring-checks/check_consistency.py:
#     env vars the binaries read, ports, scrape targets, datasource and mounts, metric names, alert runbooks,
#     the binaries the Dockerfile copies).
# Installs what is missing (apt: prometheus, docker-compose, nodejs/npm; npm ci in monitoring-checks;
# pip: PyYAML, check-jsonschema), so it runs on a fresh Debian bookworm machine as root.
# Exit status 0 only if every check passed; the last line is "monitoring: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
started=$SECONDS

say() { printf '%s\n' "$*"; }
warn() { printf 'check-monitoring: %s\n' "$*" >&2; }

# ------------------------------------------------------------------------------------------------
# tools
# shellcheck source=lib/install.sh
. "$ROOT/scripts/lib/install.sh"

say "--- tools"
command -v python3 >/dev/null || apt_install python3 python3-pip
command -v promtool >/dev/null || apt_install prometheus
command -v docker-compose >/dev/null || apt_install docker-compose
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
python3 -c 'import yaml' 2>/dev/null || pip_install 'PyYAML>=6,<7'
# check-jsonschema: as a module of this python3 (a pyenv shim on PATH may outlive its package)
CHECK_JSONSCHEMA=""
if ! python3 -c 'import check_jsonschema' 2>/dev/null && check-jsonschema --version >/dev/null 2>&1; then
    CHECK_JSONSCHEMA=check-jsonschema
else
    python3 -c 'import check_jsonschema' 2>/dev/null || pip_install 'check-jsonschema>=0.29,<1'
    python3 -c 'import check_jsonschema' 2>/dev/null && CHECK_JSONSCHEMA="python3 -m check_jsonschema"
fi

# node dependencies of the typing check: npm ci when package-lock.json changed since the last one
if command -v npm >/dev/null; then
    stamp=monitoring-checks/node_modules/.saga-package-lock.json
    if ! cmp -s monitoring-checks/package-lock.json "$stamp"; then
        say "npm ci (monitoring-checks)"
        (cd monitoring-checks && npm ci --no-audit --no-fund --loglevel=error) &&
            cp monitoring-checks/package-lock.json "$stamp" || warn "npm ci failed"
    fi
fi
for tool in promtool docker-compose node python3; do
    command -v "$tool" >/dev/null && say "$tool: $(command -v "$tool")"
done
say "tools ready after $((SECONDS - started)) s"

# ------------------------------------------------------------------------------------------------
# checks
passed=0
failed=0
failures=()
run_check() {
    local name=$1
    shift
    local t0=$SECONDS
    say ""
    say "--- $name"
    if "$@"; then
        passed=$((passed + 1))
        say "ok   $name ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        say "FAIL $name ($((SECONDS - t0)) s)"
    fi
}

need() {
    command -v "$1" >/dev/null || { say "$1 is not available (its installation failed above)"; return 1; }
}

promtool_check_config() { need promtool && promtool check config "$1"; }
promtool_check_rules() { need promtool && promtool check rules prometheus/alerts.yml; }
# promtool resolves rule_files relative to the test file: run it from prometheus/.
promtool_test_rules() { need promtool && (cd prometheus && promtool test rules alerts.test.yml); }

# Every dashboard query must be valid PromQL: promtool parses each one as a recording rule.
dashboard_queries_parse() {
    need promtool || return 1
    local queries rules n=0
    queries=$(scripts/dashboard-queries.sh --resolve 1m) || return 1
    rules=$(mktemp --suffix=.yml)
    {
        printf 'groups:\n  - name: dashboard-queries\n    rules:\n'
        while IFS= read -r query; do
            n=$((n + 1))
            # YAML single-quoted scalar: double any single quote
            printf "      - record: dashboard:query_%d\n        expr: '%s'\n" "$n" "${query//\'/\'\'}"
        done <<<"$queries"
    } >"$rules"
    local out rc
    out=$(promtool check rules "$rules" 2>&1)
    rc=$?
    rm -f "$rules"
    printf '%s\n' "$out" | sed -n '/FAILED\|error\|SUCCESS/p'
    [ "$rc" -eq 0 ] && say "$n queries of grafana/dashboards/*.json parse"
    return "$rc"
}

dashboard_typing() {
    need node || return 1
    [ -d monitoring-checks/node_modules/@grafana/schema ] || { say "run npm ci in monitoring-checks first"; return 1; }
    node monitoring-checks/typecheck-dashboard.mjs
}

compose_config() {
    need docker-compose || return 1
    docker-compose -f docker-compose.yml config -q && say "docker-compose config: valid"
}

compose_schema() {
    [ -n "$CHECK_JSONSCHEMA" ] || { say "check-jsonschema is not available"; return 1; }
    $CHECK_JSONSCHEMA --builtin-schema vendor.compose-spec docker-compose.yml
}

postgres_init_script() {
    bash -n deploy/postgres/10-saga.sh && [ -x deploy/postgres/10-saga.sh ] &&
        say "deploy/postgres/10-saga.sh: bash syntax ok, executable"
}

consistency() { python3 monitoring-checks/check_consistency.py "$1"; }

run_check "promtool check config prometheus/prometheus.yml" promtool_check_config prometheus/prometheus.yml
run_check "promtool check config prometheus/prometheus.local.yml" promtool_check_config prometheus/prometheus.local.yml
run_check "promtool check rules prometheus/alerts.yml" promtool_check_rules
run_check "promtool test rules prometheus/alerts.test.yml" promtool_test_rules
run_check "dashboard typed against @grafana/schema (tsc --strict)" dashboard_typing
run_check "dashboard queries are valid PromQL" dashboard_queries_parse
run_check "docker-compose config -q" compose_config
run_check "docker-compose.yml against the compose-spec schema" compose_schema
run_check "postgres init script" postgres_init_script
for name in compose-env compose-ports prometheus-targets grafana-wiring metric-names alert-runbooks docker-image postgres-settings; do
    run_check "consistency: $name" consistency "$name"
done

say ""
say "check-monitoring took $((SECONDS - started)) s"
for name in ${failures[@]+"${failures[@]}"}; do
    say "failed: $name"
done
say "monitoring: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
