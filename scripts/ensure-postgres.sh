#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at TEST_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres, trust auth), the server the test
# suites create their throwaway databases on.
#
#   scripts/ensure-postgres.sh         ensure a server answers (idempotent)
#   scripts/ensure-postgres.sh stop    stop the throwaway server this script started
#   scripts/ensure-postgres.sh binaries  make sure initdb/pg_ctl are installed (the
#                                      platform-db TLS tests start servers of their own)
#
# If something already accepts connections at the URL's host and port, nothing is
# done. Otherwise a throwaway cluster is started from target/tools/pgdata (created
# with initdb on first use, trust auth, TCP only, fsync off), installing Debian's
# `postgresql` package first if no initdb/pg_ctl can be found. The URL's host must
# then be local (127.0.0.1, localhost or ::1); its port is the one listened on, so
#   TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:55432/postgres scripts/ensure-postgres.sh
# starts one beside a server already on 5432.
#
# Environment: TEST_POSTGRES_URL; PG_TEST_WAIT_SECS (default 30) bounds every wait;
# PG_TEST_OS_USER (default postgres) is the account the server runs as when this
# script runs as root (PostgreSQL refuses to run as root); it is created if missing.
#
# Prints one line saying what it did; details of a start go to target/tools/pg.log.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
TOOLS_DIR=$ROOT/target/tools
WAIT_SECS=${PG_TEST_WAIT_SECS:-30}
OS_USER=${PG_TEST_OS_USER:-postgres}

die() {
    echo "ensure-postgres: $*" >&2
    exit 1
}

