/*
 * pg_read.c -- the query side of the PostgreSQL backend (store.h): listing
 * traces, rebuilding one trace's spans, per-agent statistics, reports.
 *
 * Results are identical to the SQLite backend's for the same stored spans:
 * the rows go through the same rebuild (store_rebuild.c), times come from
 * the exact *_unix_nano columns (timestamptz keeps microseconds only), and
 * every ORDER BY is total and byte-ordered (COLLATE "C"), as SQLite
 * orders (agent statistics are ordered in C, store_rebuild.c).
 *
 * Access paths. Time bounds are applied twice: on the timestamptz column,
 * truncated to the microsecond, so the indexes (traces (start_time),
 * (agent_id, start_time)) and partition pruning apply, and exactly on the
 * nanosecond column. get_trace first reads the trace's [start, end] from
 * `traces` (by primary key), then asks for its spans within those times:
 * PostgreSQL prunes `spans` to the day partitions the trace covers at plan
 * time instead of probing the primary key of every day. A trace without a
 * `traces` row (not expected: both are written in one transaction) is
 * looked up in every partition.
 *
 * SQL is built from fixed fragments only; every value, user text or not,
 * travels as a parameter (PQexecParams, text format). Rows are streamed in
 * single-row mode, so libpq never holds a large statistics window's whole
 * result at once (measured as fast as one result for 100k rows).
 */
#include "pg_int.h"
#include "sqlite_int.h"
#include "store_rebuild.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building queries ---------------------------------------------------- */

#define ORDER_TRACES                                                           \
    " ORDER BY start_time DESC, start_unix_nano DESC,"                         \
    " trace_id COLLATE \"C\" DESC"
#define ORDER_SPANS " ORDER BY start_unix_nano, span_id COLLATE \"C\""

const char PGR_SQL_TRACE_RANGE[] =
    "SELECT start_unix_nano, end_unix_nano FROM traces WHERE trace_id = $1";

static void add_sql(pgr_query *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_sql(pgr_query *q, const char *fmt, ...)
{
    size_t len = strlen(q->sql);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->sql + len, sizeof q->sql - len, fmt, ap);
    va_end(ap);
}

/* A parameter with its own text (NULL: SQL NULL); its number ($n). */
static int add_param(pgr_query *q, const char *v)
{
    q->params[q->n] = v;
    return ++q->n;
}

/* A parameter whose text is kept in q. */
static char *new_val(pgr_query *q)
{
    char *v = q->vals[q->n];
    q->params[q->n++] = v;
    return v;
}

/* ns as a bigint parameter (clamped to bigint). */
static int add_ns(pgr_query *q, uint64_t ns)
{
    snprintf(new_val(q), sizeof q->vals[0], "%" PRId64,
             ns > INT64_MAX ? INT64_MAX : (int64_t)ns);
    return q->n;
}

/* ns as a timestamptz parameter, truncated to the microsecond as the
 * write path stores it: "2026-11-16T09:00:00.123456Z". */
static int add_ts(pgr_query *q, uint64_t ns)
{
    char *v = new_val(q);
    halo_iso_from_ns(ns, v);
    strcpy(v + 26, "Z");
    return q->n;
}

static void query_init(pgr_query *q)
{
    memset(q, 0, sizeof *q);
}

/* Trace start in [since_ns, until_ns): index range on start_time, exact
 * on start_unix_nano. */
static void add_window(pgr_query *q, uint64_t since_ns, uint64_t until_ns)
{
    if (since_ns) {
        int ts = add_ts(q, since_ns), ns = add_ns(q, since_ns);
        add_sql(q, " AND start_time >= $%d AND start_unix_nano >= $%d", ts, ns);
    }
    if (until_ns) {
        int ts = add_ts(q, until_ns), ns = add_ns(q, until_ns);
        add_sql(q, " AND start_time <= $%d AND start_unix_nano < $%d", ts, ns);
    }
}

