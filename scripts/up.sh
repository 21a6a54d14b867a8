#!/usr/bin/env bash
# Conveyor's run command: prepares PostgreSQL, Redis and the Rust toolchain on this
# machine (installing them on a fresh Debian/Ubuntu), builds the release binaries and
# starts, in the background, the API and one worker per default queue (and the
# scheduler). Stop everything with scripts/down.sh.
#
# Environment (all optional):
#   DATABASE_URL           default postgres://postgres@127.0.0.1:5432/conveyor
#   REDIS_URL              default redis://127.0.0.1:6379
#   CONVEYOR_API_ADDR      default 127.0.0.1:8080
#   CONVEYOR_ADMIN_TOKENS  default: a random token kept in .conveyor/admin-token
#   CONVEYOR_WORKER_METRICS_PORT  first port of the workers' /metrics, default 9101
#                          (worker n listens on 127.0.0.1:<port + n>)
# State: .conveyor/logs/<name>.log, .conveyor/pids/<name>.pid
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
STATE="$ROOT/.conveyor"
LOGS="$STATE/logs"
PIDS="$STATE/pids"
QUEUES=(author_data book_data quote_data batch_orchestrator diagnostics)

# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

ensure_rust --without-nextest
if ! command -v curl >/dev/null 2>&1; then
    _cv_apt_install curl
fi

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/conveyor}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export CONVEYOR_API_ADDR="${CONVEYOR_API_ADDR:-127.0.0.1:8080}"
ensure_postgres_for_url "$DATABASE_URL"   # also creates the URL's database (conveyor)
ensure_redis_for_url "$REDIS_URL"

mkdir -p "$LOGS" "$PIDS"

if [ -z "${CONVEYOR_ADMIN_TOKENS:-}" ]; then
    if [ -s "$STATE/admin-token" ]; then
        CONVEYOR_ADMIN_TOKENS="$(tr -d '[:space:]' <"$STATE/admin-token")"
    else
        if command -v openssl >/dev/null 2>&1; then
            CONVEYOR_ADMIN_TOKENS="$(openssl rand -hex 24)"
        else
            CONVEYOR_ADMIN_TOKENS="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
        fi
        (umask 077 && printf '%s\n' "$CONVEYOR_ADMIN_TOKENS" >"$STATE/admin-token")
        echo "[conveyor] generated an admin token in .conveyor/admin-token" >&2
    fi
fi
export CONVEYOR_ADMIN_TOKENS
TOKEN="${CONVEYOR_ADMIN_TOKENS%%,*}"

echo "[conveyor] cargo build --release --workspace --bins" >&2
cargo build --release --workspace --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

# Stop what a previous run left running (after the build, to keep the gap short).
if compgen -G "$PIDS/*.pid" >/dev/null 2>&1; then
    bash scripts/down.sh || true
fi

# start NAME COMMAND... : run in its own session, log to .conveyor/logs/NAME.log,
# pid in .conveyor/pids/NAME.pid.
start() {
    local name="$1"
    shift
    printf '\n===== %s: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*" >>"$LOGS/$name.log"
    if command -v setsid >/dev/null 2>&1; then
        setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
    else
        nohup "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
    fi
    echo $! >"$PIDS/$name.pid"
}

alive() { kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

fail() {
    local name="$1"
    echo "[conveyor] error: $name did not come up; last lines of .conveyor/logs/$name.log:" >&2
    # The lines written since this run's "=====" header, at most 30.
    awk '/^===== /{n=0; delete l} {l[n++]=$0} END{for(i=(n>30?n-30:0);i<n;i++) print l[i]}' \
        "$LOGS/$name.log" >&2 || true
    bash scripts/down.sh || true
    exit 1
}

case "$CONVEYOR_API_ADDR" in
    0.0.0.0:*) HEALTH_ADDR="127.0.0.1:${CONVEYOR_API_ADDR##*:}" ;;
    \[::\]:*) HEALTH_ADDR="[::1]:${CONVEYOR_API_ADDR##*:}" ;;
    *) HEALTH_ADDR="$CONVEYOR_API_ADDR" ;;
esac
API_URL="http://$HEALTH_ADDR"

# The API applies pending migrations at start.
start conveyor-api "$BIN/conveyor-api"
echo "[conveyor] waiting for $API_URL/health" >&2
healthy=0
for _ in $(seq 1 120); do
    if curl -fsS -o /dev/null --max-time 2 "$API_URL/health" 2>/dev/null; then
        healthy=1
        break
    fi
    alive conveyor-api || fail conveyor-api
    sleep 0.5
done
[ "$healthy" -eq 1 ] || fail conveyor-api

port="${CONVEYOR_WORKER_METRICS_PORT:-9101}"
for q in "${QUEUES[@]}"; do
    start "worker-$q" "$BIN/conveyor-worker" --queues "$q" --metrics-addr "127.0.0.1:$port"
    port=$((port + 1))
done
if [ -x "$BIN/conveyor-scheduler" ]; then
    start conveyor-scheduler "$BIN/conveyor-scheduler"
fi

sleep 1
for f in "$PIDS"/*.pid; do
    name="$(basename "$f" .pid)"
    alive "$name" || fail "$name"
done

cat <<EOF

Conveyor is running.
  API:          $API_URL   (dashboard $API_URL/ , metrics $API_URL/metrics)
  Admin token:  $TOKEN
  Workers:      ${QUEUES[*]}
  Logs:         .conveyor/logs/   pids: .conveyor/pids/

Enqueue a job:
  curl -sS -X POST $API_URL/api/admin/jobs \\
    -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' \\
    -d '{"queueName":"diagnostics","jobType":"ECHO","payload":{"hello":"world"}}'

Read it back (JOB_ID = the "id" of the answer above):
  curl -sS $API_URL/api/admin/jobs/JOB_ID -H 'Authorization: Bearer $TOKEN'

Stop:  scripts/down.sh
EOF
