/*
 * pg_int.h -- internals shared by the PostgreSQL store's files: pg_store.c
 * (open, close, writes, retention) and pg_read.c (the queries). Not for use
 * outside storage/, except by the unit tests, which EXPLAIN the very
 * queries built here.
 */
#ifndef HALO_PG_INT_H
#define HALO_PG_INT_H

#include "store.h"

#include <libpq-fe.h>
#include <stdbool.h>

typedef struct pg_store {
    halo_store base;
    PGconn *conn;
    bool read_only;
    bool utf8; /* the database's encoding is UTF8 (halo_pg_prepare) */
} pg_store;

/* Before each operation: reconnect a lost connection (PQreset) and, when
 * read-only, set the session read-only again. HALO_ERETRY when the server
 * cannot be reached. */
halo_status pgs_ready(pg_store *s, const char *what, halo_err *err);

/* Before a write: HALO_EINVAL "cannot VERB: database "DB" is open
 * read-only" for a read-only store, else pgs_ready(). */
halo_status pgs_can_write(pg_store *s, const char *verb, halo_err *err);

/* "could not WHAT in database "DB": <PostgreSQL's message>", with
 * HALO_ERETRY for a lost connection and the transient SQLSTATE classes,
 * HALO_EINVAL for data PostgreSQL refuses (classes 22, 23), else HALO_EIO. */
halo_status pgs_fail(pg_store *s, const PGresult *res, const char *what,
                     halo_err *err);

/* ---- the queries (pg_read.c) --------------------------------------------- */

/* ns as the text of a bigint parameter, clamped to INT64_MAX. */
#define PGR_NS_LEN 24
void pgr_ns_text(uint64_t ns, char out[PGR_NS_LEN]);

/* The text of a field of res and its length in bytes; NULL (and *len 0)
 * for SQL NULL. */
const char *pgr_value(const PGresult *res, int row, int col, size_t *len);

/* A query and its text parameters. params[] may point into vals[]: do not
 * copy the struct. */
#define PGR_MAX_PARAMS 6
typedef struct pgr_query {
    char sql[1024];
    int n;
    const char *params[PGR_MAX_PARAMS];
    char vals[PGR_MAX_PARAMS][40];
} pgr_query;

/* list_traces: the filter as SQL over `traces` (an agent filter uses the
 * index (agent_id, start_time), a time window (start_time)). f->agent_id
 * must outlive q. */
void pgr_list_query(const halo_trace_filter *f, pgr_query *q);
/* agent_stats over traces starting in [since_ns, until_ns) (0: open). */
void pgr_stats_query(uint64_t since_ns, uint64_t until_ns, pgr_query *q);
/* get_trace, step 1: the trace's start/end nanoseconds from `traces`;
 * $1 the trace id. */
extern const char PGR_SQL_TRACE_RANGE[];
/* get_trace, step 2: the trace's spans; restricted to the day partitions
 * of [start_ns, end_ns] when the trace row gave them (has_range), else
 * every partition is probed by primary key. */
void pgr_spans_query(const char tid[33], bool has_range, uint64_t start_ns,
                     uint64_t end_ns, pgr_query *q);

halo_status pgr_list_traces(halo_store *st, const halo_trace_filter *f,
                            halo_arena *arena, halo_trace_row **rows, size_t *n,
                            halo_err *err);
halo_status pgr_get_trace(halo_store *st, const uint8_t trace_id[16],
                          halo_arena *arena, halo_span **spans, size_t *n,
                          halo_err *err);
halo_status pgr_agent_stats(halo_store *st, uint64_t since_ns,
                            uint64_t until_ns, halo_arena *arena,
                            halo_agent_stats **rows, size_t *n, halo_err *err);
halo_status pgr_put_report(halo_store *st, const halo_report_row *r,
                           halo_err *err);

/* list_reports: the filter as SQL over `reports`. f's strings must
 * outlive q. */
void pgr_reports_query(const halo_report_filter *f, pgr_query *q);
halo_status pgr_list_reports(halo_store *st, const halo_report_filter *f,
                             halo_arena *arena, halo_report_row **rows,
                             size_t *n, halo_err *err);
halo_status pgr_get_report(halo_store *st, const char *id, halo_arena *arena,
                           halo_report_row *out, halo_err *err);

/* scan_window, in a READ ONLY REPEATABLE READ transaction: a cursor
 * (DECLARE halo_scan, this query) over the window's traces by the index
 * (agent_id, start_time), fetched in batches; their spans by groups of
 * traces, one query per group (PGR_SQL_SCAN_SPANS: the primary key by
 * trace id, pruned to the day partitions of the group's times), the next
 * group's query running while the callbacks see the current one.
 * f->agent_id must outlive q. */
void pgr_scan_traces_query(const halo_scan_filter *f, pgr_query *q);
extern const char PGR_SQL_SCAN_SPANS[];
halo_status pgr_scan_window(halo_store *st, const halo_scan_filter *f,
                            halo_scan_fn fn, void *ctx, halo_err *err);

/* The analyzer's sql and search tools (pg_tools.c). */
halo_status pgt_sql_query(halo_store *st, const halo_sql_req *req,
                          halo_arena *arena, char **text, halo_err *err);
halo_status pgt_search_spans(halo_store *st, const halo_search_req *req,
                             halo_arena *arena, halo_search_hit **hits,
                             size_t *n, halo_err *err);

/* Analyzer run claims (pg_runs.c). */
halo_status pgr_claim_run(halo_store *st, const halo_run_key *k,
                          const char *owner, uint64_t now_ns, uint64_t lease_ns,
                          halo_claim_result *res, halo_err *err);
halo_status pgr_finish_run(halo_store *st, const halo_run_key *k,
                           const char *owner, uint64_t now_ns, bool ok,
                           const char *report_id, const char *error,
                           halo_err *err);

#endif
