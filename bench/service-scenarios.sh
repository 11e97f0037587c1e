#!/usr/bin/env bash
# The service-to-service scenarios of `loadgen bench` (BENCHMARKS.md, "Service-to-service") on a
# fresh release service: an admin is created first (`auth-service user create`), loadgen logs in
# as it to create the service clients, then measures verify-access (for scale: the same machine's
# warm Verify), service-token and exchange. `uptime` is printed before and after: the machine may
# be shared.
#   bash bench/service-scenarios.sh                       # SQLite in a temporary directory
#   BACKEND=postgres bash bench/service-scenarios.sh      # PostgreSQL (a fresh schema) + Redis
# Knobs: DURATION (10s), USERS (200), TOKENS (10000), CLIENTS (100), CONNS (4), CONC (64), PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/target/release}
PORT=${PORT:-50293}
PG=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
DATA=$(mktemp -d)
export LOADGEN_ADMIN_PASSWORD='bench admin password 1'
export AUTH_DATA_DIR=$DATA AUTH_LISTEN_ADDR=127.0.0.1:$PORT AUTH_LOGIN_RATE_PER_ADDRESS=0 \
    AUTH_REFRESH_RATE_PER_ADDRESS=0 AUTH_MAX_SESSIONS_PER_USER=1000000 RUST_LOG=error
LABEL=sqlite
SCHEMA=""
if [ "${BACKEND:-sqlite}" = postgres ]; then
    SCHEMA=bench_svc_$(date +%s)
    psql "$PG" -qc "CREATE SCHEMA $SCHEMA"
    SEP='?'; case "$PG" in *\?*) SEP='&';; esac
    export DATABASE_URL="$PG${SEP}options[search_path]=$SCHEMA" REDIS_URL="$REDIS" AUTH_LIMITS_KEY_PREFIX="$SCHEMA"
    LABEL=postgres+redis
fi
printf '%s\n' "$LOADGEN_ADMIN_PASSWORD" | "$BIN/auth-service" user create --email bench-admin@example.com --role admin >/dev/null
"$BIN/auth-service" >"$DATA/service.log" 2>&1 &
SERVICE=$!
cleanup() {
    kill "$SERVICE" 2>/dev/null || true; wait "$SERVICE" 2>/dev/null || true; rm -rf "$DATA"
    [ -z "$SCHEMA" ] || psql "$PG" -qc "DROP SCHEMA $SCHEMA CASCADE" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
echo "uptime before: $(uptime)"
"$BIN/loadgen" bench --target "http://127.0.0.1:$PORT" --service-pid "$SERVICE" --label "$LABEL" \
    --scenarios verify-access,service-token,exchange --admin-email bench-admin@example.com \
    --duration "${DURATION:-10s}" --users "${USERS:-200}" --tokens "${TOKENS:-10000}" \
    --service-clients "${CLIENTS:-100}" --connections "${CONNS:-4}" --concurrency "${CONC:-64}"
echo "uptime after: $(uptime)"
