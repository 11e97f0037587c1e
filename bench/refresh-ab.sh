#!/usr/bin/env bash
# Two builds back to back (issue 19): a scenario of `loadgen bench` (64 callers, 200 users, 2,000
# chains; `refresh` unless SCENARIO says otherwise) in the order A, B, B, A on SQLite, then on
# PostgreSQL + Redis, each run on a fresh database, so drift of the machine shows up instead of
# hiding in one side.
# Usage: bash bench/refresh-ab.sh DIR_A DIR_B (each holding release auth-service and loadgen).
# Env: SCENARIO (refresh; e.g. refresh-storm), DURATION seconds per run (10), TEST_DATABASE_URL,
# TEST_REDIS_URL (defaults as in .ci/run). Writes bench/results/SCENARIO-ab.jsonl (label:
# backend-A or backend-B) and prints the rows.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 DIR_A DIR_B" >&2; exit 2; }
declare -A SIDES=([A]="$1" [B]="$2")
SCENARIO=${SCENARIO:-refresh}
OUT=$PWD/bench/results/$SCENARIO-ab.jsonl
DURATION=${DURATION:-10}
PG=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
PORT=50153
rm -f "$OUT"
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on port $1" >&2; return 1; }
SERVICE=""; SCHEMA=""; DATA_DIR=""
cleanup() {
    [ -z "$SERVICE" ] || { kill "$SERVICE" 2>/dev/null; wait "$SERVICE" 2>/dev/null || true; }
    [ -z "$SCHEMA" ] || psql "$PG" -qc "DROP SCHEMA $SCHEMA CASCADE" 2>/dev/null || true
    [ -z "$DATA_DIR" ] || rm -rf "$DATA_DIR"
    SERVICE=""; SCHEMA=""; DATA_DIR=""
}
trap cleanup EXIT
for backend in sqlite postgres+redis; do
    for side in A B B A; do
        bin=${SIDES[$side]}
        DATA_DIR=$(mktemp -d)
        database=()
        if [ "$backend" = postgres+redis ]; then
            SCHEMA=ab_$(date +%s%N)
            psql "$PG" -qc "CREATE SCHEMA $SCHEMA"
            sep='?'; case "$PG" in *\?*) sep='&';; esac
            database=(DATABASE_URL="$PG${sep}options[search_path]=$SCHEMA" REDIS_URL="$REDIS" AUTH_LIMITS_KEY_PREFIX="$SCHEMA")
        fi
        env "${database[@]}" AUTH_LISTEN_ADDR=127.0.0.1:$PORT AUTH_DATA_DIR="$DATA_DIR" \
            AUTH_LOGIN_RATE_PER_ADDRESS=0 AUTH_REFRESH_RATE_PER_ADDRESS=0 AUTH_MAX_SESSIONS_PER_USER=1000000 \
            RUST_LOG=warn "$bin/auth-service" >/dev/null 2>&1 &
        SERVICE=$!
        wait_port $PORT
        echo "$backend $side ($bin), load $(cut -d' ' -f1 /proc/loadavg)"
        "$bin/loadgen" bench --target "http://127.0.0.1:$PORT" --service-pid "$SERVICE" --duration "${DURATION}s" \
            --warmup 2s --users 200 --tokens 2000 --concurrency 64 --connections 4 --label "$backend-$side" \
            --scenarios "$SCENARIO" --json "$OUT" 2>/dev/null | grep "^| $SCENARIO"
        cleanup
    done
done
