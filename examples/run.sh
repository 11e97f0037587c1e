#!/usr/bin/env bash
# Runs the example services (examples/python, examples/node) against a live auth-service.
#
# Builds and starts the server (debug build, SQLite in a temporary folder, a free port on
# 127.0.0.1) with an admin account made by `auth-service user create`, installs each example the
# ecosystem's way (a virtualenv in examples/python/.venv with `pip install ./clients/python` and
# the pinned requirements; `npm ci` in clients/node and in examples/node, which links it), runs both,
# stops the server. Exits non-zero if either fails. Needs Rust, Python 3 with pip and venv,
# Node 20 + npm. The server and the installs are clients/harness.sh's, shared with clients/run.sh.
#
#   bash examples/run.sh
#
# AUTH_SERVICE_BIN=path/to/auth-service uses that binary instead of building the debug one;
# PYTHON picks the interpreter for the virtualenv (default python3); EXAMPLES_VENV moves the
# virtualenv elsewhere.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

VENV=${EXAMPLES_VENV:-$here/python/.venv}
work=$(mktemp -d)
# shellcheck source=clients/harness.sh
source "$root/clients/harness.sh"
trap 'stop_auth_service; rm -rf "$work"' EXIT

need cargo "$PYTHON" node npm
auth_service_bin

# The examples create a service client (AdminService), which takes an admin.
export AUTH_ADMIN_EMAIL=admin@example.com AUTH_ADMIN_PASSWORD="examples-$RANDOM-$RANDOM-admin"
step "creating the admin account $AUTH_ADMIN_EMAIL"
echo "$AUTH_ADMIN_PASSWORD" | AUTH_DATA_DIR="$work/data" NO_COLOR=1 \
    "$server_bin" user create --email "$AUTH_ADMIN_EMAIL" --role admin >/dev/null
start_auth_service

step "Python: pip install ./clients/python and examples/python/requirements.txt into $VENV"
install_python_library "$VENV" "$here/python/requirements.txt"

step "Node: npm ci in clients/node and in examples/node (which links auth-verifier from there)"
(cd "$root/clients/node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
(cd "$here/node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

failed=()
export GRPC_VERBOSITY=${GRPC_VERBOSITY:-ERROR}

step "Python example service (examples/python/whoami_service.py)"
timeout 120 "$VENV/bin/python" "$here/python/whoami_service.py" || failed+=(python)

step "Node example service (examples/node/whoami-service.js)"
timeout 120 node "$here/node/whoami-service.js" || failed+=(node)

stop_auth_service

if ((${#failed[@]})); then
    step "FAILED: ${failed[*]} (server log below)"
    cat "$work/server.log"
    exit 1
fi
step "both example services passed"
