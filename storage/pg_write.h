/*
 * pg_write.h -- the PostgreSQL backend's write path: spans into `spans`,
 * the `traces` rollup kept current, in one transaction per call.
 *
 * Rows are prepared exactly as for the SQLite store (storage/sqlite_rows.c:
 * hex ids, the attributes/events/links/resource/scope JSON, derived fields),
 * so both stores hold byte-identical JSON for the same span and prepare()
 * may run off the writing thread like the sqlite exporter does.
 *
 * A write: the rows are streamed with binary COPY straight into `spans`
 * under a savepoint (the fast path: every row is new, so the `traces`
 * deltas are computed from the rows themselves). When that COPY meets a
 * stored span (unique violation: a redelivery), the write goes back to the
 * savepoint and takes the staging path: binary COPY into a session
 * temporary staging table, then one INSERT ... SELECT ... ON CONFLICT
 * (trace_id, span_id, start_time) DO NOTHING moves them into `spans`; only
 * the rows it actually inserted feed the `traces` upsert. Either way writing
 * the same rows again changes nothing (DESIGN §4: redelivery creates no
 * duplicates and the rollup is not double counted). Identity fix-up from the
 * root span as in the SQLite store (storage/README.md). Nanoseconds are kept in
 * *_unix_nano; start_time/end_time are timestamptz (microseconds, truncated).
 *
 * Text columns must be valid UTF-8 in PostgreSQL: invalid bytes in a span's
 * plain text (name, status message, input/output, identity) are replaced by
 * U+FFFD, as the JSON columns already are; SQLite keeps them as they came.
 *
 * Rows of days without a partition go to spans_default (the schema's safety
 * net); creating day partitions (halo_pg_ensure_partitions) is the caller's
 * periodic job, never done inside a write.
 *
 * Errors carry PostgreSQL's message. A lost connection, a server shutting
 * down, a deadlock or serialization failure, a lock or resource shortage:
 * HALO_ERETRY. Data PostgreSQL refuses (SQLSTATE classes 22, 23): HALO_EINVAL.
 * Anything else (a missing schema): HALO_EIO. On failure the transaction is
 * rolled back when the connection still works and nothing was written.
 *
 * The connection must be idle (no open transaction) and is used by one
 * thread at a time. It keeps two temporary tables (halo_staging,
 * halo_touched_v3, emptied at every commit) for its whole session, so it must
 * not be shared through a transaction-pooling proxy.
 */
#ifndef HALO_PG_WRITE_H
#define HALO_PG_WRITE_H

#include "../core/batch.h"
#include "../core/status.h"
#include "store.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Encode every span of b (store.h: prepare). Thread-safe, no connection
 * needed; the rows do not refer to b. Free with halo_pg_free_rows().
 * cut_io: store input and output once (span_rows.input_at / output_at,
 * schema migration 5), which needs a UTF8 database (the spans view counts
 * characters): pass halo_pg_utf8() of a connection to it. */
halo_status halo_pg_prepare(const halo_batch *b, bool cut_io,
                            halo_store_rows **out, halo_err *err);
/* Whether c's database and its client encoding are UTF8 (false when c is
 * NULL or not connected). */
bool halo_pg_utf8(PGconn *c);
void halo_pg_free_rows(halo_store_rows *rows);

/* Every row of rows[0..n) in ONE transaction (group commit); stats may be
 * NULL: inserted rows, duplicates skipped, spans whose identity was fixed
 * from their root. The rows stay the caller's. */
halo_status halo_pg_write_rows(PGconn *c, halo_store_rows *const *rows,
                               size_t n, halo_write_stats *stats,
                               halo_err *err);

/* How many writes of this process took the staging path (some span was
 * already stored, or came twice in one write) rather than the fast path
 * (every row new: COPY straight into `spans`). For tests and metrics. */
uint64_t halo_pg_write_fallbacks(void);

/* Prepare + write_rows for batches[0..n), one transaction. */
halo_status halo_pg_write_batches(PGconn *c, const halo_batch *const *batches,
                                  size_t n, halo_write_stats *stats,
                                  halo_err *err);

/* One batch, one transaction. */
halo_status halo_pg_write_batch(PGconn *c, const halo_batch *b, halo_err *err);

#endif
