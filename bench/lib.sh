# bench/lib.sh -- shell functions shared by the benchmark scripts (sourced).
#
# Callers set TMP (a temp dir) before using field/phase, and keep the PIDs
# they start in PIDS (an array) so cleanup_pids can stop them.

die() { echo "bench: $*" >&2; exit 1; }

need_exec() {
    local b
    for b in "$@"; do
        if [[ ! -x $b ]]; then
            echo "bench: cannot find executable $b (build first, or set" \
                 "the variable that names it)" >&2
            exit 2
        fi
    done
}

# pick_ports N: N distinct free 127.0.0.1 ports on one line (nothing answers
# a connect). Below the kernel's ephemeral range (32768 by default): a port
# in it can be the local end of an outgoing connection (the poll's, psql's,
# librdkafka's) between this check and halo's bind, and the bind then fails
# with "address already in use" (seen twice in a session of kafka.sh runs).
# Usage: read -r A B < <(pick_ports 2); [[ -n $B ]] || die ...
pick_ports() {
    local p lo=32768 span picked=" " n=0
    read -r lo _ 2>/dev/null </proc/sys/net/ipv4/ip_local_port_range || true
    span=$((lo - 20000))
    ((span >= 1000)) || span=40000 # an unusual range: the old behaviour
    for _ in $(seq $((100 * $1))); do
        ((n < $1)) || break
        p=$((20000 + RANDOM % span))
        [[ $picked == *" $p "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            picked+="$p "
            n=$((n + 1))
        fi
    done
    ((n == $1)) || die "could not find $1 free ports"
    echo "${picked# }"
}

# wait_healthy PID PORT LOG: until the health_check extension answers.
wait_healthy() {
    local pid=$1 port=$2 log=$3 deadline=$((SECONDS + 20))
    until curl -sf -o /dev/null "http://127.0.0.1:$port/"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$log" >&2
            die "halo serve (pid $pid) exited during start"
        fi
        ((SECONDS < deadline)) || {
            cat "$log" >&2
            die "halo did not report healthy on 127.0.0.1:$port in 20 s"
        }
        sleep 0.1
    done
}

# stop_pid PID: SIGTERM, wait up to 30 s; sets STOP_RC to the exit status,
# or "timeout" (then the process is killed). Not in a $(...): the process
# must be a child of this shell to be reaped.
stop_pid() {
    local pid=$1 deadline=$((SECONDS + 30))
    STOP_RC=0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        STOP_RC=timeout
        return
    fi
    wait "$pid" || STOP_RC=$?
}

# kill -9 and reap every PID in PIDS that is still running.
cleanup_pids() {
    local p
    for p in ${PIDS[@]+"${PIDS[@]}"}; do
        if kill -0 "$p" 2>/dev/null; then
            kill -KILL "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
}

# Value of a numeric field of a one-line JSON result $TMP/NAME.json.
field() { sed -n "s/.*\"$2\":\\([-0-9.]*\\).*/\\1/p" "$TMP/$1.json"; }

# The machine is shared: say how busy it was, so figures can be judged.
load() {
    local psi=""
    [[ -r /proc/pressure/cpu ]] &&
        psi=", cpu pressure $(sed -n 's/^some avg10=\([0-9.]*\).*/\1/p' \
            /proc/pressure/cpu)%"
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg)$psi"
}

# metric_poll PORT NAME: the sum of a Prometheus sample family (all label
# sets; integer samples) from a metrics port, into METRIC, without starting
# a process: bash's /dev/tcp and builtins only, for loops that poll while a
# benchmark measures (curl + awk + date cost ~8.5 ms of CPU per poll, ~4%
# of this machine at 10 polls a second). The page is read whole (`read -N`
# reads a socket by blocks; line by line, bash reads it one byte per
# read(2): ~1.6% of this machine at 10 polls a second) and split in memory.
# Returns 1 when the port does not answer.
metric_poll() {
    local fd page="" line v sum=0 IFS
    local -
    set -f
    # shellcheck disable=SC2034 # METRIC is read by the caller
    METRIC=0
    # braces: on exec itself, 2>/dev/null would silence the shell for good
    { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&"$fd"
    # (a reset connection leaves page empty: the sum is then 0; no -t: with
    # a timeout bash spends 7x the CPU on the same read)
    IFS= read -r -d '' -N 16777216 -u "$fd" page || true
    exec {fd}>&-
    IFS=$'\n'
    for line in $page; do
        case $line in
        "$2 "* | "$2{"*)
            v=${line##* }
            v=${v%%.*}
            v=${v%$'\r'}
            [[ $v =~ ^[0-9]+$ ]] && sum=$((sum + v))
            ;;
        esac
    done
    # shellcheck disable=SC2034
    METRIC=$sum
}

# nap SECONDS: sleep without starting a process (read's timeout on a FIFO
# nobody writes; made once per shell in $TMP).
nap() {
    if [[ -z ${NAP_FD:-} ]]; then
        if ! mkfifo "$TMP/.nap" || ! exec {NAP_FD}<>"$TMP/.nap"; then
            sleep "$1"
            return
        fi
    fi
    read -r -t "$1" -u "$NAP_FD" _ || true
}

# phase_table PHASE...: one line per phase of $TMP/PHASE.json (loadgen
# results): spans/s, latency percentiles, answers, the daemon's CPU.
phase_table() {
    local p cpu secs acked
    printf '%-5s %9s %8s %8s %8s %8s %7s %7s %8s %8s\n' phase spans/s p50_ms \
        p90_ms p99_ms max_ms ok failed halo_cpu us/span
    for p in "$@"; do
        cpu=$(field "$p" daemon_cpu_s)
        secs=$(field "$p" elapsed_s)
        acked=$(field "$p" spans_acked)
        printf '%-5s %9s %8s %8s %8s %8s %7s %7s %7s%% %8s\n' "$p" \
            "$(field "$p" spans_per_s)" "$(field "$p" p50)" \
            "$(field "$p" p90)" "$(field "$p" p99)" "$(field "$p" max)" \
            "$(field "$p" requests_ok)" "$(field "$p" requests_failed)" \
            "$(awk -v c="$cpu" -v s="$secs" \
                'BEGIN { printf "%.0f", 100 * c / s }')" \
            "$(awk -v c="$cpu" -v n="$acked" \
                'BEGIN { printf "%.1f", (n > 0 ? 1e6 * c / n : 0) }')"
    done
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# target NAME VALUE OP LIMIT UNIT: print a figure against its target; a miss
# is appended to MISSED.
target() {
    local ok
    ok=$(awk -v v="$2" -v l="$4" -v op="$3" \
        'BEGIN { ok = op == ">=" ? (v >= l) : (v <= l)
                 print (ok ? "met" : "MISSED") }')
    [[ $ok == met ]] || MISSED+=("$1")
    printf '  %-36s %12s %s  (target %s %s %s)\n' "$1" "$2" "$5" "$3" "$4" \
        "$ok"
}

# ---- the store under test ------------------------------------------------
# BENCH_STORE=sqlite (default: a file in $TMP) or postgres (BENCH_PG_DSN, a
# database the benchmark may fill; bench/pg.sh starts a throwaway server
# and sets both). Callers set DB (the SQLite file) before using these.

store_name() { [[ ${BENCH_STORE:-sqlite} == postgres ]] && echo PostgreSQL ||
    echo SQLite; }

# The exporter's id in the pipeline.
store_exporter() { [[ ${BENCH_STORE:-sqlite} == postgres ]] && echo postgres ||
    echo sqlite; }

# The exporter's YAML section (2-space indent, under `exporters:`).
store_exporter_yaml() {
    if [[ ${BENCH_STORE:-sqlite} == postgres ]]; then
        printf '  postgres:\n    dsn: "%s"\n    num_connections: %s\n' \
            "$BENCH_PG_DSN" "${BENCH_PG_CONNECTIONS:-4}"
    else
        printf '  sqlite:\n    path: %s\n' "$DB"
        if [[ -n ${BENCH_SQLITE_CACHE:-} ]]; then
            printf '    cache_size: %s\n' "$BENCH_SQLITE_CACHE"
        fi
    fi
}

# One SQL statement's single value.
store_sql() {
    if [[ ${BENCH_STORE:-sqlite} == postgres ]]; then
        psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$BENCH_PG_DSN" -c "$1"
    else
        sqlite3 -cmd ".timeout 10000" "$DB" "$1"
    fi
}

store_check_tools() {
    if [[ ${BENCH_STORE:-sqlite} == postgres ]]; then
        [[ -n ${BENCH_PG_DSN:-} ]] || die "BENCH_STORE=postgres needs BENCH_PG_DSN"
        command -v psql >/dev/null || die "psql is needed to verify the store"
    else
        command -v sqlite3 >/dev/null ||
            die "sqlite3 is needed to verify the store"
    fi
}

# pg_new_db URI NAME: drop database NAME on URI's server (if there) and
# create it empty, through the server's `postgres` database; prints its URI.
pg_new_db() {
    psql -X -q -v ON_ERROR_STOP=1 -d "${1%/*}/postgres" \
        -c "DROP DATABASE IF EXISTS $2" -c "CREATE DATABASE $2" >/dev/null
    echo "${1%/*}/$2"
}

# An empty store for the next run: SQLite's file removed; PostgreSQL's
# database (the last part of BENCH_PG_DSN, a URI) dropped and created again.
store_reset() {
    if [[ ${BENCH_STORE:-sqlite} == postgres ]]; then
        [[ $BENCH_PG_DSN =~ ^postgres(ql)?://[^?]*/([A-Za-z_][A-Za-z0-9_]*)$ ]] ||
            die "a new database per run needs BENCH_PG_DSN as a URI ending in /DBNAME"
        pg_new_db "$BENCH_PG_DSN" "${BASH_REMATCH[2]}" >/dev/null
    else
        rm -f "$DB" "$DB-wal" "$DB-shm"
    fi
}

# How the store writes, for the report.
store_method() {
    if [[ ${BENCH_STORE:-sqlite} == postgres ]]; then
        echo "binary COPY straight into day-partitioned span_rows under a" \
             "savepoint (staging table + INSERT ... ON CONFLICT DO NOTHING" \
             "on a redelivery), traces upsert; one transaction per group;" \
             "input/output and resource/scope texts stored once;" \
             "${BENCH_PG_CONNECTIONS:-4} connections"
    else
        echo "prepared INSERT ... ON CONFLICT DO NOTHING, one transaction per" \
             "group commit, WAL; durable (synchronous=full): the log is" \
             "fdatasynced after each commit, overlapping the next one;" \
             "input/output and resource/scope texts stored once"
    fi
}

# "N MiB on disk, M MiB per million spans" for ROWS spans.
store_size() {
    local bytes
    if [[ ${BENCH_STORE:-sqlite} == postgres ]]; then
        bytes=$(store_sql "SELECT pg_database_size(current_database())")
    else
        bytes=$(cat "$DB" "$DB-wal" 2>/dev/null | wc -c)
    fi
    awk -v b="$bytes" -v n="$1" 'BEGIN {
        printf "%.1f MiB on disk, %.0f MiB per million spans",
               b / 1048576, (n > 0 ? b / 1048576 * 1e6 / n : 0) }'
}
