/*
 * pg_schema.h -- the PostgreSQL backend's schema: connection, migrations,
 * daily partitions of `spans`, retention by dropping partitions.
 *
 * The relations and column names are those of the SQLite store (DESIGN §6,
 * storage/README.md); the PostgreSQL types differ where PostgreSQL has a
 * better one: times are timestamptz (microseconds) AND the exact
 * nanoseconds in *_unix_nano bigint columns. The span JSON columns are
 * json, not jsonb: jsonb reorders keys, merges duplicate keys and rewrites
 * 1e15 as an integer, so `halo export` could not give back the span that
 * came in; reports.json is jsonb (queried, never re-exported).
 *
 * `spans` is partitioned by range on start_time, one partition per UTC day
 * named spans_pYYYYMMDD, plus spans_default for rows outside every day
 * partition (late or far-future spans; an insert never fails for its time).
 * Creating a day partition moves that day's rows out of spans_default.
 *
 * Every schema change (migrations, new partitions, retention) runs in one
 * transaction holding pg_advisory_xact_lock(HALO_PG_LOCK_KEY), so several
 * halo instances starting or rotating partitions at once are serialized.
 *
 * Connections are made by pg_conn.h (halo_pg_connect), whose error
 * messages never contain a DSN's password.
 */
#ifndef HALO_PG_SCHEMA_H
#define HALO_PG_SCHEMA_H

#include "../core/status.h"
#include "pg_conn.h" /* halo_pg_connect, halo_pg_error_text */

#include <libpq-fe.h>
#include <stdint.h>

/* The advisory lock every halo schema change takes ("halo" "pgsc"). */
#define HALO_PG_LOCK_KEY INT64_C(0x68616c6f70677363)
/* The advisory lock of shared_texts ("halopgtx", 0x68616c6f70677478;
 * decimal, for the SQL text): every span write holds it shared for its
 * transaction (pg_write.c), retention exclusively while it deletes texts,
 * so no write can refer to a text being deleted. */
#define HALO_PG_TEXTS_LOCK_KEY 7521412078568436856
#define HALO_PG_STR_(x) #x
#define HALO_PG_STR(x) HALO_PG_STR_(x)

/* Apply the pending migrations in one transaction under the advisory lock,
 * recording each in schema_migrations(version, name, applied_at). A no-op
 * when the schema is current; HALO_EUNSUPPORTED when the database is newer
 * than this binary. Needs an idle connection (no open transaction). */
halo_status halo_pg_migrate(PGconn *c, halo_err *err);

/* The newest migration this binary knows. */
int halo_pg_schema_version(void);

/* Create the missing daily partitions of `spans` for the UTC days
 * containing from_unix_s .. from_unix_s + days_ahead days (days_ahead + 1
 * partitions, 0 <= days_ahead <= 3660), moving rows of those days out of
 * spans_default. Idempotent and safe concurrently. */
halo_status halo_pg_ensure_partitions(PGconn *c, int64_t from_unix_s,
                                      int days_ahead, halo_err *err);

/* Retention, at the granularity of whole days: the cutoff is
 * older_than_unix_s rounded down to a UTC midnight (B). Drops every
 * partition of `spans` whose upper bound is <= B (never one that may hold
 * a newer row), deletes the traces that started before B together with
 * their spans wherever they are (a trace crossing midnight, rows in
 * spans_default), so no trace is left half-deleted; then, in a second
 * transaction, the shared texts no remaining span refers to. *dropped (may
 * be NULL) gets the number of partitions dropped. */
halo_status halo_pg_retention(PGconn *c, int64_t older_than_unix_s,
                              int *dropped, halo_err *err);

#endif
