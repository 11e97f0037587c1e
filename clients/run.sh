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

PYTHON=${PYTHON:-python3}
VENV=${CLIENTS_VENV:-$here/python/.venv}

step() { printf '\n==> %s\n' "$*"; }

for tool in cargo "$PYTHON" node npm; do
    command -v "$tool" >/dev/null || { echo "clients/run.sh: $tool is not installed" >&2; exit 1; }
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
    server_bin=$AUTH_SERVICE_BIN
else
    step "building auth-service"
    cargo build -q -p auth-service
    server_bin=${CARGO_TARGET_DIR:-$root/target}/debug/auth-service
fi

port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export AUTH_ADDR="127.0.0.1:$port"

step "starting auth-service on $AUTH_ADDR (SQLite in a temporary folder)"
AUTH_LISTEN_ADDR=$AUTH_ADDR AUTH_DATA_DIR="$work/data" AUTH_SHUTDOWN_GRACE=1s NO_COLOR=1 \
    "$server_bin" >"$work/server.log" 2>&1 &
server_pid=$!
listening=
for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        listening=yes
        break
    fi
    sleep 0.2
done
if [[ -z $listening ]]; then
    echo "auth-service did not start listening on $AUTH_ADDR; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi

step "Python: pip install ./clients/python into $VENV (pinned: clients/python/requirements.txt)"
if [[ ! -x $VENV/bin/python ]]; then
    "$PYTHON" -m venv "$VENV" || {
        echo "could not create a virtualenv (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    }
fi
pip=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
"${pip[@]}" install -r "$here/python/requirements.txt"
# Not --no-deps: pip checks the package's ranges against the pins; rebuilt every run (the stubs
# are generated from proto/ at build time).
"${pip[@]}" install --force-reinstall --no-deps "$here/python"
"${pip[@]}" check >/dev/null

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

stop_server

if ((${#failed[@]})); then
    step "FAILED: ${failed[*]} (server log below)"
    cat "$work/server.log"
    exit 1
fi
step "both verifier libraries passed (the Rust side: cargo test -p auth-service --test api conformance)"
