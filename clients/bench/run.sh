#!/usr/bin/env bash
# Measures the Python and Node verifiers for BENCHMARKS.md ("Verifier libraries"), side by side
# with the Rust LocalVerifier measured the same way (`loadgen propagation`):
#
# - a private redis-server on a free port and a fresh schema in $TEST_DATABASE_URL, shared by two
#   auth-service replicas (A and B) started from the release binary with the environment of
#   loadtest's replicas (loadtest/src/cluster.rs, replica_env);
# - clients/python/bench/bench.py and clients/node/bench/bench.mjs: each language's verifier follows A through a TCP proxy; seen-token
#   and first-sight checks, then BENCH_COUNT revocations (Logout on B -> refusal);
# - then `loadgen propagation --users 2 --count BENCH_COUNT` for the Rust row (its own replicas,
#   same topology).
#
#   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bash clients/bench/run.sh
#
# Writes clients/bench/results.md (the table) and results.jsonl. AUTH_SERVICE_BIN and LOADGEN
# point at prebuilt binaries (default: a release build of both); CLIENTS_VENV as in clients/run.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
clients=$(dirname "$here")
root=$(dirname "$clients")
cd "$root"

: "${TEST_DATABASE_URL:?set TEST_DATABASE_URL to a PostgreSQL database (a fresh schema is made in it)}"
COUNT=${BENCH_COUNT:-300}
VENV=${CLIENTS_VENV:-$clients/python/.venv}
target=${CARGO_TARGET_DIR:-$root/target}

step() { printf '\n==> %s\n' "$*"; }

if [[ -z ${AUTH_SERVICE_BIN:-} || -z ${LOADGEN:-} ]]; then
    step "building auth-service and loadgen (release)"
    cargo build --release -q -p auth-service -p loadtest
fi
server_bin=${AUTH_SERVICE_BIN:-$target/release/auth-service}
loadgen=${LOADGEN:-$target/release/loadgen}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_listening() { # pid port
    for _ in $(seq 150); do
        kill -0 "$1" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

work=$(mktemp -d)
schema="clients_bench_$$"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    psql "$TEST_DATABASE_URL" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

step "a private Redis, schema $schema, replicas A and B"
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
wait_listening "${pids[-1]}" "$redis_port"
psql "$TEST_DATABASE_URL" -qc "CREATE SCHEMA $schema"
separator='?'; [[ $TEST_DATABASE_URL == *'?'* ]] && separator='&'
replica_env=(
    "DATABASE_URL=${TEST_DATABASE_URL}${separator}options[search_path]=$schema"
    "REDIS_URL=redis://127.0.0.1:$redis_port"
    "AUTH_DATA_DIR=$work/data"
    AUTH_LOGIN_RATE_PER_ADDRESS=0 AUTH_REFRESH_RATE_PER_ADDRESS=0 AUTH_MAX_SESSIONS_PER_USER=100000
    "AUTH_LIMITS_KEY_PREFIX=clients-bench-$$" AUTH_FEED_HEARTBEAT_INTERVAL=300ms RUST_LOG=warn
)
addrs=()
for name in a b; do # one at a time: the first runs the migrations
    port=$(free_port)
    env "${replica_env[@]}" AUTH_LISTEN_ADDR="127.0.0.1:$port" "$server_bin" >"$work/replica-$name.log" 2>&1 &
    pids+=($!)
    wait_listening "${pids[-1]}" "$port" || { cat "$work/replica-$name.log" >&2; exit 1; }
    addrs+=("127.0.0.1:$port")
done
export AUTH_A=${addrs[0]} AUTH_B=${addrs[1]} BENCH_COUNT=$COUNT GRPC_VERBOSITY=ERROR

step "installing the libraries"
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$clients/python/requirements.txt" "$clients/python"
[[ -d $clients/node/node_modules ]] || (cd "$clients/node" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

results=$here/results.jsonl
: >"$results"
step "Python ($COUNT revocations)"
"$VENV/bin/python" "$clients/python/bench/bench.py" | tee -a "$results"
step "Node ($COUNT revocations)"
node "$clients/node/bench/bench.mjs" | tee -a "$results"

for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()

step "Rust: loadgen propagation --users 2 --count $COUNT"
"$loadgen" propagation --postgres "$TEST_DATABASE_URL" --auth-service "$server_bin" --users 2 --count "$COUNT" \
    --report "$work/rust.md" >"$work/rust.log" 2>&1 || { cat "$work/rust.log" >&2; exit 1; }
cat "$work/rust.md"

python3 - "$results" "$work/rust.md" >"$here/results.md" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rust = [line for line in open(sys.argv[2]) if line.startswith("| Logout")]
cells = [cell.strip() for cell in rust[0].strip().strip("|").split("|")] if rust else []
print("| verifier | seen token p50 / p99 µs | first sight p50 / p99 µs | revocation → refusal p50 / p99 (max) ms | runtime |")
print("|---|---:|---:|---:|---|")
for r in rows:
    s, f, v = r["seen_us"], r["first_sight_us"], r["revocation_ms"]
    print(f"| {r['language']} | {s['p50']:.1f} / {s['p99']:.1f} | {f['p50']:.1f} / {f['p99']:.1f} | "
          f"{v['p50']:.2f} / {v['p99']:.2f} ({v['max']:.2f}), {v['count']} | {r['runtime']} |")
if cells:
    print(f"| Rust (`loadgen propagation`) | see BENCHMARKS.md | see BENCHMARKS.md | {cells[2]} / {cells[4]} ({cells[5]}), {cells[1]} | auth-api LocalVerifier |")
PY
step "results (clients/bench/results.md)"
cat "$here/results.md"
