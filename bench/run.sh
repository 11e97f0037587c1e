#!/usr/bin/env bash
# Reruns everything BENCHMARKS.md reports, on this machine, into bench/results/. The measuring
# code is the loadtest crate (loadgen, revocation-bench, benches/micro.rs); bench/ holds only the
# scripts that run it and the results:
#   micro.txt           criterion micro-benchmarks (cargo bench -p loadtest --bench micro)
#   scenarios.jsonl     loadgen bench rows: SQLite, then PostgreSQL + Redis, then a concurrency sweep
#   side_by_side.jsonl  h2load rows: our Verify and the Express peer, same machine, same connections
#   revocation-*.md     revocation-bench (logout -> LocalVerifier refusal), SQLite and two replicas;
#                       loadgen propagation (the same across processes)
#   cold-verify.md      cold Verify on fresh services, RUNS=3 per backend, with medians
#   sessions-scale.md   Verify with few, 1,000,000, then few live sessions again; bytes per session
#   summary.md          the ratios against the targets;  *.png  the charts (bench/chart.py)
# Env: DURATION seconds per scenario (10), C connections for the side-by-side (50),
#      PEER the Express peer's directory (../shared/peers/express-seed), SKIP_MICRO=1,
#      TEST_DATABASE_URL / TEST_REDIS_URL (PostgreSQL and Redis; defaults as in .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/results
DURATION=${DURATION:-10}
C=${C:-50}
PEER=${PEER:-$ROOT/../shared/peers/express-seed}
PG=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
PORT=50151
mkdir -p "$OUT"
rm -f "$OUT"/scenarios.jsonl "$OUT"/side_by_side.jsonl

step() { printf '\n==> %s\n' "$*" >&2; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on port $1" >&2; return 1; }

command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
if [ ! -x bench/.venv/bin/python ]; then
    python3 -m venv bench/.venv && bench/.venv/bin/pip install -q matplotlib
fi

step "release build"
# loadtest: loadgen and revocation-bench; demo-services: order-service and payment-service.
cargo build --release -q -p auth-service -p loadtest -p demo-services
LOADGEN=$ROOT/target/release/loadgen

SERVICE=""
DATA_DIR=$(mktemp -d)
cleanup() { [ -z "$SERVICE" ] || kill "$SERVICE" 2>/dev/null || true; [ -z "${PEER_PID:-}" ] || kill "$PEER_PID" 2>/dev/null || true; rm -rf "$DATA_DIR"; }
trap cleanup EXIT

# The service as a user runs it, except that one address sends every call (no per-address
# throttle) and one user may hold many sessions.
start_service() { # env assignments...
    env "$@" AUTH_LISTEN_ADDR=127.0.0.1:$PORT AUTH_DATA_DIR="$DATA_DIR" AUTH_LOGIN_RATE_PER_ADDRESS=0 AUTH_REFRESH_RATE_PER_ADDRESS=0 \
        AUTH_MAX_SESSIONS_PER_USER=1000000 RUST_LOG=warn "$ROOT/target/release/auth-service" >>"$OUT/service.log" 2>&1 &
    SERVICE=$!
    wait_port $PORT
}
stop_service() { kill "$SERVICE"; wait "$SERVICE" 2>/dev/null || true; SERVICE=""; }
# The admin the service scenarios (service-token, exchange) log in as to create service clients.
ADMIN_EMAIL=bench-admin@example.com
export LOADGEN_ADMIN_PASSWORD='bench admin password 1'
create_admin() { # env assignments...
    printf '%s\n' "$LOADGEN_ADMIN_PASSWORD" | env "$@" AUTH_DATA_DIR="$DATA_DIR" RUST_LOG=warn \
        "$ROOT/target/release/auth-service" user create --email "$ADMIN_EMAIL" --role admin >/dev/null
}
idle_rss() { awk '/VmRSS/ {printf "%.1f MiB\n", $2/1024}' "/proc/$SERVICE/status"; }

if [ -z "${SKIP_MICRO:-}" ]; then
    step "micro-benchmarks (criterion)"
    TEST_DATABASE_URL=$PG cargo bench -q -p loadtest --bench micro -- --noplot 2>&1 | tee "$OUT/micro.txt"
fi

h2load_grpc() { # name body-file expect-file label
    bench/.venv/bin/python bench/h2load.py --label "$4" --name "$1" --expect-bytes "$(cat "$3")" \
        --json "$OUT/side_by_side.jsonl" -- -D "$DURATION" --warm-up-time 1 -c "$C" -m 1 -t 1 \
        -d "$2" -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$PORT/auth.v1.AuthService/Verify"
}

step "SQLite (the embedded default)"
create_admin
# AUTH_EXCHANGE_AUDIENCES: the order path below uses the deprecated anonymous exchange (its
# order-service has no client secret); `exchange` measures the authenticated one.
start_service AUTH_EXCHANGE_AUDIENCES=payments
echo "idle RSS (SQLite): $(idle_rss)" | tee "$OUT/memory.txt"
"$LOADGEN" bench --target "http://127.0.0.1:$PORT" --service-pid "$SERVICE" --duration "${DURATION}s" --label sqlite --json "$OUT/scenarios.jsonl" \
    --admin-email "$ADMIN_EMAIL"
"$LOADGEN" h2load-bodies --target "http://127.0.0.1:$PORT" --dir "$OUT/h2load"
h2load_grpc "Verify, access token (one token, h2load)" "$OUT/h2load/verify-access.bin" "$OUT/h2load/verify-access.expect" sqlite
h2load_grpc "Verify, session token (one token, h2load)" "$OUT/h2load/verify-session.bin" "$OUT/h2load/verify-session.expect" sqlite
step "concurrency sweep: Verify of access tokens"
for callers in 1 4 16 64 256; do
    "$LOADGEN" bench --target "http://127.0.0.1:$PORT" --scenarios verify-access --concurrency "$callers" \
        --users 20 --tokens 2000 --duration "$(( DURATION / 2 + 1 ))s" --label sweep --json "$OUT/scenarios.jsonl"
done
step "the demo order path: order-service (Verify, ExchangeToken) -> payment-service (LocalVerifier)"
PAYMENT_LISTEN_ADDR=127.0.0.1:50162 PAYMENT_AUTH_URL=http://127.0.0.1:$PORT PAYMENT_REQUIRED_ACTOR= RUST_LOG=warn \
    "$ROOT/target/release/payment-service" >>"$OUT/service.log" 2>&1 &
PAYMENT=$!
wait_port 50162
ORDER_LISTEN_ADDR=127.0.0.1:50161 ORDER_AUTH_URL=http://127.0.0.1:$PORT ORDER_PAYMENT_URL=http://127.0.0.1:50162 \
    RUST_LOG=warn "$ROOT/target/release/order-service" >>"$OUT/service.log" 2>&1 &
ORDER=$!
wait_port 50161
"$LOADGEN" bench --target "http://127.0.0.1:$PORT" --order-target http://127.0.0.1:50161 --scenarios order \
    --connections 4 --concurrency 50 --users 50 --tokens 2000 --duration "${DURATION}s" --label sqlite --json "$OUT/scenarios.jsonl"
kill "$ORDER" "$PAYMENT"; wait "$ORDER" "$PAYMENT" 2>/dev/null || true
echo "RSS after the SQLite runs: $(idle_rss)" | tee -a "$OUT/memory.txt"
stop_service

step "PostgreSQL + Redis"
SCHEMA=bench_$(date +%s)
psql "$PG" -qc "CREATE SCHEMA $SCHEMA"
SEP='?'; case "$PG" in *\?*) SEP='&';; esac
create_admin DATABASE_URL="$PG${SEP}options[search_path]=$SCHEMA"
start_service DATABASE_URL="$PG${SEP}options[search_path]=$SCHEMA" REDIS_URL="$REDIS" AUTH_LIMITS_KEY_PREFIX="$SCHEMA"
"$LOADGEN" bench --target "http://127.0.0.1:$PORT" --service-pid "$SERVICE" --duration "${DURATION}s" --label postgres+redis \
    --scenarios verify-access,verify-session,verify-cold,refresh,login,mixed,service-token,exchange --json "$OUT/scenarios.jsonl" \
    --admin-email "$ADMIN_EMAIL"
