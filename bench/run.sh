#!/usr/bin/env bash
# bench/run.sh -- the halo ingest benchmark (DESIGN §10; see bench/README.md).
#
# Starts `halo serve` on free 127.0.0.1 ports with the production pipeline
# (memory_limiter, agent_identity, batch 8192/200ms, the sqlite exporter on
# a file in a temp dir, or with BENCH_STORE=postgres the postgres exporter),
# then runs halo-loadgen in three phases of BENCH_DURATION seconds each:
#   1. gRPC at saturation (closed loop)       -> peak spans/s over gRPC
#   2. HTTP at saturation (closed loop)       -> peak spans/s over HTTP
#   3. gRPC open loop at half the gRPC peak   -> p99 Export latency
# checks in the store (sqlite3, psql) that it holds exactly the spans the
# daemon acknowledged, prints the figures against the targets, stops halo by PID
# (SIGTERM: it must drain and exit 0) and removes the temp dir.
#
# Builds nothing. Binaries: $HALO_BIN and $LOADGEN, else ./build/halo and
# ./build/bench/halo-loadgen (relative to the repository root).
# Environment:
#   BENCH_DURATION  seconds per phase (default 10)
#   BENCH_KEEP=1    keep the temp dir (config, log, database, JSON results)
#   BENCH_STRICT=1  exit 1 when a performance target is missed
#   BENCH_GRPC_ARGS halo-loadgen options of the gRPC phases
#                   (default "--connections 8 --inflight 16": 12,800 spans in
#                   flight, more than one batch of 8192, so a closed loop does
#                   not just wait out the batch timeout)
#   BENCH_HTTP_ARGS options of the HTTP phase (default "--connections 128":
#                   HTTP/1.1 has one request in flight per connection)
#   LOADGEN_ARGS    extra halo-loadgen options for every phase
#   BENCH_STORE     sqlite (default) or postgres: then BENCH_PG_DSN names an
#                   empty database and BENCH_PG_CONNECTIONS the exporter's
#                   num_connections (default 4); bench/pg.sh sets them
# Exit status: 0 figures printed and the store matches the acknowledgements,
# 1 a run failed or the store does not match, 2 binaries not found.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HALO_BIN=${HALO_BIN:-$ROOT/build/halo}
LOADGEN=${LOADGEN:-$ROOT/build/bench/halo-loadgen}
DUR=${BENCH_DURATION:-10}
read -r -a EXTRA <<<"${LOADGEN_ARGS:-}"
read -r -a GRPC_ARGS <<<"${BENCH_GRPC_ARGS:---connections 8 --inflight 16}"
read -r -a HTTP_ARGS <<<"${BENCH_HTTP_ARGS:---connections 128}"

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_exec "$HALO_BIN" "$LOADGEN"
store_check_tools
command -v curl >/dev/null || die "curl is needed for the health check"
[[ $DUR =~ ^[0-9]+$ && $DUR -gt 0 ]] || die "invalid BENCH_DURATION \"$DUR\""

TMP=$(mktemp -d "${TMPDIR:-/tmp}/halo-bench.XXXXXX")
HALO_PID=

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [[ -n $HALO_PID ]] && kill -0 "$HALO_PID" 2>/dev/null; then
        kill -KILL "$HALO_PID" 2>/dev/null || true
        wait "$HALO_PID" 2>/dev/null || true
    fi
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "bench: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

read -r GRPC_PORT HTTP_PORT HEALTH_PORT METRICS_PORT < <(pick_ports 4)
[[ -n $METRICS_PORT ]] || die "could not find free ports"
DB=$TMP/halo.db

cat >"$TMP/halo.yaml" <<EOF
# written by bench/run.sh: the production pipeline on free local ports
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$GRPC_PORT
      http:
        endpoint: 127.0.0.1:$HTTP_PORT
processors:
  memory_limiter:
    limit: 512MiB
  agent_identity: {}
  batch:
    send_batch_size: 8192
    timeout: 200ms
exporters:
$(store_exporter_yaml)
    retention: 720h
extensions:
  health_check:
    endpoint: 127.0.0.1:$HEALTH_PORT
  metrics:
    endpoint: 127.0.0.1:$METRICS_PORT
service:
  telemetry:
    logs:
      level: warn
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, agent_identity, batch]
      exporters: [$(store_exporter)]
EOF

