#!/usr/bin/env bash
# Prints every PromQL query (`expr`) of the Grafana dashboards, one per line.
#
#   scripts/dashboard-queries.sh [--resolve [RATE_INTERVAL]] [--titles] [DASHBOARD.json…]
#
# Default: grafana/dashboards/*.json, exprs exactly as stored (Grafana variables such as
# $__rate_interval left in). --resolve replaces Grafana's interval variables with RATE_INTERVAL
# (default 1m) so that each line can be sent to Prometheus' /api/v1/query as it is.
# --titles prefixes each line with "<file>\t<panel title>\t<refId>\t".
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import glob, json, re, sys

args = sys.argv[1:]
resolve, titles, files = None, False, []
i = 0
while i < len(args):
    a = args[i]
    if a == "--resolve":
        resolve = "1m"
        if i + 1 < len(args) and re.fullmatch(r"\d+(ms|s|m|h)", args[i + 1]):
            resolve = args[i + 1]
            i += 1
    elif a == "--titles":
        titles = True
    elif a in ("-h", "--help"):
        print("usage: scripts/dashboard-queries.sh [--resolve [RATE_INTERVAL]] [--titles] [DASHBOARD.json...]")
        sys.exit(0)
    elif a.startswith("-"):
        sys.exit(f"unknown option {a}")
    else:
        files.append(a)
    i += 1
files = files or sorted(glob.glob("grafana/dashboards/*.json"))
if not files:
    sys.exit("no dashboard found")

def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))  # collapsed rows keep their panels inside

count = 0
for path in files:
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)
    for panel in panels(dash.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not expr:
                continue
            expr = " ".join(expr.split())
            if resolve:
                expr = re.sub(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}", resolve, expr)
                if "$" in expr:
                    sys.exit(f"{path}: panel {panel.get('title')!r} uses a variable this script cannot resolve: {expr}")
            prefix = f"{path}\t{panel.get('title', '')}\t{target.get('refId', '')}\t" if titles else ""
            print(prefix + expr)
            count += 1
if count == 0:
    sys.exit("no query found")
PY
