#!/usr/bin/env bash
# Validates deploy/kubernetes/*.yaml without a cluster: kubernetes-validate (PyPI) checks every
# resource against the Kubernetes OpenAPI schemas it bundles, strictly (an unknown field fails
# too), for the oldest version the manifests need (1.30: `preStop.sleep`) and its newest.
# Then the promises the schemas cannot check: the probes use `auth-service healthcheck`, and
# terminationGracePeriodSeconds covers the preStop pause plus AUTH_SHUTDOWN_GRACE.
# deploy/envoy/envoy.yaml is parsed as YAML only (no Envoy binary here).
# Installs kubernetes-validate into a cached virtualenv if missing; without Python's venv, says
# that validation is skipped and exits 0. Never contacts a cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.37.0 # kubernetes-validate, pinned
VENV=${KUBERNETES_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/auth-service-ci/kubernetes-validate-$VERSION}

if [[ ! -x $VENV/bin/kubernetes-validate ]]; then
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        echo "python3 -m venv is unavailable: Kubernetes manifest validation skipped"
        exit 0
    fi
    echo "installing kubernetes-validate $VERSION into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "kubernetes-validate==$VERSION"
fi

for kubernetes in 1.30.0 1.37.0; do
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$kubernetes" deploy/kubernetes/*.yaml
done

"$VENV/bin/python" - <<'PY'
import re
import sys

import yaml

def load(path):
    with open(path) as file:
        return list(yaml.safe_load_all(file))

def seconds(duration):
    match = re.fullmatch(r"(\d+)s", duration)
    if not match:
        sys.exit(f"AUTH_SHUTDOWN_GRACE {duration!r}: write it in whole seconds (e.g. 10s)")
    return int(match.group(1))

(config,) = load("deploy/kubernetes/configmap.yaml")
(deployment,) = load("deploy/kubernetes/deployment.yaml")
pod = deployment["spec"]["template"]["spec"]
(container,) = pod["containers"]
grace = seconds(config["data"]["AUTH_SHUTDOWN_GRACE"])
pause = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
if pod["terminationGracePeriodSeconds"] <= pause + grace:
    sys.exit(
        f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} must exceed the "
        f"preStop pause ({pause} s) plus AUTH_SHUTDOWN_GRACE ({grace} s)"
    )
for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
    command = container[probe]["exec"]["command"]
    if command[:2] != ["auth-service", "healthcheck"]:
        sys.exit(f"{probe} does not run `auth-service healthcheck`: {command}")
if "--live" in container["readinessProbe"]["exec"]["command"]:
    sys.exit("readinessProbe must check readiness (no --live)")
if "--live" not in container["livenessProbe"]["exec"]["command"]:
    sys.exit("livenessProbe must check liveness (--live): a replica without its database must not be restarted")
load("deploy/envoy/envoy.yaml")
print("deploy/kubernetes/*.yaml are valid (Kubernetes 1.30 and 1.37 schemas, strict); probes and grace period consistent")
PY
