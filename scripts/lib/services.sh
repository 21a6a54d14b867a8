# shellcheck shell=bash
# Conveyor: make the backing services of a development machine available.
#
# Sourced by scripts/test.sh and scripts/up.sh (callers use `set -euo pipefail`).
# Every function is idempotent: on a machine where PostgreSQL (127.0.0.1:5432,
# role `postgres` reachable over TCP without a password) and Redis (127.0.0.1:6379)
# already run, they only check and print one line each; they never restart a
# running service. On a fresh Debian/Ubuntu machine they install (apt-get), start
# and configure what is missing.
#
#   ensure_postgres          PostgreSQL up on 127.0.0.1:5432, role postgres w/o password;
#                            exports PG_BIN_DIR (directory holding initdb and pg_ctl)
#   ensure_redis             Redis up on 127.0.0.1:6379
#   ensure_database NAME     database NAME exists (owner postgres)
#   ensure_rust [--without-nextest]
#                            cargo present (else exit 1 with instructions), plus cargo-nextest
#   ensure_postgres_for_url URL / ensure_redis_for_url URL
#                            the above when URL points at the local default server,
#                            otherwise only report that the URL's server is used as is

_CV_PG_HOST=127.0.0.1
_CV_PG_PORT=5432
_CV_REDIS_HOST=127.0.0.1
_CV_REDIS_PORT=6379
_CV_HBA_MARKER="# conveyor: trust loopback TCP (added by scripts/lib/services.sh, local development only)"

_cv_log() { printf '[conveyor] %s\n' "$*" >&2; }
_cv_err() { printf '[conveyor] error: %s\n' "$*" >&2; }

# Run a command as root: directly when we are root, else through sudo.
_cv_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        _cv_err "need root for: $* (run as root or install sudo)"
        return 1
    fi
}

# Run a command as the OS user postgres (peer authentication over the Unix socket).
_cv_as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u postgres -- "$@")
        else
            (cd / && su -s /bin/sh postgres -c "$(printf '%q ' "$@")")
        fi
    elif command -v sudo >/dev/null 2>&1; then
        (cd / && sudo -u postgres -- "$@")
    else
        return 1
    fi
}

_CV_APT_UPDATED=0
# _cv_apt_install PKG... : apt-get install (apt-get update once per shell first).
_cv_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        _cv_err "apt-get not found; install these yourself: $*"
        return 1
    fi
    if [ "$_CV_APT_UPDATED" -eq 0 ]; then
        _cv_log "apt-get update"
        _cv_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        _CV_APT_UPDATED=1
    fi
    _cv_log "apt-get install -y $*"
    _cv_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" || return 1
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

_cv_pg_ready() {
    command -v pg_isready >/dev/null 2>&1 &&
        pg_isready -q -h "$_CV_PG_HOST" -p "$_CV_PG_PORT" >/dev/null 2>&1
}

# psql as role postgres over TCP, never prompting for a password.
_cv_psql() {
    psql -X -w -q -v ON_ERROR_STOP=1 -h "$_CV_PG_HOST" -p "$_CV_PG_PORT" -U postgres -d postgres "$@"
}

_cv_pg_server_installed() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null 2>&1
}

# Newest cluster version under /etc/postgresql (Debian layout), empty if none.
_cv_pg_cluster_version() {
    if [ -d /etc/postgresql ]; then
        # shellcheck disable=SC2012
        ls /etc/postgresql 2>/dev/null | sort -V | tail -1
    fi
}

_cv_pg_start() {
    local ver
    ver="$(_cv_pg_cluster_version)"
    if [ -z "$ver" ] && _cv_pg_server_installed && command -v pg_createcluster >/dev/null 2>&1; then
        # shellcheck disable=SC2012
        ver="$(ls /usr/lib/postgresql | sort -V | tail -1)"
        _cv_log "postgres: no cluster found, creating cluster $ver/main"
        _cv_as_root pg_createcluster "$ver" main || true
    fi
    # The socket directory lives on tmpfs on many machines.
    if [ ! -d /var/run/postgresql ] && getent passwd postgres >/dev/null 2>&1; then
        _cv_as_root install -d -m 2775 -o postgres -g postgres /var/run/postgresql || true
    fi
    if [ -n "$ver" ] && command -v pg_ctlcluster >/dev/null 2>&1; then
        _cv_log "postgres: pg_ctlcluster $ver main start"
        if _cv_as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start; then
            return 0
        fi
    fi
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        _cv_log "postgres: systemctl start postgresql"
        if _cv_as_root systemctl start postgresql; then return 0; fi
    fi
    if command -v service >/dev/null 2>&1; then
        _cv_log "postgres: service postgresql start"
        if _cv_as_root service postgresql start; then return 0; fi
    fi
    return 1
}

