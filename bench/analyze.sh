#!/usr/bin/env bash
# bench/analyze.sh -- the analyzer benchmark (DESIGN §10: the detectors over
# a window of 100,000 traces, ~1M spans, in <= 10 s; see bench/README.md).
#
# For each store, SQLite (a file in a temp dir) then PostgreSQL (a throwaway
# PostgreSQL 15 server, tests/pg/pg_server.sh, as bench/pg.sh runs it):
#   1. halo-gen-window writes a 24 h window of BENCH_TRACES synthetic agent
#      runs (~10 spans each, retry loops, silent failures, slow tools, a
#      model change...) for agent bench-agent, ending at the current hour;
#      its time, rate and the database size are printed. PostgreSQL then
#      gets VACUUM ANALYZE, as autovacuum would have done by the time a
#      scheduled analysis runs (and so it does not run during the timings).
#   2. `halo analyze --store SPEC --agent bench-agent --window 24h --end END
#      --format json --no-save` runs BENCH_ANALYZE_RUNS times (warm page
#      cache: the window was just written): wall time, peak RSS and spans/s
#      of each run, the median against the 10 s target. The first run's
#      report is kept in the temp dir and must count every trace.
# The store is generated and analyzed one at a time: the machine has 2
# shared cores.
#
# Builds nothing. Binaries: $HALO_BIN and $GEN_WINDOW, else ./build/halo and
# ./build/bench/halo-gen-window (relative to the repository root).
# Environment:
#   BENCH_TRACES         traces in the window (default 100000)
#   BENCH_ANALYZE_RUNS   timed runs per store (default 3)
#   BENCH_ANALYZE_ONLY   sqlite or postgres: benchmark only that store
#   BENCH_KEEP=1         keep the temp dir (SQLite database, reports, logs)
#   BENCH_STRICT=1       exit 1 when the target is missed
#   PG_BIN, PG_EXTRA_OPTS  as bench/pg.sh (the server's bin dir and options)
# Exit status: 0 figures printed, 1 a step failed (or `halo analyze` is not
# built yet), 2 binaries not found.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HALO_BIN=${HALO_BIN:-$ROOT/build/halo}
GEN_WINDOW=${GEN_WINDOW:-$ROOT/build/bench/halo-gen-window}
TRACES=${BENCH_TRACES:-100000}
RUNS=${BENCH_ANALYZE_RUNS:-3}
ONLY=${BENCH_ANALYZE_ONLY:-}
AGENT=bench-agent
WINDOW=24h
TARGET_S=10

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_exec "$HALO_BIN" "$GEN_WINDOW"
[[ $TRACES =~ ^[0-9]+$ && $TRACES -gt 0 ]] ||
    die "invalid BENCH_TRACES \"$TRACES\""
[[ $RUNS =~ ^[0-9]+$ && $RUNS -gt 0 ]] ||
    die "invalid BENCH_ANALYZE_RUNS \"$RUNS\""
[[ -z $ONLY || $ONLY == sqlite || $ONLY == postgres ]] ||
    die "invalid BENCH_ANALYZE_ONLY \"$ONLY\": expected sqlite or postgres"

# No figures without the command under test: `halo analyze` must exist
# (a build without it fails, or answers "halo analyze: not supported ...";
# an option of a working one may say "not supported yet" in its help).
if ! help=$("$HALO_BIN" analyze --help 2>&1) ||
    grep -qi '^halo analyze:.*not supported' <<<"$help"; then
    echo "bench: \`halo analyze\` is not available in $HALO_BIN:" >&2
    while IFS= read -r line; do echo "bench:   $line"; done <<<"$help" >&2
    echo "bench: the analyzer benchmark needs it; nothing was measured" >&2
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/halo-bench-analyze.XXXXXX")
PGDIR=
PIDS=()

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    cleanup_pids
    if [[ -n $PGDIR ]]; then
        "$ROOT/tests/pg/pg_server.sh" stop "$PGDIR" >/dev/null 2>&1 || true
    fi
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "bench: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The window ends at the current hour: the PostgreSQL store creates the
# day partitions around today, so the whole window has its partitions.
END=$(($(date +%s) / 3600 * 3600))
END_ISO=$(date -u -d "@$END" +%Y-%m-%dT%H:%M:%SZ)

now_ns() { date +%s%N; }
secs_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }

