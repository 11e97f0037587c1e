#!/usr/bin/env bash
# Runs the verifier libraries' tests (clients/python, clients/node): the shared conformance
# vectors (conformance/vectors/) and the live scenario (conformance/scenario.json) against a
# real auth-service, each library's feed cut with a TCP proxy its test controls.
#
# Builds and starts the server (debug build, SQLite in a temporary folder, a free port on
# 127.0.0.1), installs each library the ecosystem's way (`pip install ./clients/python` into a
# virtualenv, with the pinned clients/python/requirements.txt; `npm ci` in clients/node, and
# `npm install ./clients/node` into a scratch project), runs pytest and node --test, stops the
# server. Exits non-zero if either fails. Needs Rust, Python 3 with pip and venv, Node 20 + npm.
#
#   bash clients/run.sh
#
# AUTH_SERVICE_BIN=path/to/auth-service uses that binary instead of building the debug one;
# PYTHON picks the interpreter for the virtualenv (default python3); CLIENTS_VENV moves the
# virtualenv (default clients/python/.venv).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

VENV=${CLIENTS_VENV:-$here/python/.venv}
work=$(mktemp -d)
# shellcheck source=clients/harness.sh
source "$here/harness.sh"
trap 'stop_auth_service; rm -rf "$work"' EXIT

need cargo "$PYTHON" node npm
auth_service_bin
start_auth_service

step "Python: pip install ./clients/python into $VENV (pinned: clients/python/requirements.txt)"
install_python_library "$VENV"

step "Node: npm ci in clients/node, and npm install ./clients/node into a scratch project"
(cd "$here/node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
mkdir -p "$work/npm-user"
(cd "$work/npm-user" && echo '{"name":"scratch","private":true,"type":"module"}' >package.json &&
    npm install --no-audit --no-fund --loglevel=error "$here/node" >/dev/null &&
    node -e "import('auth-verifier').then((m) => { if (typeof m.LocalVerifier.connect !== 'function') process.exit(1); })")

failed=()
export CI=${CI:-true} GRPC_VERBOSITY=${GRPC_VERBOSITY:-ERROR}

step "Python: pytest (conformance vectors, live scenario, interceptors)"
(cd "$here/python" && timeout 300 "$VENV/bin/python" -m pytest -q -p no:cacheprovider) || failed+=(python)

step "Node: node --test (conformance vectors, live scenario, server wrapper)"
(cd "$here/node" && timeout 300 node --test --test-reporter=spec test/*.test.js) || failed+=(node)

stop_auth_service

if ((${#failed[@]})); then
    step "FAILED: ${failed[*]} (server log below)"
    cat "$work/server.log"
    exit 1
fi
step "both verifier libraries passed (the Rust side: cargo test -p auth-service --test api conformance)"