# Where initdb / pg_ctl live. Prefers the running server's major version.
# Sets and exports PG_BIN_DIR (and appends it to PATH) when found.
_cv_find_pg_bin_dir() {
    local major="${1:-}" dir="" d
    if [ -n "${PG_BIN_DIR:-}" ] && [ -x "$PG_BIN_DIR/initdb" ] && [ -x "$PG_BIN_DIR/pg_ctl" ]; then
        dir="$PG_BIN_DIR"
    elif [ -n "$major" ] && [ -x "/usr/lib/postgresql/$major/bin/initdb" ]; then
        dir="/usr/lib/postgresql/$major/bin"
    else
        # shellcheck disable=SC2012
        for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
            if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then dir="$d"; break; fi
        done
        if [ -z "$dir" ] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
            dir="$(dirname "$(command -v initdb)")"
        fi
        if [ -z "$dir" ] && command -v pg_config >/dev/null 2>&1; then
            d="$(pg_config --bindir 2>/dev/null || true)"
            if [ -n "$d" ] && [ -x "$d/initdb" ]; then dir="$d"; fi
        fi
    fi
    if [ -z "$dir" ]; then
        return 1
    fi
    export PG_BIN_DIR="$dir"
    case ":$PATH:" in
        *":$dir:"*) ;;
        *) export PATH="$PATH:$dir" ;;
    esac
    return 0
}

# Make role postgres reachable over TCP loopback without a password by putting
# `trust` rules for 127.0.0.1/32 and ::1/128 at the top of pg_hba.conf.
_cv_pg_trust_loopback() {
    local ver hba tmp
    ver="$(_cv_pg_cluster_version)"
    hba="$(_cv_as_postgres psql -X -A -t -q -c 'show hba_file' 2>/dev/null | head -1 || true)"
    if [ -z "$hba" ] && [ -n "$ver" ]; then
        hba="/etc/postgresql/$ver/main/pg_hba.conf"
    fi
    if [ -z "$hba" ] || ! _cv_as_root test -f "$hba"; then
        _cv_err "postgres: cannot find pg_hba.conf to allow passwordless loopback access"
        return 1
    fi
    if _cv_as_root grep -qF "$_CV_HBA_MARKER" "$hba"; then
        _cv_log "postgres: $hba already has Conveyor's trust rules"
    else
        tmp="$(mktemp)"
        {
            printf '%s\n' "$_CV_HBA_MARKER"
            printf 'host    all             all             127.0.0.1/32            trust\n'
            printf 'host    all             all             ::1/128                 trust\n'
            printf '\n'
            _cv_as_root cat "$hba"
        } >"$tmp" || { rm -f "$tmp"; return 1; }
        # cp onto the existing file keeps its owner and mode.
        if ! _cv_as_root cp "$tmp" "$hba"; then rm -f "$tmp"; return 1; fi
        rm -f "$tmp"
        _cv_log "postgres: LOCAL DEVELOPMENT ONLY: added to the top of $hba:"
        _cv_log "    host all all 127.0.0.1/32 trust"
        _cv_log "    host all all ::1/128      trust"
    fi
    _cv_log "postgres: reloading configuration"
    if ! _cv_as_postgres psql -X -q -c 'select pg_reload_conf()' >/dev/null 2>&1; then
        if [ -n "$ver" ] && command -v pg_ctlcluster >/dev/null 2>&1; then
            _cv_as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main reload || return 1
        else
            return 1
        fi
    fi
}

_cv_port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

