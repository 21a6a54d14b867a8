#!/usr/bin/env bash
# Conveyor's benchmark command: prepares PostgreSQL, Redis and the Rust
# toolchain like scripts/test.sh, builds the release binaries and runs every
# scenario against the real conveyor-api and conveyor-worker.
#
#   scripts/bench.sh                 full run (100 000 jobs per throughput scenario)
#   scripts/bench.sh --quick         small counts, short runs, no targets
#   scripts/bench.sh --with-bullmq   also run BullMQ (bench/bullmq, installed with npm
#                                    on first use) on the same Redis and print ratios
#   scripts/bench.sh --help          every option (--jobs, --database, --output, …)
#
# Prints a markdown table on stdout and writes target/bench/results.json.
# The benchmark uses its own database (conveyor_bench, dropped and created afresh)
# and its own Redis key prefix; nothing else on the servers is touched.
#
# Environment:
#   DATABASE_URL  PostgreSQL server, default postgres://postgres@127.0.0.1:5432
#                 (its database part, if any, is ignored: --database names the one used)
#   REDIS_URL     default redis://127.0.0.1:6379
#   BENCH_LOG     RUST_LOG of the spawned binaries (default warn)
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

ensure_rust --without-nextest

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
ensure_postgres_for_url "$DATABASE_URL"
ensure_redis_for_url "$REDIS_URL"

for arg in "$@"; do
    if [ "$arg" = "--with-bullmq" ] && ! command -v npm >/dev/null 2>&1; then
        _cv_log "node: npm not found, installing nodejs and npm (BullMQ needs them)"
        _cv_apt_install nodejs npm
    fi
done

echo "[conveyor] cargo build --release --workspace --bins" >&2
cargo build --release --workspace --bins

exec target/release/conveyor-bench "$@"