void pgr_list_query(const halo_trace_filter *f, pgr_query *q)
{
    query_init(q);
    add_sql(q, "SELECT " RB_TRACE_COLUMNS " FROM traces WHERE true");
    if (f->agent_id)
        add_sql(q, " AND agent_id = $%d", add_param(q, f->agent_id));
    add_window(q, f->since_ns, f->until_ns);
    if (f->errors_only)
        add_sql(q, " AND error_count > 0");
    add_sql(q, ORDER_TRACES);
    if (f->limit > 0)
        add_sql(q, " LIMIT $%d", add_ns(q, (uint64_t)f->limit));
}

void pgr_stats_query(uint64_t since_ns, uint64_t until_ns, pgr_query *q)
{
    query_init(q);
    add_sql(q, "SELECT " RB_STATS_COLUMNS " FROM traces WHERE true");
    add_window(q, since_ns, until_ns);
}

void pgr_spans_query(const char tid[33], bool has_range, uint64_t start_ns,
                     uint64_t end_ns, pgr_query *q)
{
    query_init(q);
    snprintf(new_val(q), sizeof q->vals[0], "%.32s", tid);
    add_sql(q, "SELECT " SQ_SPAN_COLUMNS " FROM spans WHERE trace_id = $1");
    if (has_range) {
        int lo = add_ts(q, start_ns), hi = add_ts(q, end_ns);
        add_sql(q, " AND start_time >= $%d AND start_time <= $%d", lo, hi);
    }
    add_sql(q, ORDER_SPANS);
}

/* ---- running queries ----------------------------------------------------- */

typedef struct pg_row {
    const PGresult *res;
    int row;
} pg_row;

static const char *col_text(void *ctx, int col, size_t *len)
{
    const pg_row *r = ctx;
    *len = 0;
    if (PQgetisnull(r->res, r->row, col))
        return NULL;
    *len = (size_t)PQgetlength(r->res, r->row, col);
    return PQgetvalue(r->res, r->row, col);
}

static int64_t col_i64(void *ctx, int col)
{
    const pg_row *r = ctx;
    return strtoll(PQgetvalue(r->res, r->row, col), NULL, 10);
}

static double col_f64(void *ctx, int col)
{
    const pg_row *r = ctx;
    return strtod(PQgetvalue(r->res, r->row, col), NULL);
}

static bool col_null(void *ctx, int col)
{
    const pg_row *r = ctx;
    return PQgetisnull(r->res, r->row, col);
}

/* Fold every row of res into a. */
static halo_status add_rows(const PGresult *res, rb_acc *a, halo_err *err)
{
    halo_status st = HALO_OK;
    for (int i = 0; st == HALO_OK && i < PQntuples(res); i++) {
        pg_row r = {res, i};
        const rb_cols cols = {&r, col_text, col_i64, col_f64, col_null};
        st = rb_acc_add(a, &cols, err);
    }
    return st;
}

/* Run q, streaming its rows into a (single-row mode). Every result is
 * read, also after a failure, so the connection is idle again after. */
static halo_status pg_each(pg_store *s, const pgr_query *q, rb_acc *a,
                           const char *what, halo_err *err)
{
    if (!PQsendQueryParams(s->conn, q->sql, q->n, NULL, q->params, NULL, NULL,
                           0))
        return pgs_fail(s, NULL, what, err);
    PQsetSingleRowMode(s->conn); /* else one result with every row */
    halo_status st = HALO_OK;
    PGresult *res;
    while ((res = PQgetResult(s->conn)) != NULL) {
        ExecStatusType rs = PQresultStatus(res);
        bool rows = rs == PGRES_SINGLE_TUPLE || rs == PGRES_TUPLES_OK;
        if (st == HALO_OK && rows)
            st = add_rows(res, a, err);
        else if (st == HALO_OK)
            st = pgs_fail(s, res, what, err);
        PQclear(res);
    }
    return st;
}

/* ---- reads --------------------------------------------------------------- */

