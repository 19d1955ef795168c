#!/bin/bash
#
# pg_server.sh -- a throwaway PostgreSQL 15 server for tests.
#
#   pg_server.sh start DIR   initdb into DIR/data, start postgres on a free
#                            127.0.0.1 port with its unix socket in DIR, and
#                            print, once it accepts connections:
#                              dsn postgresql://postgres@127.0.0.1:PORT/postgres
#                              pid PID
#   pg_server.sh stop DIR    fast shutdown (SIGINT) with a bounded wait, then
#                            SIGKILL; remove DIR
#   pg_server.sh halt DIR    stop the server the hard way, as a crash would
#                            (pg_ctl stop -m immediate: connections are cut,
#                            nothing is flushed); the data and the port
#                            (DIR/port) are kept
#   pg_server.sh resume DIR  start a halted server again on the SAME port
#                            (crash recovery runs) and print dsn/pid as start
#                            does; fails when the port was taken meanwhile
#
# Tests run as root and PostgreSQL refuses to run as root, so as root the
# server runs as the `postgres` OS user (Debian's `postgresql` package
# creates it) and DIR is made its own; DIR's parent must be traversable by
# that user (/tmp is). As any other user it runs as that user. Trust auth on
# loopback and the socket: this is a test server.
#
# The port: a random one that nothing answers on, then the server itself
# binds it; if another process took it meanwhile the server exits at once
# ("could not bind") and we try another port. Readiness is polled through the
# server's own unix socket in DIR (so a different server that happens to own
# the TCP port cannot be mistaken for ours), with a deadline.
#
# Environment: PG_BIN (default /usr/lib/postgresql/15/bin), PG_START_TIMEOUT
# (seconds, default 60), PG_EXTRA_OPTS (more postgres options, split on
# blanks, e.g. "-c shared_buffers=512MB -c synchronous_commit=on"; kept in
# DIR/options at start, and used again by resume), PG_SSL_CERT and
# PG_SSL_KEY (a server certificate and its unencrypted key: copied into DIR
# as server.crt / server.key, owned by the server's user, mode 0600, and
# the server runs with ssl=on; loopback connections may then use TLS or
# not, as the client's sslmode says).
set -u

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
START_TIMEOUT=${PG_START_TIMEOUT:-60}
STOP_TIMEOUT=20

die() {
    echo "pg_server.sh: $*" >&2
    exit 1
}

# Run a command as the server's OS user.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        "$@"
    fi
}

now_ms() { date +%s%3N; }

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM + $$) % 40000))
        if ! port_in_use "$p"; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Start the server on $1; 0 when ready (prints dsn/pid), 2 when the port was
# taken (retry), 1 on any other failure.
try_start() {
    local dir=$1 port=$2 pid deadline extra
    : >"$dir/server.log"
    chown postgres: "$dir/server.log" 2>/dev/null
    read -r -a extra <"$dir/options"
    as_pg "$PG_BIN/postgres" -D "$dir/data" -k "$dir" -p "$port" \
        -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=40 \
        -c shared_buffers=16MB -c logging_collector=off "${extra[@]}" \
        </dev/null >>"$dir/server.log" 2>&1 &
    pid=$!
    deadline=$(($(now_ms) + START_TIMEOUT * 1000))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null
            if grep -q "could not bind\|could not create any TCP/IP" \
                "$dir/server.log"; then
                return 2
            fi
            echo "pg_server.sh: postgres exited during start:" >&2
            tail -n 20 "$dir/server.log" >&2
            return 1
        fi
        if "$PG_BIN/pg_isready" -q -h "$dir" -p "$port" -t 1 \
            -U postgres -d postgres; then
            # $pid is the subshell around setpriv: the postmaster's own
            # PID is the first line of its pid file.
            pid=$(head -n 1 "$dir/data/postmaster.pid") || return 1
            echo "$pid" >"$dir/server.pid"
            echo "$port" >"$dir/port"
            echo "dsn postgresql://postgres@127.0.0.1:$port/postgres"
            echo "pid $pid"
            return 0
        fi
        if [ "$(now_ms)" -ge "$deadline" ]; then
            echo "pg_server.sh: postgres not ready after ${START_TIMEOUT}s" >&2
            tail -n 20 "$dir/server.log" >&2
            kill -KILL "$pid" 2>/dev/null
            return 1
        fi
        sleep 0.05
    done
}

