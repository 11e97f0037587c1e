#!/usr/bin/env bash
# The write path (issue 19): Refresh with 64 callers over many sessions, Verify's tail alone and
# during a refresh storm, and the open-loop mix at 50/70/90% of its measured capacity, on SQLite
# and on PostgreSQL + Redis, with the service's CPU per call. Writes bench/results/write-path.jsonl
# and prints Markdown rows. Env: BIN (directory with release auth-service and loadgen; default
# target/release, built if missing), DURATION seconds per scenario (10), TEST_DATABASE_URL,
# TEST_REDIS_URL (defaults as in .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/results
BIN=${BIN:-$ROOT/target/release}
DURATION=${DURATION:-10}
PG=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
PORT=50152
mkdir -p "$OUT"
rm -f "$OUT/write-path.jsonl"
[ -x "$BIN/auth-service" ] && [ -x "$BIN/loadgen" ] || cargo build --release -q -p auth-service -p loadtest

step() { printf '\n==> %s\n' "$*" >&2; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on port $1" >&2; return 1; }

SERVICE=""
DATA_DIR=$(mktemp -d)
cleanup() { [ -z "$SERVICE" ] || kill "$SERVICE" 2>/dev/null || true; rm -rf "$DATA_DIR"; }
trap cleanup EXIT

start_service() { # env assignments...
    env "$@" AUTH_LISTEN_ADDR=127.0.0.1:$PORT AUTH_DATA_DIR="$DATA_DIR" AUTH_LOGIN_RATE_PER_ADDRESS=0 \
        AUTH_REFRESH_RATE_PER_ADDRESS=0 AUTH_MAX_SESSIONS_PER_USER=1000000 RUST_LOG=warn \
        "$BIN/auth-service" >>"$OUT/write-path-service.log" 2>&1 &
    SERVICE=$!
    wait_port $PORT
}
stop_service() { kill "$SERVICE"; wait "$SERVICE" 2>/dev/null || true; SERVICE=""; }
run() { # label scenarios
    echo "load before $1 $2: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    "$BIN/loadgen" bench --target "http://127.0.0.1:$PORT" --service-pid "$SERVICE" --duration "${DURATION}s" \
        --warmup 2s --users 200 --tokens 2000 --concurrency 64 --connections 4 --label "$1" \
        --scenarios "$2" --json "$OUT/write-path.jsonl"
}

step "SQLite"
start_service
run sqlite refresh,refresh-storm,login,mixed-open
stop_service

step "PostgreSQL + Redis"
SCHEMA=bench_$(date +%s)
psql "$PG" -qc "CREATE SCHEMA $SCHEMA"
SEP='?'; case "$PG" in *\?*) SEP='&';; esac
start_service DATABASE_URL="$PG${SEP}options[search_path]=$SCHEMA" REDIS_URL="$REDIS" AUTH_LIMITS_KEY_PREFIX="$SCHEMA"
run postgres+redis refresh,refresh-storm,login,mixed-open
stop_service
psql "$PG" -qc "DROP SCHEMA $SCHEMA CASCADE"