halo_status pgr_list_traces(halo_store *base, const halo_trace_filter *f,
                            halo_arena *arena, halo_trace_row **rows, size_t *n,
                            halo_err *err)
{
    pg_store *s = (pg_store *)base;
    pgr_query q;
    rb_acc a;
    rb_acc_init(&a, RB_TRACES, arena);
    pgr_list_query(f, &q);
    halo_status st = pgs_ready(s, "list traces", err);
    if (st == HALO_OK)
        st = pg_each(s, &q, &a, "list traces", err);
    return rb_acc_finish(&a, st, (void **)rows, n, err);
}

halo_status pgr_agent_stats(halo_store *base, uint64_t since_ns,
                            uint64_t until_ns, halo_arena *arena,
                            halo_agent_stats **rows, size_t *n, halo_err *err)
{
    pg_store *s = (pg_store *)base;
    pgr_query q;
    rb_acc a;
    rb_acc_init(&a, RB_STATS, arena);
    pgr_stats_query(since_ns, until_ns, &q);
    halo_status st = pgs_ready(s, "compute agent statistics", err);
    if (st == HALO_OK)
        st = pg_each(s, &q, &a, "compute agent statistics", err);
    return rb_acc_finish(&a, st, (void **)rows, n, err);
}

/* The trace's [start, end] in nanoseconds from `traces`; *found false when
 * it has no row. */
static halo_status trace_range(pg_store *s, const char *tid, bool *found,
                               uint64_t range[2], halo_err *err)
{
    const char *params[1] = {tid};
    PGresult *res = PQexecParams(s->conn, PGR_SQL_TRACE_RANGE, 1, NULL, params,
                                 NULL, NULL, 0);
    halo_status st = HALO_OK;
    *found = false;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        st = pgs_fail(s, res, "read a trace", err);
    } else if (PQntuples(res) == 1) {
        *found = true;
        range[0] = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        range[1] = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    return st;
}

halo_status pgr_get_trace(halo_store *base, const uint8_t trace_id[16],
                          halo_arena *arena, halo_span **spans, size_t *n,
                          halo_err *err)
{
    pg_store *s = (pg_store *)base;
    uint64_t range[2] = {0, 0};
    bool found = false;
    pgr_query q;
    rb_acc a;
    rb_acc_init_trace(&a, arena, trace_id);
    halo_status st = pgs_ready(s, "read a trace", err);
    if (st == HALO_OK)
        st = trace_range(s, a.tid, &found, range, err);
    if (st == HALO_OK) {
        pgr_spans_query(a.tid, found, range[0], range[1], &q);
        st = pg_each(s, &q, &a, "read a trace", err);
    }
    return rb_acc_finish(&a, st, (void **)spans, n, err);
}

/* ---- reports ------------------------------------------------------------- */

/* Insert, or replace every column of the report with the same id. */
static const char SQL_PUT_REPORT[] =
    "INSERT INTO reports AS r (id, agent_id, schedule, window_start,"
    " window_end, generated_at, mode, model, json, markdown)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    " ON CONFLICT (id) DO UPDATE SET (agent_id, schedule, window_start,"
    " window_end, generated_at, mode, model, json, markdown) ="
    " ROW(excluded.agent_id, excluded.schedule, excluded.window_start,"
    " excluded.window_end, excluded.generated_at, excluded.mode,"
    " excluded.model, excluded.json, excluded.markdown)";

halo_status pgr_put_report(halo_store *base, const halo_report_row *r,
                           halo_err *err)
{
    pg_store *s = (pg_store *)base;
    const char *vals[RB_REPORT_COLUMNS];
    halo_status st = rb_report_values(r, vals, err);
    if (st == HALO_OK)
        st = pgs_can_write(s, "store a report", err);
    if (st != HALO_OK)
        return st;
    PGresult *res = PQexecParams(s->conn, SQL_PUT_REPORT, RB_REPORT_COLUMNS,
                                 NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        st = pgs_fail(s, res, "store a report", err);
    PQclear(res);
    return st;
}
