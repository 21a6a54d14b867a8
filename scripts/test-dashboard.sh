#!/usr/bin/env bash
# The dashboard's browser tests: headless Chromium (Debian's `chromium`, driven by
# Playwright for Python) against the built conveyor-api and a conveyor-worker on
# `diagnostics`, on a database and a Redis prefix of their own.
#
#   scripts/test-dashboard.sh [extra pytest arguments, e.g. -k retry]
#
# Installs what it needs: the `chromium` package (apt-get, as root or through
# sudo) when /usr/bin/chromium is missing, and pinned Playwright and pytest in a
# venv under target/dashboard-venv (Playwright's own browser download is never
# used). Builds conveyor-api and conveyor-worker unless CONVEYOR_BIN_DIR already
# holds both. Screenshots go to target/dashboard-screenshots/.
#
# Environment:
#   DATABASE_URL  a database on the server to use (default
#                 postgres://postgres@127.0.0.1:5432/postgres); the test database
#                 `conveyor_dashboard` is created next to it, and dropped afterwards
#   REDIS_URL     default redis://127.0.0.1:6379
#   CONVEYOR_BIN_DIR  where the debug binaries are (default $CARGO_TARGET_DIR/debug
#                 or target/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

log() { printf '[dashboard] %s\n' "$*" >&2; }

PLAYWRIGHT_VERSION=1.65.2
PYTEST_VERSION=9.2.0
DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET/dashboard-venv"
SHOTS="$TARGET/dashboard-screenshots"
DB_NAME=conveyor_dashboard
CHROMIUM="${DASH_CHROMIUM:-/usr/bin/chromium}"

# The browser: Debian's chromium. Without it the run fails.
if [ ! -x "$CHROMIUM" ]; then
    log "$CHROMIUM is missing: installing the chromium package"
    if ! _cv_apt_install chromium || [ ! -x "$CHROMIUM" ]; then
        log "error: chromium could not be installed; the browser tests cannot run"
        exit 1
    fi
fi
log "$("$CHROMIUM" --version 2>/dev/null || echo chromium)"

# Playwright and pytest, pinned, in a venv of their own.
if ! "$VENV/bin/python" -c "import playwright, pytest, sys; \
from importlib.metadata import version as v; \
sys.exit(0 if (v('playwright'), v('pytest')) == ('$PLAYWRIGHT_VERSION', '$PYTEST_VERSION') else 1)" 2>/dev/null; then
    log "installing playwright==$PLAYWRIGHT_VERSION and pytest==$PYTEST_VERSION into $VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        _cv_apt_install python3-venv
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "playwright==$PLAYWRIGHT_VERSION" "pytest==$PYTEST_VERSION"
fi

# The binaries.
BIN_DIR="${CONVEYOR_BIN_DIR:-$TARGET/debug}"
if [ -z "${CONVEYOR_BIN_DIR:-}" ] || [ ! -x "$BIN_DIR/conveyor-api" ] || [ ! -x "$BIN_DIR/conveyor-worker" ]; then
    log "cargo build -p conveyor-api -p conveyor-worker"
    cargo build -p conveyor-api -p conveyor-worker
    BIN_DIR="$TARGET/debug"
fi

# A database of its own, next to DATABASE_URL's.
base="${DATABASE_URL%%\?*}"
DB_URL="${base%/*}/$DB_NAME"
ADMIN_DB_URL="${base%/*}/postgres"
psql -X -w -q -v ON_ERROR_STOP=1 "$ADMIN_DB_URL" \
    -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" \
    -c "CREATE DATABASE $DB_NAME" >/dev/null

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
ADMIN_TOKEN="dash-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
VIEWER_TOKEN="dash-viewer-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
PREFIX="dashboard-$$"
mkdir -p "$TARGET"
API_LOG="$TARGET/dashboard-api.log"
WORKER_LOG="$TARGET/dashboard-worker.log"

service_env=(
    DATABASE_URL="$DB_URL" REDIS_URL="$REDIS_URL"
    CONVEYOR_CONFIG="$ROOT/config/conveyor.toml"
    CONVEYOR_REDIS_PREFIX="$PREFIX"
    RUST_LOG="${RUST_LOG:-warn}"
)
API_PID=""
WORKER_PID=""
cleanup() {
    local pid
    for pid in $WORKER_PID $API_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $WORKER_PID $API_PID; do
        wait "$pid" 2>/dev/null || true
    done
    psql -X -w -q "$ADMIN_DB_URL" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 || true
    if command -v redis-cli >/dev/null 2>&1; then
        redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX:*" 2>/dev/null |
            xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

log "starting conveyor-api on 127.0.0.1:$PORT (log: $API_LOG)"
env "${service_env[@]}" CONVEYOR_API_ADDR="127.0.0.1:$PORT" \
    CONVEYOR_ADMIN_TOKENS="$ADMIN_TOKEN" CONVEYOR_VIEWER_TOKENS="$VIEWER_TOKEN" \
    "$BIN_DIR/conveyor-api" >"$API_LOG" 2>&1 &
API_PID=$!
for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then break; fi
    kill -0 "$API_PID" 2>/dev/null || { log "conveyor-api exited:"; cat "$API_LOG" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null || { log "conveyor-api does not answer"; exit 1; }

log "starting conveyor-worker --queues diagnostics (log: $WORKER_LOG)"
env "${service_env[@]}" "$BIN_DIR/conveyor-worker" --queues diagnostics >"$WORKER_LOG" 2>&1 &
WORKER_PID=$!

rm -rf "$SHOTS"
mkdir -p "$SHOTS"
log "pytest tests/dashboard (screenshots: $SHOTS)"
export PYTHONDONTWRITEBYTECODE=1
status=0
(
    cd tests/dashboard
    DASH_URL="http://127.0.0.1:$PORT" DASH_ADMIN_TOKEN="$ADMIN_TOKEN" DASH_VIEWER_TOKEN="$VIEWER_TOKEN" \
        DASH_SCREENSHOTS="$SHOTS" DASH_CHROMIUM="$CHROMIUM" \
        "$VENV/bin/python" -m pytest -p no:cacheprovider -q "$@"
) || status=$?
if [ "$status" -ne 0 ]; then
    log "FAILED (pytest exit $status); the API's log: $API_LOG, the worker's: $WORKER_LOG"
fi
exit "$status"