start() {
    local dir=$1 port attempt rc
    [ -x "$PG_BIN/postgres" ] || die "no $PG_BIN/postgres (apt-get install postgresql)"
    mkdir -p "$dir" || die "could not create $dir"
    [ -e "$dir/data" ] && die "$dir/data already exists"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "no postgres OS user"
        chown postgres: "$dir" || die "could not chown $dir"
        chmod 700 "$dir"
    fi
    if ! as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        die "initdb into $dir/data failed"
    fi
    local opts=${PG_EXTRA_OPTS:-}
    if [ -n "${PG_SSL_CERT:-}" ] || [ -n "${PG_SSL_KEY:-}" ]; then
        [ -r "${PG_SSL_CERT:-}" ] && [ -r "${PG_SSL_KEY:-}" ] ||
            die "PG_SSL_CERT and PG_SSL_KEY must both name readable files"
        install -m 600 "$PG_SSL_CERT" "$dir/server.crt" &&
            install -m 600 "$PG_SSL_KEY" "$dir/server.key" ||
            die "could not copy the certificate into $dir"
        if [ "$(id -u)" = 0 ]; then
            chown postgres: "$dir/server.crt" "$dir/server.key"
        fi
        opts="$opts -c ssl=on -c ssl_cert_file=$dir/server.crt"
        opts="$opts -c ssl_key_file=$dir/server.key"
    fi
    echo "$opts" >"$dir/options"
    for attempt in 1 2 3 4 5 6 7 8; do
        port=$(pick_port) || die "no free port on 127.0.0.1"
        try_start "$dir" "$port"
        rc=$?
        [ "$rc" = 0 ] && return 0
        [ "$rc" = 2 ] || exit 1
    done
    die "could not bind a port after $attempt attempts"
}

# Is $1 still a postgres process?
# Is $1 still a running postgres process? (A zombie is not: its parent may
# be a PID 1 that does not reap.)
is_postgres() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    case "$stat" in
    *"(postgres) Z"* | *"(postmaster) Z"*) return 1 ;;
    *"(postgres) "* | *"(postmaster) "*) return 0 ;;
    esac
    return 1
}

stop() {
    local dir=$1 pid deadline
    [ -d "$dir" ] || return 0
    if [ -e "$dir" ] && [ ! -e "$dir/data" ] && [ ! -e "$dir/server.pid" ]; then
        # Not made by start: refuse to remove someone else's directory.
        [ -z "$(ls -A "$dir")" ] || die "$dir is not a pg_server.sh directory"
    fi
    for pid in $(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null) \
        $(cat "$dir/server.pid" 2>/dev/null); do
        if is_postgres "$pid"; then
            kill -INT "$pid" 2>/dev/null
            deadline=$(($(now_ms) + STOP_TIMEOUT * 1000))
            while is_postgres "$pid" && [ "$(now_ms)" -lt "$deadline" ]; do
                sleep 0.05
            done
            if is_postgres "$pid"; then
                echo "pg_server.sh: postgres $pid ignored SIGINT, killing" >&2
                kill -KILL "$pid" 2>/dev/null
                deadline=$(($(now_ms) + 5000))
                while is_postgres "$pid" && [ "$(now_ms)" -lt "$deadline" ]; do
                    sleep 0.05
                done
            fi
        fi
    done
    rm -rf "$dir"
}

# The port the server of $1 was started on.
port_of() {
    local port
    port=$(cat "$1/port" 2>/dev/null) || die "$1 has no server (no $1/port)"
    [ -n "$port" ] || die "$1/port is empty"
    echo "$port"
}

halt() {
    local dir=$1 pid deadline
    port_of "$dir" >/dev/null || exit 1
    pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
    [ -n "$pid" ] && is_postgres "$pid" || die "no server running in $dir"
    as_pg "$PG_BIN/pg_ctl" stop -D "$dir/data" -m immediate -w \
        -t "$STOP_TIMEOUT" >>"$dir/server.log" 2>&1 ||
        die "pg_ctl stop -m immediate failed (see $dir/server.log)"
    # pg_ctl waited for the pid file to go; wait for the process too
    deadline=$(($(now_ms) + STOP_TIMEOUT * 1000))
    while is_postgres "$pid"; do
        [ "$(now_ms)" -lt "$deadline" ] || die "postgres $pid did not exit"
        sleep 0.05
    done
}

resume() {
    local dir=$1 port pid
    port=$(port_of "$dir") || exit 1
    pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
    if [ -n "$pid" ] && is_postgres "$pid"; then
        die "the server in $dir is running (pid $pid)"
    fi
    try_start "$dir" "$port"
    case $? in
    0) return 0 ;;
    2) die "port $port is taken: cannot resume on it" ;;
    *) exit 1 ;;
    esac
}

case "${1:-}" in
start | stop | halt | resume)
    [ $# = 2 ] || die "usage: pg_server.sh $1 DIR"
    "$1" "$2"
    ;;
*)
    die "usage: pg_server.sh start|stop|halt|resume DIR"
    ;;
esac