ensure_postgres() {
    local did="" out major
    if ! command -v pg_isready >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
        if _cv_pg_server_installed || _cv_port_open "$_CV_PG_HOST" "$_CV_PG_PORT"; then
            _cv_log "postgres: client tools missing, installing postgresql-client"
            _cv_apt_install postgresql-client || return 1
        else
            _cv_log "postgres: not installed, installing"
            _cv_apt_install postgresql postgresql-contrib || return 1
        fi
        did="installed, "
    fi
    if ! _cv_pg_ready; then
        if ! _cv_pg_server_installed; then
            _cv_log "postgres: server not installed, installing"
            _cv_apt_install postgresql postgresql-contrib || return 1
            did="installed, "
        fi
        # The package may have started its cluster already.
        if ! _cv_pg_ready; then
            _cv_pg_start || _cv_log "postgres: start commands failed, waiting anyway"
            did="${did}started, "
        fi
        for _ in $(seq 1 60); do
            if _cv_pg_ready; then break; fi
            sleep 0.5
        done
        if ! _cv_pg_ready; then
            _cv_err "postgres: not accepting connections on $_CV_PG_HOST:$_CV_PG_PORT after 30 s"
            return 1
        fi
    fi
    if ! out="$(_cv_psql -A -t -c "select current_setting('server_version_num')" 2>&1)"; then
        _cv_log "postgres: role postgres cannot connect over TCP without a password (${out//$'\n'/ })"
        _cv_pg_trust_loopback || return 1
        did="${did}trusted loopback, "
        for _ in $(seq 1 20); do
            if out="$(_cv_psql -A -t -c "select current_setting('server_version_num')" 2>&1)"; then break; fi
            sleep 0.25
        done
        if ! out="$(_cv_psql -A -t -c "select current_setting('server_version_num')" 2>&1)"; then
            _cv_err "postgres: still cannot connect as postgres@$_CV_PG_HOST:$_CV_PG_PORT: $out"
            return 1
        fi
    fi
    out="${out//[^0-9]/}"
    major=$(( ${out:-0} / 10000 ))
    if _cv_find_pg_bin_dir "$major"; then
        _cv_log "postgres: ${did}ready on $_CV_PG_HOST:$_CV_PG_PORT (version $major, PG_BIN_DIR=$PG_BIN_DIR)"
    else
        _cv_log "postgres: ${did}ready on $_CV_PG_HOST:$_CV_PG_PORT (version $major; warning: initdb/pg_ctl not found, PG_BIN_DIR unset)"
    fi
}

ensure_database() {
    local name="${1:?ensure_database needs a database name}" found out
    found="$(printf "select 1 from pg_database where datname = :'dbname';\n" |
        _cv_psql -A -t -v dbname="$name" 2>&1)" || {
        _cv_err "database: cannot query pg_database: $found"
        return 1
    }
    if [ "$found" = "1" ]; then
        _cv_log "database: $name exists"
        return 0
    fi
    if ! out="$(createdb -w -h "$_CV_PG_HOST" -p "$_CV_PG_PORT" -U postgres "$name" 2>&1)"; then
        # Another process may have created it in the meantime.
        case "$out" in
            *"already exists"*) _cv_log "database: $name exists"; return 0 ;;
        esac
        _cv_err "database: createdb $name failed: $out"
        return 1
    fi
    _cv_log "database: created $name"
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

_cv_redis_ping() {
    local reply=""
    if command -v redis-cli >/dev/null 2>&1; then
        reply="$(redis-cli -h "$_CV_REDIS_HOST" -p "$_CV_REDIS_PORT" ping 2>/dev/null || true)"
    else
        # No client installed: speak RESP over bash's /dev/tcp.
        reply="$( (exec 3<>"/dev/tcp/$_CV_REDIS_HOST/$_CV_REDIS_PORT" &&
            printf 'PING\r\n' >&3 && IFS= read -r -t 2 line <&3 && printf '%s' "${line%$'\r'}") 2>/dev/null || true)"
        reply="${reply#+}"
    fi
    [ "$reply" = "PONG" ]
}

# A writable directory for a Redis we start ourselves.
_cv_redis_dir() {
    local d="${CONVEYOR_REDIS_DIR:-${XDG_STATE_HOME:-${HOME:-/tmp}/.local/state}/conveyor/redis}"
    if mkdir -p "$d" 2>/dev/null && [ -w "$d" ]; then
        printf '%s' "$d"
        return 0
    fi
    d="${TMPDIR:-/tmp}/conveyor-redis-$(id -u)"
    mkdir -p "$d" && printf '%s' "$d"
}

ensure_redis() {
    local did="" dir ver bind
    if _cv_redis_ping; then
        _cv_log "redis: ready on $_CV_REDIS_HOST:$_CV_REDIS_PORT"
        return 0
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        _cv_log "redis: not installed, installing"
        _cv_apt_install redis-server || return 1
        did="installed, "
        # The package may have started its own service already.
        for _ in $(seq 1 6); do
            if _cv_redis_ping; then
                _cv_log "redis: ${did}ready on $_CV_REDIS_HOST:$_CV_REDIS_PORT"
                return 0
            fi
            sleep 0.5
        done
    fi
    dir="$(_cv_redis_dir)" || return 1
    # "-::1" (IPv6 loopback if available) needs Redis >= 6.2.
    ver="$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')"
    bind=(127.0.0.1)
    if [ -n "$ver" ] && { [ "${ver% *}" -gt 6 ] || { [ "${ver% *}" -eq 6 ] && [ "${ver#* }" -ge 2 ]; }; }; then
        bind=(127.0.0.1 -::1)
    fi
    _cv_log "redis: starting redis-server on $_CV_REDIS_HOST:$_CV_REDIS_PORT (dir $dir)"
    redis-server --daemonize yes --bind "${bind[@]}" --port "$_CV_REDIS_PORT" \
        --save "" --appendonly no --dir "$dir" --logfile "$dir/redis.log" \
        --pidfile "$dir/redis.pid" || true
    did="${did}started, "
    for _ in $(seq 1 30); do
        if _cv_redis_ping; then
            _cv_log "redis: ${did}ready on $_CV_REDIS_HOST:$_CV_REDIS_PORT (log $dir/redis.log)"
            return 0
        fi
        sleep 0.5
    done
    _cv_err "redis: not answering PING on $_CV_REDIS_HOST:$_CV_REDIS_PORT after 15 s; last log lines:"
    tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
    return 1
}