"$LOADGEN" h2load-bodies --target "http://127.0.0.1:$PORT" --dir "$OUT/h2load-pg"
h2load_grpc "Verify, access token (one token, h2load)" "$OUT/h2load-pg/verify-access.bin" "$OUT/h2load-pg/verify-access.expect" postgres+redis
h2load_grpc "Verify, session token (one token, h2load)" "$OUT/h2load-pg/verify-session.bin" "$OUT/h2load-pg/verify-session.expect" postgres+redis
stop_service
psql "$PG" -qc "DROP SCHEMA $SCHEMA CASCADE"

step "cold Verify, three fresh services per backend (medians)"
TEST_DATABASE_URL=$PG TEST_REDIS_URL=$REDIS bash bench/cold-verify.sh

step "one million live sessions (PostgreSQL + Redis)"
DURATION=$DURATION TEST_DATABASE_URL=$PG TEST_REDIS_URL=$REDIS bash bench/sessions-scale.sh

step "the Express peer, CLUSTER=2 (one Node worker per core)"
(cd "$PEER" && { [ -d node_modules ] || npm ci --no-audit --no-fund >/dev/null 2>&1 || npm install --no-audit --no-fund >/dev/null; })
(cd "$PEER" && CLUSTER=2 PORT=3900 exec node server.js >"$OUT/peer.log" 2>&1) &
PEER_PID=$!
wait_port 3900
sleep 1
TOKEN=$(curl -sf -H 'content-type: application/json' -d '{"email":"user7@example.com","password":"password7"}' http://127.0.0.1:3900/login | python3 -c 'import sys,json; print(json.load(sys.stdin)["token"])')
COOKIE=$(curl -sf -D - -o /dev/null -H 'content-type: application/json' -d '{"email":"user8@example.com","password":"password8"}' http://127.0.0.1:3900/session/login | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')
for endpoint in /profile-tuned /profile-hybrid /session/profile; do
    header="authorization: Bearer $TOKEN"; [ "$endpoint" = /session/profile ] && header="cookie: $COOKIE"
    bench/.venv/bin/python bench/h2load.py --label express-peer --name "$endpoint" --json "$OUT/side_by_side.jsonl" --tolerate-errors \
        -- --h1 -D "$DURATION" --warm-up-time 1 -c "$C" -t 1 -H "$header" "http://127.0.0.1:3900$endpoint"
done
kill "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true; PEER_PID=""

step "revocation propagation (revocation-bench)"
"$ROOT/target/release/revocation-bench" --count 300 >"$OUT/revocation-sqlite.md"
"$ROOT/target/release/revocation-bench" --count 300 --postgres "$PG" --redis "$REDIS" >"$OUT/revocation-replicas.md"
# The same through separate processes: two replicas (child processes) and the verifier here.
"$LOADGEN" propagation --postgres "$PG" --users 2 --count 300 --report "$OUT/revocation-cross-process.md"

step "summary and charts"
bench/.venv/bin/python bench/chart.py "$OUT"
cat "$OUT/summary.md"
