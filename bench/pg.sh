#!/usr/bin/env bash
# bench/pg.sh -- the PostgreSQL benchmarks (DESIGN §10; see bench/README.md):
# OTLP -> PostgreSQL (bench/run.sh) and Kafka -> PostgreSQL (bench/kafka.sh)
# with BENCH_STORE=postgres, against a throwaway PostgreSQL 15 server on
# this machine (tests/pg/pg_server.sh: initdb into a temp dir, a free port
# on 127.0.0.1, stopped and removed at the end).
#
# The server runs with durable commits (fsync=on, synchronous_commit=on)
# and settings a small dedicated database host would use; the figures
# printed include the write method and the database size per million
# spans. The machine's 2 cores are shared by PostgreSQL, halo and the load
# generator (and the mock cluster for Kafka).
#
# Builds nothing. Environment: everything bench/run.sh and bench/kafka.sh
# read (BENCH_DURATION, ...), plus
#   BENCH_PG_CONNECTIONS  the exporter's num_connections (default 4)
#   BENCH_PG_ONLY=otlp|kafka  run one of the two
#   PG_BIN                PostgreSQL's bin directory (default 15's)
# Exit status: that of the first benchmark that failed, else 0.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
command -v psql >/dev/null || die "psql is needed (apt-get install postgresql)"

PGDIR=$(mktemp -d /tmp/halo-pgbench.XXXXXX)
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() { "$ROOT/tests/pg/pg_server.sh" stop "$PGDIR" || true; }
trap cleanup EXIT

export PG_EXTRA_OPTS="${PG_EXTRA_OPTS:--c shared_buffers=512MB -c max_wal_size=4GB -c checkpoint_timeout=15min -c wal_buffers=16MB -c synchronous_commit=on}"
DSN=$("$ROOT/tests/pg/pg_server.sh" start "$PGDIR" | sed -n 's/^dsn //p')
[[ -n $DSN ]] || die "the PostgreSQL server did not start"
echo "bench: PostgreSQL $(psql -X -A -t -d "$DSN" -c 'SHOW server_version') at" \
     "${DSN%/*}, options: $PG_EXTRA_OPTS"

# A fresh database per benchmark, so each reports its own size.
new_db() {
    psql -X -q -v ON_ERROR_STOP=1 -d "$DSN" -c "DROP DATABASE IF EXISTS $1" \
        -c "CREATE DATABASE $1" >/dev/null
    echo "${DSN%/*}/$1"
}

export BENCH_STORE=postgres
RC=0
ONLY=${BENCH_PG_ONLY:-}
[[ -z $ONLY || $ONLY == otlp || $ONLY == kafka ]] ||
    die "invalid BENCH_PG_ONLY \"$ONLY\": expected otlp or kafka"
if [[ -z $ONLY || $ONLY == otlp ]]; then
    BENCH_PG_DSN=$(new_db bench_otlp) "$ROOT/bench/run.sh" || RC=$?
fi
if [[ -z $ONLY || $ONLY == kafka ]]; then
    BENCH_PG_DSN=$(new_db bench_kafka) "$ROOT/bench/kafka.sh" ||
        { ((RC)) || RC=$?; }
fi
exit "$RC"