# ---------------------------------------------------------------------------
# URL-driven variants: manage the local default servers, leave others alone.
# ---------------------------------------------------------------------------

# _cv_parse_url URL -> sets _cv_url_host, _cv_url_port, _cv_url_path
_cv_parse_url() {
    local rest="${1#*://}" hostport
    rest="${rest%%\?*}"
    hostport="${rest%%/*}"
    _cv_url_path=""
    case "$rest" in */*) _cv_url_path="${rest#*/}" ;; esac
    hostport="${hostport##*@}"
    case "$hostport" in
        \[*\]:*) _cv_url_host="${hostport%%]*}"; _cv_url_host="${_cv_url_host#[}"; _cv_url_port="${hostport##*]:}" ;;
        \[*\]) _cv_url_host="${hostport#[}"; _cv_url_host="${_cv_url_host%]}"; _cv_url_port="" ;;
        *:*) _cv_url_host="${hostport%%:*}"; _cv_url_port="${hostport#*:}" ;;
        *) _cv_url_host="$hostport"; _cv_url_port="" ;;
    esac
}

_cv_is_loopback() {
    case "$1" in 127.0.0.1 | localhost | ::1 | "") return 0 ;; *) return 1 ;; esac
}

# ensure_postgres_for_url URL: local default server -> ensure_postgres and the
# URL's database; anything else -> use as is (only PG_BIN_DIR is looked up).
ensure_postgres_for_url() {
    _cv_parse_url "$1"
    if _cv_is_loopback "$_cv_url_host" && [ "${_cv_url_port:-5432}" = "$_CV_PG_PORT" ]; then
        ensure_postgres || return 1
        if [ -n "$_cv_url_path" ]; then
            ensure_database "$_cv_url_path" || return 1
        fi
    else
        _cv_find_pg_bin_dir || true
        _cv_log "postgres: using $_cv_url_host:${_cv_url_port:-5432} from DATABASE_URL as is (PG_BIN_DIR=${PG_BIN_DIR:-unset})"
    fi
}

ensure_redis_for_url() {
    _cv_parse_url "$1"
    if _cv_is_loopback "$_cv_url_host" && [ "${_cv_url_port:-6379}" = "$_CV_REDIS_PORT" ]; then
        ensure_redis
    else
        _cv_log "redis: using $_cv_url_host:${_cv_url_port:-6379} from REDIS_URL as is"
    fi
}

# ---------------------------------------------------------------------------
# Rust toolchain
# ---------------------------------------------------------------------------

ensure_rust() {
    local want_nextest=1 did=""
    if [ "${1:-}" = "--without-nextest" ]; then want_nextest=0; fi
    if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/nonexistent}/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
        did="added ~/.cargo/bin to PATH, "
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        cat >&2 <<'EOF'
[conveyor] error: the Rust toolchain (cargo) is not installed. Install it with rustup:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    . "$HOME/.cargo/env"
  (see https://rustup.rs), then run this script again.
EOF
        exit 1
    fi
    # Linking needs a C toolchain (cc); a fresh Debian/Ubuntu has none.
    if ! command -v cc >/dev/null 2>&1; then
        _cv_log "rust: no C compiler/linker (cc), installing build-essential"
        _cv_apt_install build-essential || return 1
        did="${did}installed build-essential, "
    fi
    if [ "$want_nextest" -eq 1 ] && ! cargo nextest --version >/dev/null 2>&1; then
        _cv_log "rust: installing cargo-nextest (cargo install cargo-nextest --locked)"
        cargo install cargo-nextest --locked || return 1
        did="${did}installed cargo-nextest, "
    fi
    _cv_log "rust: ${did}$(cargo --version 2>/dev/null || echo cargo)"
}