# time_run OUT CMD...: run CMD (stdout to OUT, stderr to $TMP/run.err);
# sets RUN_RC, RUN_WALL (s) and RUN_RSS_KB (peak RSS: /usr/bin/time -v,
# else VmHWM polled from /proc while it runs).
time_run() {
    local out=$1 t0 pid v
    shift
    RUN_RC=0 RUN_RSS_KB=0
    t0=$(now_ns)
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -v -o "$TMP/time.txt" "$@" >"$out" 2>"$TMP/run.err" ||
            RUN_RC=$?
        RUN_WALL=$(secs_since "$t0")
        RUN_RSS_KB=$(sed -n 's/.*Maximum resident set size (kbytes): //p' \
            "$TMP/time.txt")
    else
        "$@" >"$out" 2>"$TMP/run.err" &
        pid=$!
        PIDS+=("$pid")
        while [[ -r /proc/$pid/status ]] &&
            ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; do
            v=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$pid/status" \
                2>/dev/null || true)
            [[ -n $v ]] && RUN_RSS_KB=$v
            sleep 0.02
        done
        wait "$pid" || RUN_RC=$?
        RUN_WALL=$(secs_since "$t0")
    fi
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

MISSED=()
SUMMARY=()

# bench_store NAME SPEC: generate the window into SPEC, then time analyze.
bench_store() {
    local name=$1 spec=$2 spans gen_s i walls=() rss=() report
    echo
    echo "== $(store_name): $TRACES traces for $AGENT, window" \
         "[$WINDOW before $END_ISO) =="
    echo "bench: generating: halo-gen-window --traces $TRACES --end $END_ISO"
    local t0
    t0=$(now_ns)
    "$GEN_WINDOW" --store "$spec" --traces "$TRACES" --agent "$AGENT" \
        --end "$END" --window "$WINDOW" 2>"$TMP/gen-$name.log" || {
        cat "$TMP/gen-$name.log" >&2
        die "halo-gen-window failed on $(store_name)"
    }
    gen_s=$(secs_since "$t0")
    grep '^halo-gen-window: ' "$TMP/gen-$name.log" | sed 's/^/  /'
    if [[ $name == postgres ]]; then
        t0=$(now_ns)
        store_sql "VACUUM ANALYZE" >/dev/null
        echo "  VACUUM ANALYZE: $(secs_since "$t0") s"
    fi
    spans=$(store_sql "SELECT count(*) FROM spans")
    echo "  generated in $gen_s s; $(store_size "$spans")"

    echo "bench: timing: halo analyze --store <$(store_name)> --agent $AGENT" \
         "--window $WINDOW --end $END_ISO --format json --no-save"
    printf '  %-4s %10s %12s %12s\n' run wall_s peak_rss spans/s
    for ((i = 1; i <= RUNS; i++)); do
        report=/dev/null
        ((i == 1)) && report=$TMP/report-$name.json
        time_run "$report" "$HALO_BIN" analyze --store "$spec" \
            --agent "$AGENT" --window "$WINDOW" --end "$END_ISO" \
            --format json --no-save
        if ((RUN_RC != 0)); then
            tail -20 "$TMP/run.err" >&2
            die "halo analyze exited $RUN_RC on $(store_name)"
        fi
        printf '  %-4s %10s %8s MiB %12s\n' "$i" "$RUN_WALL" \
            "$(mib "$RUN_RSS_KB")" \
            "$(awk -v n="$spans" -v s="$RUN_WALL" \
                'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')"
        walls+=("$RUN_WALL")
        rss+=("$RUN_RSS_KB")
    done
    # The report must have seen the whole window (not an empty one).
    grep -Eq "\"traces\"[[:space:]]*:[[:space:]]*$TRACES([^0-9]|\$)" \
        "$TMP/report-$name.json" ||
        die "the report of $(store_name) does not count $TRACES traces" \
            "(BENCH_KEEP=1 keeps it: $TMP/report-$name.json)"
    local med peak
    med=$(printf '%s\n' "${walls[@]}" | median)
    peak=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
    target "detectors, $(store_name), median of $RUNS" "$med" "<=" \
        "$TARGET_S" "s"
    SUMMARY+=("$(printf '%-10s generate %6s s   analyze median %6s s   peak RSS %7s MiB   %s' \
        "$(store_name)" "$gen_s" "$med" "$(mib "$peak")" \
        "$(store_size "$spans")")")
}

LOAD_BEFORE=$(load)
echo "bench: analyzer benchmark, $(nproc) cores (shared), $LOAD_BEFORE"

if [[ -z $ONLY || $ONLY == sqlite ]]; then
    command -v sqlite3 >/dev/null || die "sqlite3 is needed to verify the store"
    DB=$TMP/halo.db
    BENCH_STORE=sqlite bench_store sqlite "sqlite:$DB"
    rm -f "$DB" "$DB-wal" "$DB-shm" # ~2 GB: not kept beside the next store
fi

if [[ -z $ONLY || $ONLY == postgres ]]; then
    command -v psql >/dev/null || die "psql is needed (apt-get install postgresql)"
    export PG_EXTRA_OPTS="${PG_EXTRA_OPTS:--c shared_buffers=512MB -c max_wal_size=4GB -c checkpoint_timeout=15min -c wal_buffers=16MB -c synchronous_commit=on}"
    PGDIR=$(mktemp -d /tmp/halo-pgbench.XXXXXX)
    DSN=$("$ROOT/tests/pg/pg_server.sh" start "$PGDIR" | sed -n 's/^dsn //p')
    [[ -n $DSN ]] || die "the PostgreSQL server did not start"
    psql -X -q -v ON_ERROR_STOP=1 -d "$DSN" -c "CREATE DATABASE bench_analyze" \
        >/dev/null
    export BENCH_PG_DSN=${DSN%/*}/bench_analyze
    echo
    echo "bench: PostgreSQL $(psql -X -A -t -d "$DSN" -c 'SHOW server_version')" \
         "at ${DSN%/*}, options: $PG_EXTRA_OPTS"
    BENCH_STORE=postgres bench_store postgres "$BENCH_PG_DSN"
fi

echo
echo "== halo analyzer benchmark ($TRACES traces, window $WINDOW, target" \
     "<= $TARGET_S s) =="
echo "machine: before: $LOAD_BEFORE; after: $(load)"
printf '%s\n' "${SUMMARY[@]}"
if ((${#MISSED[@]} > 0)) && [[ ${BENCH_STRICT:-0} == 1 ]]; then
    die "missed: ${MISSED[*]}"
fi
exit 0
