#!/usr/bin/env bash
# Runs the example clients (examples/python, examples/node) against a live auth-service.
#
# Builds and starts the server (debug build, SQLite in a temporary folder, free ports on
# 127.0.0.1 for gRPC and for the HTTP listener with the JWKS URL), waits until
# `auth-service healthcheck` says it serves, installs each client's pinned dependencies (a virtualenv
# in examples/python/.venv, `npm ci` in examples/node), runs both clients, stops the server.
# Exits non-zero if either client fails. Needs Rust, Python 3 with pip and venv, Node 20 + npm.
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

PYTHON=${PYTHON:-python3}
VENV=${EXAMPLES_VENV:-$here/python/.venv}

step() { printf '\n==> %s\n' "$*"; }

for tool in cargo "$PYTHON" node npm; do
    command -v "$tool" >/dev/null || { echo "examples/run.sh: $tool is not installed" >&2; exit 1; }
done

work=$(mktemp -d)
server_pid=
stop_server() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}
cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT

if [[ -n ${AUTH_SERVICE_BIN:-} ]]; then
    server_bin=$AUTH_SERVICE_BIN # a binary built elsewhere (a release build, say)
else
    step "building auth-service"
    cargo build -q -p auth-service
    server_bin=${CARGO_TARGET_DIR:-$root/target}/debug/auth-service
fi

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
export AUTH_ADDR="127.0.0.1:$(free_port)"
http_addr="127.0.0.1:$(free_port)"
# The clients fetch the discovery document and the JWKS from here.
export AUTH_HTTP_URL="http://$http_addr"

step "starting auth-service on $AUTH_ADDR, HTTP on $http_addr (SQLite in a temporary folder)"
AUTH_LISTEN_ADDR=$AUTH_ADDR AUTH_HTTP_ADDR=$http_addr AUTH_DATA_DIR="$work/data" \
    AUTH_SHUTDOWN_GRACE=1s NO_COLOR=1 "$server_bin" >"$work/server.log" 2>&1 &
server_pid=$!
listening=
for _ in $(seq 100); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        break
    fi
    if "$server_bin" healthcheck --addr "$AUTH_ADDR" --timeout 1s >/dev/null 2>&1; then
        listening=yes
        break
    fi
    sleep 0.2
done
if [[ -z $listening ]]; then
    echo "auth-service did not start serving on $AUTH_ADDR; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi

step "Python client: installing examples/python/requirements.txt into $VENV"
if [[ ! -x $VENV/bin/python ]]; then
    "$PYTHON" -m venv "$VENV" || {
        echo "could not create a virtualenv (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    }
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$here/python/requirements.txt"

step "Node client: npm ci in examples/node"
(cd "$here/node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

failed=()

step "Python client (examples/python/auth_client.py)"
timeout 120 "$VENV/bin/python" "$here/python/auth_client.py" || failed+=(python)

step "Node client (examples/node/auth-client.js)"
timeout 120 node "$here/node/auth-client.js" || failed+=(node)

stop_server

if ((${#failed[@]})); then
    step "FAILED: ${failed[*]} (server log below)"
    cat "$work/server.log"
    exit 1
fi
step "both example clients passed"
