#!/usr/bin/env bash
# API fuzz run: schemathesis (from PyPI, in a venv under target/) against the
# built target/debug/conveyor-api, on a fresh database `conveyor_fuzz` and its own
# Redis prefix, driven by the API's own GET /openapi.json. Fails on any 5xx and on
# any answer that does not match its documented schema.
#
#   scripts/fuzz-api.sh            (after `cargo build --workspace --bins`)
#
# Environment:
#   DATABASE_URL  a database on the server to use (default
#                 postgres://postgres@127.0.0.1:5432/conveyor_test); the fuzz
#                 database is created next to it and dropped first
#   REDIS_URL     default redis://127.0.0.1:6379
#   FUZZ_EXAMPLES test cases per operation (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

log() { printf '[fuzz] %s\n' "$*" >&2; }

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/conveyor_test}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
API_BIN="${CONVEYOR_BIN_DIR:-$TARGET/debug}/conveyor-api"
VENV="$TARGET/fuzz-venv"
EXAMPLES="${FUZZ_EXAMPLES:-30}"

[ -x "$API_BIN" ] || { log "$API_BIN is missing: run cargo build --workspace --bins"; exit 1; }

# schemathesis in a venv of its own.
if [ ! -x "$VENV/bin/schemathesis" ]; then
    log "installing schemathesis into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet schemathesis
fi
log "$("$VENV/bin/schemathesis" --version)"

# A fresh database next to DATABASE_URL's.
base="${DATABASE_URL%%\?*}"
FUZZ_DB_URL="${base%/*}/conveyor_fuzz"
psql -X -w -q -v ON_ERROR_STOP=1 "$DATABASE_URL" \
    -c 'DROP DATABASE IF EXISTS conveyor_fuzz WITH (FORCE)' \
    -c 'CREATE DATABASE conveyor_fuzz' >/dev/null

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
TOKEN="fuzz-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
PREFIX="fuzz-$$"
LOG="$TARGET/fuzz-api.log"

log "starting conveyor-api on 127.0.0.1:$PORT (log: $LOG)"
DATABASE_URL="$FUZZ_DB_URL" REDIS_URL="$REDIS_URL" \
    CONVEYOR_CONFIG="$ROOT/config/conveyor.toml" \
    CONVEYOR_REDIS_PREFIX="$PREFIX" \
    CONVEYOR_API_ADDR="127.0.0.1:$PORT" \
    CONVEYOR_ADMIN_TOKENS="$TOKEN" \
    RUST_LOG="${RUST_LOG:-warn}" \
    "$API_BIN" >"$LOG" 2>&1 &
API_PID=$!
cleanup() {
    kill "$API_PID" 2>/dev/null || true
    wait "$API_PID" 2>/dev/null || true
    if command -v redis-cli >/dev/null 2>&1; then
        redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX:*" 2>/dev/null |
            xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then break; fi
    kill -0 "$API_PID" 2>/dev/null || { log "conveyor-api exited:"; cat "$LOG" >&2; exit 1; }
    sleep 0.1
done

# Two schedules for the routes that take a schedule id: random ids only ever reach
# the 404 branch, and a valid create is too rare among generated bodies for the
# stateful phase to pick one up. DELETE gets one of its own, so the others keep theirs.
create_schedule() {
    curl -fsS -X POST "http://127.0.0.1:$PORT/api/admin/scheduled-jobs" \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "{\"name\":\"fuzz-$1\",\"queueName\":\"diagnostics\",\"jobType\":\"ECHO\",\"cronExpression\":\"0 0 2 * * *\",\"payload\":{}}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}
SCHEDULE_ID="$(create_schedule kept)"
DOOMED_SCHEDULE_ID="$(create_schedule deleted)"

# Its caches (.hypothesis, .schemathesis) go under target/, not the repository;
# so does its configuration, which pins those ids.
mkdir -p "$TARGET/fuzz"
cd "$TARGET/fuzz"
cat > schemathesis.toml <<EOF
[[operations]]
include-path = "/api/admin/scheduled-jobs/{id}"
include-method = "DELETE"
parameters = { "path.id" = "$DOOMED_SCHEDULE_ID" }

[[operations]]
include-path-regex = '^/api/admin/scheduled-jobs/.'
exclude-method = "DELETE"
parameters = { "path.id" = "$SCHEDULE_ID" }
EOF

log "schemathesis run (max $EXAMPLES examples per operation)"
"$VENV/bin/schemathesis" --config-file schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    -H "Authorization: Bearer $TOKEN" \
    --max-examples "$EXAMPLES" \
    --request-timeout 5 \
    --no-color
log "no findings"