# --- The URL: postgres[ql]://[user[:password]@]host[:port][/database][?params] ---
parse_url() {
    local rest authority hostport path
    [[ $URL == postgres://* || $URL == postgresql://* ]] ||
        die "TEST_POSTGRES_URL must start with postgres:// or postgresql:// (got '$URL')"
    rest=${URL#*://}
    authority=${rest%%[/?]*}
    path=${rest#"$authority"}
    hostport=$authority
    DB_USER=
    if [[ $authority == *@* ]]; then
        DB_USER=${authority%@*}
        DB_USER=${DB_USER%%:*}
        hostport=${authority##*@}
    fi
    DB_USER=${DB_USER:-postgres}
    PORT=
    if [[ $hostport == \[* ]]; then # [::1]:5432
        HOST=${hostport#\[}
        HOST=${HOST%%\]*}
        PORT=${hostport##*\]}
        PORT=${PORT#:}
    else
        HOST=${hostport%%:*}
        if [[ $hostport == *:* ]]; then PORT=${hostport##*:}; fi
    fi
    HOST=${HOST:-127.0.0.1}
    PORT=${PORT:-5432}
    [[ $PORT =~ ^[0-9]+$ ]] || die "bad port '$PORT' in TEST_POSTGRES_URL"
    path=${path#/}
    DB_NAME=${path%%\?*}
    DB_NAME=${DB_NAME:-$DB_USER}
}

# 0: accepting connections; 1: up but rejecting (starting or stopping); 2: nothing.
probe() {
    local isready
    isready=$(command -v pg_isready || true)
    if [[ -z $isready && -n ${PG_BIN:-} && -x $PG_BIN/pg_isready ]]; then
        isready=$PG_BIN/pg_isready
    fi
    if [[ -n $isready ]]; then
        local rc=0
        "$isready" -q -h "$HOST" -p "$PORT" -t 3 >/dev/null 2>&1 || rc=$?
        case $rc in
        0) return 0 ;;
        1) return 1 ;;
        *) return 2 ;;
        esac
    fi
    # No client tools: a TCP connect is the best we can do.
    # shellcheck disable=SC2016 # expanded by the inner bash
    if timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$HOST" "$PORT" 2>/dev/null; then
        return 0
    fi
    return 2
}

# Waits until the server accepts connections; false after WAIT_SECS.
wait_ready() {
    local deadline=$((SECONDS + WAIT_SECS))
    until probe; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

is_local_host() {
    [[ $HOST == 127.0.0.1 || $HOST == localhost || $HOST == ::1 ]]
}

# Sets PG_BIN to a folder holding initdb and pg_ctl (symlinks resolved, so psql and
# pg_isready of the same version sit beside them); false when there is none.
find_pg_bin() {
    local candidates=() dir
    if command -v initdb >/dev/null 2>&1; then
        candidates+=("$(dirname "$(command -v initdb)")")
    fi
    candidates+=(/usr/local/bin)
    # Newest version first.
    while IFS= read -r dir; do
        candidates+=("$dir")
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5 -rn)
    for dir in "${candidates[@]}"; do
        if [[ -x $dir/initdb && -x $dir/pg_ctl ]]; then
            PG_BIN=$(dirname "$(readlink -f "$dir/initdb")")
            [[ -x $PG_BIN/pg_ctl ]] || PG_BIN=$dir
            return 0
        fi
    done
    return 1
}

install_postgres() {
    ((EUID == 0)) || die "no initdb/pg_ctl found; install PostgreSQL (Debian: apt-get install postgresql) or run as root"
    command -v apt-get >/dev/null 2>&1 || die "no initdb/pg_ctl found and no apt-get to install PostgreSQL with"
    mkdir -p "$TOOLS_DIR"
    echo "== $(date -u +%FT%TZ) installing Debian's postgresql" >>"$TOOLS_DIR/pg.log"
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
    } </dev/null >>"$TOOLS_DIR/pg.log" 2>&1 ||
        die "installing postgresql failed; see $TOOLS_DIR/pg.log"
    # The package may have created and started its own 'main' cluster, which uses
    # password auth over TCP. It did not exist before (there was no initdb at all),
    # so stop it: the throwaway cluster below is the one the tests get.
    if command -v pg_lsclusters >/dev/null 2>&1; then
        local version name _rest
        while read -r version name _rest; do
            [[ -n $version && -n $name ]] || continue
            pg_ctlcluster --skip-systemctl-redirect "$version" "$name" stop \
                >>"$TOOLS_DIR/pg.log" 2>&1 || true
        done < <(pg_lsclusters -h 2>/dev/null || true)
    fi
}

# Runs a command as the account the server runs as.
as_server() {
    if ((EUID == 0)); then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u "$OS_USER" -- "$@"
        else
            setpriv --reuid="$OS_USER" --regid="$OS_USER" --init-groups -- "$@"
        fi
    else
        "$@"
    fi
}

ensure_os_user() {
    ((EUID == 0)) || return 0
    if ! id -u "$OS_USER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$OS_USER"
    fi
}

# The data folder and log: target/tools/pgdata and target/tools/pg.log, unless the
# server's account cannot reach that folder (a checkout under a private home folder,
# say); then a folder of its own under /tmp, named after this checkout.
fallback_dir() {
    echo "${TMPDIR:-/tmp}/ensure-postgres-$(printf %s "$ROOT" | cksum | cut -d' ' -f1)"
}

choose_data_dir() {
    mkdir -p "$TOOLS_DIR"
    PGDATA_DIR=$TOOLS_DIR/pgdata
    PG_LOG=$TOOLS_DIR/pg.log
    if ((EUID == 0)) && ! as_server test -x "$TOOLS_DIR" 2>/dev/null; then
        local dir
        dir=$(fallback_dir)
        mkdir -p "$dir"
        chown "$OS_USER:" "$dir"
        chmod 700 "$dir"
        PGDATA_DIR=$dir/pgdata
        PG_LOG=$dir/pg.log
    fi
    mkdir -p "$PGDATA_DIR"
    chmod 700 "$PGDATA_DIR"
    touch "$PG_LOG"
    if ((EUID == 0)); then
        chown -R "$OS_USER:" "$PGDATA_DIR"
        chown "$OS_USER:" "$PG_LOG"
    fi
}

# Postgres quotes for an identifier and a literal.
quote_ident() { printf '"%s"' "${1//\"/\"\"}"; }
quote_literal() { printf "'%s'" "${1//\'/\'\'}"; }

psql_admin() {
    "$PG_BIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U postgres -d postgres -c "$1"
}

ensure_roles_and_database() {
    local role
    for role in postgres "$DB_USER"; do
        psql_admin "DO \$\$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $(quote_literal "$role")) THEN
                CREATE ROLE $(quote_ident "$role") SUPERUSER LOGIN;
            END IF;
        END \$\$;" >>"$PG_LOG" 2>&1 || die "cannot create role $role; see $PG_LOG"
    done
    if [[ -z $(psql_admin "SELECT 1 FROM pg_database WHERE datname = $(quote_literal "$DB_NAME")" 2>>"$PG_LOG") ]]; then
        psql_admin "CREATE DATABASE $(quote_ident "$DB_NAME") OWNER $(quote_ident "$DB_USER")" \
            >>"$PG_LOG" 2>&1 || die "cannot create database $DB_NAME; see $PG_LOG"
    fi
}

start_throwaway() {
    local did=() listen
    if ! find_pg_bin; then
        install_postgres
        find_pg_bin || die "installed postgresql but still found no initdb/pg_ctl"
        did+=("installed Debian's postgresql")
        # Installing may have started a packaged cluster; it was stopped again.
        if probe; then die "something still answers on $HOST:$PORT after installing postgresql"; fi
    fi
    ensure_os_user
    choose_data_dir
    case $HOST in
    localhost) listen=localhost ;;
    ::1) listen=::1 ;;
    *) listen=127.0.0.1 ;;
    esac
    echo "== $(date -u +%FT%TZ) ensure-postgres: $PG_BIN, $PGDATA_DIR, $HOST:$PORT" >>"$PG_LOG"
    if [[ ! -s $PGDATA_DIR/PG_VERSION ]]; then
        # A half-made folder from an interrupted initdb would make initdb refuse.
        find "$PGDATA_DIR" -mindepth 1 -delete
        as_server "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust \
            --encoding=UTF8 --no-locale --no-instructions </dev/null >>"$PG_LOG" 2>&1 ||
            die "initdb failed; see $PG_LOG"
        # A test server: TCP only (no socket folder to own), and no durability.
        cat >>"$PGDATA_DIR/postgresql.conf" <<EOF

# Added by scripts/ensure-postgres.sh: a throwaway server for tests.
listen_addresses = '$listen'
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
        did+=("created a cluster")
    else
        # The listen address follows the URL's host on every start.
        sed -i "s/^listen_addresses = .*/listen_addresses = '$listen'/" "$PGDATA_DIR/postgresql.conf"
    fi
    local pg_ctl=("$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PG_LOG" -w -t "$WAIT_SECS" -o "-p $PORT")
    if as_server "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
        # Running, but not answering on this port: started for another port before.
        as_server "${pg_ctl[@]}" -m fast restart </dev/null >>"$PG_LOG" 2>&1 ||
            die "pg_ctl restart failed; see $PG_LOG"
        did+=("restarted it")
    else
        as_server "${pg_ctl[@]}" start </dev/null >>"$PG_LOG" 2>&1 || {
            tail -n 20 "$PG_LOG" >&2
            die "pg_ctl start failed; see $PG_LOG"
        }
        did+=("started it")
    fi
    wait_ready || {
        tail -n 20 "$PG_LOG" >&2
        die "the server started but does not answer on $HOST:$PORT within ${WAIT_SECS}s; see $PG_LOG"
    }
    ensure_roles_and_database
    local version summary
    version=$("$PG_BIN/postgres" --version 2>/dev/null | awk '{print $3}')
    summary=$(printf '%s, ' "${did[@]}")
    echo "ensure-postgres: ${summary%, }: throwaway PostgreSQL ${version:-?} at $HOST:$PORT (data ${PGDATA_DIR#"$ROOT"/}, log ${PG_LOG#"$ROOT"/})"
}

stop_throwaway() {
    local dir stopped=()
    find_pg_bin || {
        echo "ensure-postgres: no PostgreSQL installed; nothing to stop"
        return 0
    }
    for dir in "$TOOLS_DIR/pgdata" "$(fallback_dir)/pgdata"; do
        [[ -s $dir/PG_VERSION ]] || continue
        local owner
        owner=$(stat -c %U "$dir")
        if ((EUID == 0)); then OS_USER=$owner; fi
        if as_server "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
            as_server "$PG_BIN/pg_ctl" -D "$dir" -m fast -w -t "$WAIT_SECS" stop </dev/null >/dev/null
            stopped+=("$dir")
        fi
    done
    if ((${#stopped[@]})); then
        echo "ensure-postgres: stopped the throwaway server in ${stopped[*]}"
    else
        echo "ensure-postgres: no throwaway server running; nothing to stop"
    fi
}

# The server binaries, even when a server already answers at the URL: tests that need
# a server configured their own way (TLS) start one from them.
ensure_binaries() {
    if ! find_pg_bin; then
        install_postgres
        find_pg_bin || die "installed postgresql but still found no initdb/pg_ctl"
        echo "ensure-postgres: installed Debian's postgresql"
    fi
    ensure_os_user
    echo "ensure-postgres: server binaries in $PG_BIN"
}

main() {
    case ${1:-ensure} in
    ensure) ;;
    stop)
        stop_throwaway
        return
        ;;
    binaries)
        ensure_binaries
        return
        ;;
    *) die "usage: $0 [ensure|stop|binaries]" ;;
    esac
    parse_url
    local rc=0
    probe || rc=$?
    if ((rc == 1)); then
        # A server is starting (or stopping): give it the usual time.
        wait_ready || die "a server at $HOST:$PORT rejects connections for over ${WAIT_SECS}s"
        rc=0
    fi
    if ((rc == 0)); then
        echo "ensure-postgres: a server already answers at $HOST:$PORT; nothing to do"
        return 0
    fi
    is_local_host || die "nothing answers at $HOST:$PORT, and a server can only be started for 127.0.0.1, localhost or ::1"
    start_throwaway
}

main "$@"