# ---- start halo and wait for its health endpoint -------------------------
"$HALO_BIN" serve --config "$TMP/halo.yaml" >"$TMP/halo.log" 2>&1 &
HALO_PID=$!
wait_healthy "$HALO_PID" "$HEALTH_PORT" "$TMP/halo.log"

echo "bench: halo pid $HALO_PID, gRPC :$GRPC_PORT, HTTP :$HTTP_PORT," \
     "$DUR s per phase, $(nproc) cores shared by halo and the load generator"

phase() {
    local name=$1
    shift
    echo "bench: phase $name: halo-loadgen $*"
    "$LOADGEN" "$@" --duration "$DUR" --pid "$HALO_PID" --json \
        ${EXTRA[@]+"${EXTRA[@]}"} >"$TMP/$name.json" ||
        { cat "$TMP/$name.json" >&2; tail -20 "$TMP/halo.log" >&2;
          die "phase $name failed"; }
    kill -0 "$HALO_PID" 2>/dev/null || die "halo died during phase $name"
}

LOAD_BEFORE=$(load)

phase grpc --grpc "127.0.0.1:$GRPC_PORT" "${GRPC_ARGS[@]}"
phase http --http "127.0.0.1:$HTTP_PORT" "${HTTP_ARGS[@]}"
PEAK=$(field grpc spans_per_s)
HALF=$(awk -v p="$PEAK" 'BEGIN { printf "%d", p / 2 }')
((HALF > 0)) || die "gRPC peak was 0 spans/s"
phase half --grpc "127.0.0.1:$GRPC_PORT" "${GRPC_ARGS[@]}" --rate "$HALF"
LOAD_AFTER=$(load)

# ---- verify: the store holds exactly what was acknowledged ---------------
# Acks are sent only after commit, so every acknowledged span is already
# visible. A request that timed out or lost its connection has an unknown
# outcome (it may have been committed after all); with such failures the
# count may lie between acked and sent, otherwise it must equal acked.
ACKED=0 SENT=0 AMBIGUOUS=0
for p in grpc http half; do
    ACKED=$((ACKED + $(field $p spans_acked)))
    SENT=$((SENT + $(field $p spans_sent)))
    for k in timeout conn-error batch-failed DEADLINE_EXCEEDED CANCELLED; do
        n=$(sed -n "s/.*\"$k\":\\([0-9]*\\).*/\\1/p" "$TMP/$p.json")
        AMBIGUOUS=$((AMBIGUOUS + ${n:-0}))
    done
done
STORED=$(store_sql "SELECT count(*) FROM spans")
VERDICT=ok
if ((STORED == ACKED)); then
    :
elif ((AMBIGUOUS > 0 && STORED > ACKED && STORED <= SENT)); then
    VERDICT="ok ($AMBIGUOUS requests with unknown outcome)"
else
    VERDICT=MISMATCH
fi

# ---- stop halo: SIGTERM must drain and exit 0 ----------------------------
stop_pid "$HALO_PID"
HALO_PID=

# ---- report ----------------------------------------------------------------
MISSED=()
echo
echo "== halo ingest benchmark ($(nproc) cores, halo and loadgen share them," \
     "$DUR s per phase) =="
echo "machine: before: $LOAD_BEFORE; after: $LOAD_AFTER"
phase_table grpc http half
echo "(halo_cpu: daemon CPU time over the phase, in % of one core;" \
     "us/span: daemon CPU microseconds per acknowledged span)"
echo
target "gRPC ingest into $(store_name)" "$PEAK" ">=" \
    "$([[ ${BENCH_STORE:-sqlite} == postgres ]] && echo 100000 || echo 150000)" \
    "spans/s"
target "p99 Export latency at half peak" "$(field half p99)" "<=" 25 "ms"
target "daemon peak RSS (VmHWM)" "$(mib "$(field half daemon_peak_rss_kb)")" \
    "<=" 128 "MiB"
echo "  stored spans $STORED, acknowledged $ACKED, sent $SENT: $VERDICT"
echo "  write method: $(store_method)"
echo "  store size: $(store_size "$STORED")"
echo "  halo stop (SIGTERM): exit $STOP_RC"

[[ $VERDICT == MISMATCH ]] && die "the store does not match the acknowledgements"
[[ $STOP_RC == 0 ]] || die "halo did not drain and exit 0 on SIGTERM"
if [[ ${BENCH_STRICT:-0} == 1 && ${#MISSED[@]} -gt 0 ]]; then
    die "targets missed: ${MISSED[*]}"
fi
exit 0
