#!/usr/bin/env bash
# deploy/check-packaging.sh — checks the packaging with the tools that run here (it
# cannot be deployed here): the Dockerfile's shape, the Kubernetes manifests against the
# Kubernetes API schemas (kubernetes-validate, from PyPI), the systemd units
# (systemd-analyze verify, with the real `ecs` and `nats-server` binaries) and the
# three-node NATS cluster configuration (nats-server -t), the Grafana dashboard and the
# Prometheus alert rules (valid, naming only exported metrics). Run by deploy/test.sh; needs
# `target/debug/ecs` (or ECS_BIN) and ECS_NATS_SERVER (or nats-server on PATH).
set -euo pipefail

cd "$(dirname "$0")/.."
ECS_BIN=${ECS_BIN:-target/debug/ecs}
NATS=${ECS_NATS_SERVER:-nats-server}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { printf 'check-packaging: %b\n' "$*" >&2; exit 1; }

# Dockerfile: multi-stage, Studio and the server built, a non-root runtime.
python3 - <<'PY' || fail "Dockerfile"
import re, sys
text = open("Dockerfile").read()
stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
assert len(stages) >= 3, f"expected 3 stages (studio, server, runtime), got {stages}"
assert "npm run build" in text, "Studio is not built"
assert re.search(r"cargo build --release --locked -p ecs-api --bin ecs", text), "ecs is not built"
runtime = text[text.rfind("\nFROM"):]
users = re.findall(r"^USER\s+(\S+)", runtime, re.M)
assert users and users[-1].split(":")[0] not in ("root", "0"), f"runtime user: {users}"
assert "ENTRYPOINT" in runtime, "no entrypoint"
PY

# Kubernetes: every resource against the API schema (strict: no unknown fields), and
# what ECS needs of them.
python3 -m pip show -q kubernetes-validate >/dev/null 2>&1 \
    || python3 -m pip install -q kubernetes-validate >/dev/null 2>&1 \
    || fail "cannot install kubernetes-validate"
# The ServiceMonitor is a CRD without a schema here; the Python check below covers it.
out=$(kubernetes-validate --strict --quiet deploy/kubernetes/ecs.yaml 2>&1 \
    | grep -v "Couldn't find schema for kind ServiceMonitor" || true)
[[ -z $out ]] || fail "deploy/kubernetes/ecs.yaml: $out"
python3 - <<'PY' || fail "deploy/kubernetes"
import yaml
docs = {d["kind"]: d for d in yaml.safe_load_all(open("deploy/kubernetes/ecs.yaml")) if d}
for kind in ("Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor"):
    assert kind in docs, f"no {kind}"
assert docs["Deployment"]["spec"]["replicas"] >= 2, "run several replicas (leases elect the projector)"
pod = docs["Deployment"]["spec"]["template"]["spec"]
c = pod["containers"][0]
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
assert pod["securityContext"]["runAsNonRoot"] is True
env = {e["name"]: e.get("value") for e in c["env"]}
assert env["ECS_STREAM_REPLICAS"] == "3" and env["ECS_NATS_URL"].count(",") == 2
sm = docs["ServiceMonitor"]["spec"]["endpoints"][0]
assert sm["path"] == "/metrics"
nats = yaml.safe_load(open("deploy/kubernetes/nats-values.yaml"))
assert nats["config"]["cluster"]["enabled"] and nats["config"]["cluster"]["replicas"] == 3
assert nats["config"]["jetstream"]["enabled"]
assert nats["config"]["jetstream"]["merge"]["sync_interval"] == "always"
PY

# systemd: the units as shipped, with the binaries' paths pointed at real binaries.
nats_path=$(command -v "$NATS") || fail "no nats-server"
[[ -x $ECS_BIN ]] || fail "no $ECS_BIN (cargo build -p ecs-api --bin ecs)"
for unit in deploy/systemd/*.service; do
    sed -e "s|/usr/local/bin/ecs|$(realpath "$ECS_BIN")|" \
        -e "s|/usr/local/bin/nats-server|$nats_path|" "$unit" >"$work/$(basename "$unit")"
done
out=$(cd "$work" && systemd-analyze verify ./*.service 2>&1 | grep -v -e "Failed to open .*ecs.env" -e "^$" || true)
[[ -z $out ]] || fail "systemd units:\n$out"

# NATS cluster: each node's configuration parses, with a real server nkey in the
# permission model (the shipped file has a placeholder for it).
mkdir -p "$work/nats/cluster"
cp deploy/cluster/*.conf "$work/nats/cluster/"
key=$("$ECS_BIN" nats-credential --server | grep -o 'nkey: "U[A-Z0-9]*"' | head -1 | cut -d'"' -f2)
sed "s|<ecs-server-nkey>|$key|" deploy/nats-auth.conf >"$work/nats/nats-auth.conf"
for node in "$work"/nats/cluster/ecs-nats-*.conf; do
    "$nats_path" -t -c "$node" >"$work/nats.log" 2>&1 || fail "$(basename "$node"): $(cat "$work/nats.log")"
done
# Grafana dashboard and Prometheus alert rules: valid JSON and YAML, each query naming
# only metrics ECS exports (the catalogue in docs/observability.md).
python3 - <<'PY' || fail "deploy/grafana, deploy/prometheus"
import json, re, yaml
catalogue = set(re.findall(r"^\| `(ecs_[a-z_]+)`", open("docs/observability.md").read(), re.M))
assert catalogue, "no metrics table in docs/observability.md"
def named(expr):
    names = {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"\becs_[a-z_]+", expr)}
    unknown = names - catalogue
    assert names and not unknown, f"{expr!r} names metrics ECS does not export: {unknown or 'none'}"
dashboard = json.load(open("deploy/grafana/ecs.json"))
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
assert exprs, "the dashboard has no queries"
for expr in exprs:
    named(expr)
rules = yaml.safe_load(open("deploy/prometheus/ecs-alerts.yaml"))
alerts = [r for g in rules["groups"] for r in g["rules"]]
assert alerts, "no alert rules"
for rule in alerts:
    assert rule.get("alert") and rule.get("expr"), f"incomplete rule {rule}"
    named(rule["expr"])
PY

echo "check-packaging: ok"
