#!/usr/bin/env bash
# Cold Verify (every token unseen) against the empty handler, several times on each backend: on
# this noisy VM one 5-second row moves by 15% between runs, so BENCHMARKS.md reports the median
# of RUNS. Each run starts a fresh service (SQLite in a temporary directory; PostgreSQL in a fresh
# schema + Redis), mints 60,000 tokens by Refresh chains, then measures. Writes
# bench/results/cold-verify.jsonl and cold-verify.md. Runs alone (after a release build).
# Env: RUNS (3), TEST_DATABASE_URL, TEST_REDIS_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/results
RUNS=${RUNS:-3}
PG=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
PORT=50153
mkdir -p "$OUT"
rm -f "$OUT/cold-verify.jsonl"
SERVICE=""
SCHEMA=""
DATA_DIR=""
cleanup() {
    [ -z "$SERVICE" ] || kill "$SERVICE" 2>/dev/null || true
    [ -z "$SCHEMA" ] || psql "$PG" -qc "DROP SCHEMA $SCHEMA CASCADE" >/dev/null 2>&1 || true
    [ -z "$DATA_DIR" ] || rm -rf "$DATA_DIR"
}
trap cleanup EXIT

run_once() { # label env-assignments...
    local label=$1; shift
    DATA_DIR=$(mktemp -d)
    env "$@" AUTH_LISTEN_ADDR=127.0.0.1:$PORT AUTH_DATA_DIR="$DATA_DIR" AUTH_LOGIN_RATE_PER_ADDRESS=0 AUTH_REFRESH_RATE_PER_ADDRESS=0 \
        AUTH_MAX_SESSIONS_PER_USER=1000000 RUST_LOG=warn "$ROOT/target/release/auth-service" >>"$OUT/service.log" 2>&1 &
    SERVICE=$!
    for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
    "$ROOT/target/release/loadgen" bench --target "http://127.0.0.1:$PORT" --service-pid "$SERVICE" \
        --scenarios health,verify-cold --duration 5s --label "$label" --json "$OUT/cold-verify.jsonl"
    kill "$SERVICE"; wait "$SERVICE" 2>/dev/null || true; SERVICE=""
    rm -rf "$DATA_DIR"; DATA_DIR=""
}

SEP='?'; case "$PG" in *\?*) SEP='&';; esac
for run in $(seq "$RUNS"); do
    run_once sqlite
    SCHEMA=cold_$(date +%s)
    psql "$PG" -qc "CREATE SCHEMA $SCHEMA"
    run_once postgres+redis DATABASE_URL="$PG${SEP}options[search_path]=$SCHEMA" REDIS_URL="$REDIS" \
        AUTH_LIMITS_KEY_PREFIX="$SCHEMA"
    psql "$PG" -qc "DROP SCHEMA $SCHEMA CASCADE" >/dev/null 2>&1; SCHEMA=""
    echo "run $run of $RUNS done" >&2
done

python3 - "$OUT/cold-verify.jsonl" >"$OUT/cold-verify.md" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print("| backend | runs: cold Verify requests/s | median | service CPU µs/call (median) | empty handler µs/call (median) |")
print("|---|---|---:|---:|---:|")
for label in ("sqlite", "postgres+redis"):
    cold = [r for r in rows if r["label"] == label and r["scenario"] == "verify-cold"]
    health = [r for r in rows if r["label"] == label and r["scenario"].startswith("health")]
    if not cold:
        continue
    runs = ", ".join("%.0f" % r["rps"] for r in cold)
    print(f"| {label} | {runs} | {statistics.median(r['rps'] for r in cold):.0f} "
          f"| {statistics.median(r['service_cpu_us'] for r in cold):.1f} | {statistics.median(r['service_cpu_us'] for r in health):.1f} |")
EOF
cat "$OUT/cold-verify.md"
