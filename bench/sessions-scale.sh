#!/usr/bin/env bash
# Verify throughput with few live sessions and with one million (PostgreSQL + Redis), and the
# database's bytes per live session; few sessions are measured before and after the million.
# Writes bench/results/sessions-scale.jsonl and sessions-scale.md. Called by bench/run.sh; runs
# alone too (after a release build).
# Env: DURATION (seconds per measurement, 10), SESSIONS (1000000), TEST_DATABASE_URL, TEST_REDIS_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/results
DURATION=${DURATION:-10}
SESSIONS=${SESSIONS:-1000000}
PG=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
PORT=50152
mkdir -p "$OUT"
rm -f "$OUT/sessions-scale.jsonl"
SCHEMA=scale_$(date +%s)
SEP='?'; case "$PG" in *\?*) SEP='&';; esac
DATA_DIR=$(mktemp -d)
psql "$PG" -qc "CREATE SCHEMA $SCHEMA"
DATABASE_URL="$PG${SEP}options[search_path]=$SCHEMA" REDIS_URL="$REDIS" AUTH_LIMITS_KEY_PREFIX="$SCHEMA" \
    AUTH_LISTEN_ADDR=127.0.0.1:$PORT AUTH_DATA_DIR="$DATA_DIR" AUTH_LOGIN_RATE_PER_ADDRESS=0 AUTH_REFRESH_RATE_PER_ADDRESS=0 \
    AUTH_MAX_SESSIONS_PER_USER=1000000 RUST_LOG=warn "$ROOT/target/release/auth-service" >>"$OUT/service.log" 2>&1 &
SERVICE=$!
trap 'kill $SERVICE 2>/dev/null || true; psql "$PG" -qc "DROP SCHEMA $SCHEMA CASCADE" >/dev/null 2>&1 || true; rm -rf "$DATA_DIR"' EXIT
for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

measure() { # label
    "$ROOT/target/release/loadgen" bench --target "http://127.0.0.1:$PORT" --scenarios verify-access,verify-session \
        --users 100 --tokens 5000 --duration "${DURATION}s" --label "$1" --json "$OUT/sessions-scale.jsonl"
}
live() { psql "$PG" -qAtc "SELECT count(*) FROM $SCHEMA.sessions WHERE revoked_at IS NULL"; }

# Each measurement logs in its own 100 users (a token session and a session-token session each).
measure "200 live sessions (the run's own)"
echo "inserting $SESSIONS live sessions, each with its refresh-token row..." >&2
psql "$PG" -q <<SQL
SET search_path = $SCHEMA;
INSERT INTO users (id, email, email_key, password_hash, roles, created_at)
SELECT 'bulkuser' || n, 'bulk' || n || '@example.com', 'bulk' || n || '@example.com', 'not a usable hash', '',
       (extract(epoch FROM now()) * 1000)::bigint
FROM generate_series(1, 1000) AS n;
INSERT INTO sessions (id, user_id, kind, created_at, last_seen_at, idle_timeout_ms, expires_at,
                      refresh_current_hash, refresh_expires_at, user_agent, peer_address)
SELECT 'bulk' || n, 'bulkuser' || (n % 1000 + 1), 'tokens', t, t, 3600000, t + 2592000000,
       sha256(('bulk' || n)::bytea), t + 604800000, 'loadgen/bulk', '127.0.0.1'
FROM generate_series(1, $SESSIONS) AS n, (SELECT (extract(epoch FROM now()) * 1000)::bigint AS t) AS clock;
INSERT INTO refresh_tokens (token_hash, session_id, issued_at)
SELECT sha256(('bulk' || n)::bytea), 'bulk' || n, (extract(epoch FROM now()) * 1000)::bigint
FROM generate_series(1, $SESSIONS) AS n;
ANALYZE;
SQL
measure "$(( $(live) + 200 )) live sessions"
BYTES=$(psql "$PG" -qAtc "SELECT (pg_total_relation_size('$SCHEMA.sessions') + pg_total_relation_size('$SCHEMA.refresh_tokens')) / (SELECT count(*) FROM $SCHEMA.sessions)")
RSS=$(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$SERVICE/status")
# This VM's speed drifts over the minutes the insert takes: measure few sessions again after
# deleting the million, so the million is compared with a measurement on each side of it.
echo "deleting them again..." >&2
psql "$PG" -q <<SQL
SET search_path = $SCHEMA;
DELETE FROM refresh_tokens WHERE session_id LIKE 'bulk%';
DELETE FROM sessions WHERE id LIKE 'bulk%';
DELETE FROM users WHERE id LIKE 'bulkuser%';
VACUUM ANALYZE;
SQL
measure "$(( $(live) + 200 )) live sessions (the million deleted again)"
{
    echo "| live sessions | scenario | requests/s | p50 ms | p99 ms |"
    echo "|---|---|---:|---:|---:|"
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("| %s | %s | %.0f | %.2f | %.2f |" % (r["label"], r["scenario"], r["rps"], r["p50_ms"], r["p99_ms"]))
' "$OUT/sessions-scale.jsonl"
    echo
    echo "database bytes per session (sessions + refresh_tokens, tables and indexes, one refresh row each): $BYTES"
    echo "service RSS after the run: $RSS"
} | tee "$OUT/sessions-scale.md"
