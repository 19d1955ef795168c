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
#   BENCH_PG_WARM_MB      MB of WAL written before measuring (default 2560,
#                         0: measure a server fresh from initdb; see below)
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

# Warm the server's WAL before measuring. A server fresh from initdb
# creates and zero-fills each 16 MB WAL segment on first use, into page
# cache pages this machine has not used yet; a server that has been running
# recycles its segments after each checkpoint. Measured (OTLP, 15 s runs):
# the first run on a fresh server 81k spans/s, on a fresh server warmed this
# way 103k, on one that had already taken a run 101-107k. So write
# BENCH_PG_WARM_MB of WAL (default 2560, about what the OTLP benchmark
# writes; 0: none) into a scratch database, then drop it (DROP DATABASE
# checkpoints, after which the segments are recycled).
WARM_MB=${BENCH_PG_WARM_MB:-2560}
[[ $WARM_MB =~ ^[0-9]+$ ]] || die "invalid BENCH_PG_WARM_MB \"$WARM_MB\""
if ((WARM_MB > 0)); then
    echo "bench: warming the server's WAL with $WARM_MB MB of writes"
    psql -X -q -v ON_ERROR_STOP=1 -d "$DSN" -c "CREATE DATABASE bench_warm" \
        >/dev/null
    # rows of ~1.5 KB (below the size PostgreSQL compresses): about one WAL
    # byte per byte written
    psql -X -q -v ON_ERROR_STOP=1 -d "${DSN%/*}/bench_warm" \
        -c "CREATE TABLE w (n int, pad text)" \
        -c "INSERT INTO w SELECT g, repeat('x', 1500)
            FROM generate_series(1, $((WARM_MB * 1024 * 1024 / 1540))) g" \
        >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -d "$DSN" -c "DROP DATABASE bench_warm" \
        >/dev/null
fi

# A fresh database per benchmark, so each reports its own size.
new_db() { pg_new_db "$DSN" "$1"; }

export BENCH_STORE=postgres
RC=0
ONLY=${BENCH_PG_ONLY:-}
[[ -z $ONLY || $ONLY == otlp || $ONLY == kafka ]] ||
    die "invalid BENCH_PG_ONLY \"$ONLY\": expected otlp or kafka"
if [[ -z $ONLY || $ONLY == otlp ]]; then
    BENCH_PG_DSN=$(new_db bench_otlp) "$ROOT/bench/run.sh" || RC=$?
    # Its size is printed. Dropped, so that autovacuum's first pass over
    # its million-odd new rows (minutes of reads and page writes on this
    # machine) does not run during the Kafka benchmark: measured, it took
    # Kafka -> PostgreSQL from 72-86k to 48-55k spans/s.
    psql -X -q -d "$DSN" -c "DROP DATABASE IF EXISTS bench_otlp" >/dev/null ||
        true
fi
if [[ -z $ONLY || $ONLY == kafka ]]; then
    BENCH_PG_DSN=$(new_db bench_kafka) "$ROOT/bench/kafka.sh" ||
        { ((RC)) || RC=$?; }
fi
exit "$RC"
