#!/usr/bin/env bash
# Conveyor's test command: prepares PostgreSQL, Redis and the Rust toolchain on this
# machine (installing them on a fresh Debian/Ubuntu), builds the binaries and runs
# the whole test suite with cargo-nextest.
#
#   scripts/test.sh [extra cargo-nextest arguments, e.g. -E 'test(retry)']
#
# Environment:
#   DATABASE_URL  default postgres://postgres@127.0.0.1:5432/conveyor_test
#                 (sqlx::test creates one database per test on that server)
#   REDIS_URL     default redis://127.0.0.1:6379
#   CI            when set, also runs `cargo fmt --check` and `cargo clippy -D warnings`,
#                 the operations files' checks (scripts/check-ops.sh) before the build,
#                 and the API fuzz run (scripts/fuzz-api.sh) after the tests
#   FUZZ=1        runs the API fuzz run without CI
# A URL pointing elsewhere than the local default server is used as is.
# After the Rust tests it always runs the dashboard's browser tests
# (scripts/test-dashboard.sh: Debian's chromium driven by Playwright for Python).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

# shellcheck disable=SC2119  # no arguments: also install cargo-nextest
ensure_rust

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/conveyor_test}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

# Local default server: started/configured here, and the URL's database created.
ensure_postgres_for_url "$DATABASE_URL"
ensure_redis_for_url "$REDIS_URL"
if [ -n "${PG_BIN_DIR:-}" ]; then export PG_BIN_DIR; fi

# The end-to-end tests spawn the binaries built below.
export CONVEYOR_BIN_DIR="${CONVEYOR_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}"

if [ -n "${CI:-}" ]; then
    if command -v rustup >/dev/null 2>&1; then
        if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
            rustup component add rustfmt clippy
        fi
    fi
    echo "[conveyor] cargo fmt --all -- --check" >&2
    cargo fmt --all -- --check
    echo "[conveyor] cargo clippy --workspace --all-targets -- -D warnings" >&2
    cargo clippy --workspace --all-targets -- -D warnings
fi

# The operations files: docker-compose.yml, Dockerfile, alert rules and their unit
# tests, Grafana dashboard.
if [ -n "${CI:-}" ]; then
    echo "[conveyor] scripts/check-ops.sh" >&2
    bash scripts/check-ops.sh
fi

echo "[conveyor] cargo build --workspace --bins" >&2
cargo build --workspace --bins

echo "[conveyor] cargo nextest run --workspace --no-fail-fast $*" >&2
cargo nextest run --workspace --no-fail-fast "$@"

# The dashboard in headless Chromium (installs chromium and a Playwright venv
# under target/ when missing; fails the run when it cannot).
echo "[conveyor] scripts/test-dashboard.sh" >&2
scripts/test-dashboard.sh

# The API fuzz run (schemathesis against /openapi.json): in CI, or with FUZZ=1.
if [ -n "${CI:-}" ] || [ "${FUZZ:-}" = "1" ]; then
    echo "[conveyor] scripts/fuzz-api.sh" >&2
    scripts/fuzz-api.sh
fi
