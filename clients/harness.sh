# Shared by clients/run.sh and examples/run.sh (sourced, not run): a throwaway auth-service and
# the Python/Node installs of the verifier libraries. Expects `root` (the repository) and `work`
# (a temporary folder it may fill) to be set, and `set -euo pipefail`.
#
# AUTH_SERVICE_BIN=path/to/auth-service uses that binary instead of building the debug one;
# PYTHON picks the interpreter for the virtualenvs (default python3).

PYTHON=${PYTHON:-python3}
server_pid=

step() { printf '\n==> %s\n' "$*"; }

# need TOOL...: fail early, naming what is missing.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$0: $tool is not installed" >&2; exit 1; }
    done
}

# auth_service_bin: builds the debug auth-service (unless AUTH_SERVICE_BIN) and sets server_bin.
auth_service_bin() {
    if [[ -n ${AUTH_SERVICE_BIN:-} ]]; then
        server_bin=$AUTH_SERVICE_BIN # a binary built elsewhere (a release build, say)
    else
        step "building auth-service"
        (cd "$root" && cargo build -q -p auth-service)
        server_bin=${CARGO_TARGET_DIR:-$root/target}/debug/auth-service
    fi
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_auth_service [VAR=value...]: starts $server_bin on a free port of 127.0.0.1 with its
# SQLite database in $work/data (and the extra settings given), exports AUTH_ADDR, and waits
# until `auth-service healthcheck` says it serves. The log goes to $work/server.log.
start_auth_service() {
    export AUTH_ADDR="127.0.0.1:$(free_port)"
    step "starting auth-service on $AUTH_ADDR (SQLite in a temporary folder)"
    env AUTH_LISTEN_ADDR="$AUTH_ADDR" AUTH_DATA_DIR="$work/data" AUTH_SHUTDOWN_GRACE=1s NO_COLOR=1 "$@" \
        "$server_bin" >"$work/server.log" 2>&1 &
    server_pid=$!
    local _
    for _ in $(seq 100); do
        kill -0 "$server_pid" 2>/dev/null || break
        if "$server_bin" healthcheck --addr "$AUTH_ADDR" --timeout 1s >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    echo "auth-service did not start serving on $AUTH_ADDR; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
}

stop_auth_service() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}

# install_python_library VENV [REQUIREMENTS...]: a virtualenv with clients/python installed the
# ecosystem's way (`pip install ./clients/python`, rebuilt every run: the stubs are generated
# from proto/ at build time), its pinned dependencies and any further requirement files.
install_python_library() {
    local venv=$1
    shift
    if [[ ! -x $venv/bin/python ]]; then
        "$PYTHON" -m venv "$venv" || {
            echo "could not create a virtualenv (on Debian/Ubuntu: apt-get install python3-venv)" >&2
            exit 1
        }
    fi
    local pip=("$venv/bin/python" -m pip -q --disable-pip-version-check)
    local requirements=(-r "$root/clients/python/requirements.txt")
    local file
    for file in "$@"; do requirements+=(-r "$file"); done
    "${pip[@]}" install "${requirements[@]}"
    "${pip[@]}" install --force-reinstall --no-deps "$root/clients/python"
    # The package's declared ranges against the pins.
    "${pip[@]}" check >/dev/null
}
