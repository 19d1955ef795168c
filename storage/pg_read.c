/*
 * pg_read.c -- the query side of the PostgreSQL backend (store.h): listing
 * traces, rebuilding one trace's spans, per-agent statistics, reports, the
 * analyzer's window scan.
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
 *
 * The window scan (scan_window) streams in one READ ONLY REPEATABLE READ
 * transaction: a cursor over the window's traces, their spans read by
 * groups of traces (one primary-key query per group, pruned to the group's
 * days), grouped by trace in C and handed to store_scan.c; the next group's
 * query is in flight while the callbacks run on the current one. The
 * callback must not use the store (its connection is busy meanwhile).
 */
#include "pg_int.h"
#include "sqlite_int.h"
#include "store_rebuild.h"
#include "store_scan.h"

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

void pgr_ns_text(uint64_t ns, char out[PGR_NS_LEN])
{
    snprintf(out, PGR_NS_LEN, "%" PRId64,
             ns > INT64_MAX ? INT64_MAX : (int64_t)ns);
}

/* ns as a bigint parameter (clamped to bigint). */
static int add_ns(pgr_query *q, uint64_t ns)
{
    pgr_ns_text(ns, new_val(q));
    return q->n;
}

/* ns as a timestamptz parameter, truncated to the microsecond as the
 * write path stores it: "2026-11-16T09:00:00.123456Z". */
static int add_ts(pgr_query *q, uint64_t ns)
{
    halo_iso_from_us(ns / 1000u, new_val(q));
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

const char *pgr_value(const PGresult *res, int row, int col, size_t *len)
{
    *len = 0;
    if (PQgetisnull(res, row, col))
        return NULL;
    *len = (size_t)PQgetlength(res, row, col);
    return PQgetvalue(res, row, col);
}

static const char *col_text(void *ctx, int col, size_t *len)
{
    const pg_row *r = ctx;
    return pgr_value(r->res, r->row, col, len);
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

/* Run q, streaming its rows to fn(ctx, row) one by one (single-row
 * mode), until fn fails. Every result is read, also after a failure, so
 * the connection is idle again after. */
static halo_status pg_each(pg_store *s, const pgr_query *q, rb_row_fn fn,
                           void *ctx, const char *what, halo_err *err)
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
        for (int i = 0; st == HALO_OK && rows && i < PQntuples(res); i++) {
            pg_row r = {res, i};
            const rb_cols cols = {&r, col_text, col_i64, col_f64, col_null};
            st = fn(ctx, &cols, err);
        }
        if (st == HALO_OK && !rows)
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
        st = pg_each(s, &q, rb_acc_add, &a, "list traces", err);
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
        st = pg_each(s, &q, rb_acc_add, &a, "compute agent statistics", err);
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
        st = pg_each(s, &q, rb_acc_add, &a, "read a trace", err);
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

/* ---- reports ------------------------------------------------------------- */

/* A timestamptz column as store.h's ISO text (UTC, 9 digits; the last
 * three are zeros: PostgreSQL keeps microseconds). */
#define ISO_OF(col)                                                            \
    "to_char(" col " AT TIME ZONE 'UTC',"                                      \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"000Z\"')"
#define REPORT_LIST_COLUMNS                                                    \
    "id, agent_id, schedule, " ISO_OF("window_start") ", " ISO_OF(             \
        "window_end") ", " ISO_OF("generated_at") ", mode, model"
#define REPORT_COLUMNS REPORT_LIST_COLUMNS ", json::text, markdown"

void pgr_reports_query(const halo_report_filter *f, pgr_query *q)
{
    query_init(q);
    add_sql(q, "SELECT " REPORT_LIST_COLUMNS " FROM reports WHERE true");
    if (f->agent_id)
        add_sql(q, " AND agent_id = $%d", add_param(q, f->agent_id));
    if (f->schedule)
        add_sql(q, " AND schedule = $%d", add_param(q, f->schedule));
    /* SQLite's order: NULL windows last when descending */
    add_sql(q, " ORDER BY window_start DESC NULLS LAST, id COLLATE \"C\" DESC");
    if (f->limit > 0)
        add_sql(q, " LIMIT $%d", add_ns(q, (uint64_t)f->limit));
}

halo_status pgr_list_reports(halo_store *base, const halo_report_filter *f,
                             halo_arena *arena, halo_report_row **rows,
                             size_t *n, halo_err *err)
{
    pg_store *s = (pg_store *)base;
    pgr_query q;
    rb_acc a;
    rb_acc_init(&a, RB_REPORTS, arena);
    pgr_reports_query(f, &q);
    halo_status st = pgs_ready(s, "list reports", err);
    if (st == HALO_OK)
        st = pg_each(s, &q, rb_acc_add, &a, "list reports", err);
    return rb_acc_finish(&a, st, (void **)rows, n, err);
}

halo_status pgr_get_report(halo_store *base, const char *id, halo_arena *arena,
                           halo_report_row *out, halo_err *err)
{
    pg_store *s = (pg_store *)base;
    rb_found c = {arena, out, 0};
    pgr_query q;
    memset(out, 0, sizeof *out);
    if (!id || !*id)
        return halo_fail(err, HALO_EINVAL, "invalid report id: empty");
    halo_status st = pgs_ready(s, "read a report", err);
    query_init(&q);
    add_param(&q, id);
    add_sql(&q, "SELECT " REPORT_COLUMNS " FROM reports WHERE id = $1");
    if (st == HALO_OK)
        st = pg_each(s, &q, rb_found_add, &c, "read a report", err);
    if (st == HALO_OK && !c.found && strlen(id) >= 6) {
        q.sql[0] = '\0';
        add_sql(&q, "SELECT " REPORT_COLUMNS " FROM reports"
                    " WHERE starts_with(id, $1) ORDER BY id COLLATE \"C\""
                    " LIMIT 2");
        st = pg_each(s, &q, rb_found_add, &c, "read a report", err);
    }
    return rb_report_found(id, c.found, st, out, err);
}

/* ---- scan_window --------------------------------------------------------- */

/* Traces per FETCH from the window cursor, and the most traces and spans
 * (by traces.span_count) one span query reads: the memory of a scan is
 * two span queries' results (one being delivered, the next arriving),
 * with input/output cut, a few MB. */
#define SCAN_FETCH 2000
#define SCAN_GROUP_TRACES 1000
#define SCAN_GROUP_SPANS 8000

/* A group's spans: $1 the trace ids as a text[] literal, $2..$3 the start
 * times of the spans ([the group's first start, its last end], so
 * PostgreSQL prunes `spans` to the day partitions they cover), $4 the
 * characters of input/output kept (the byte cut is store_scan.c's).
 * left() walks the characters of every value (about 1.4 us a call,
 * measured: half of the query's time for short texts), so it only runs on
 * values longer than the cut (octet_length reads the length word). */
#define CUT(col)                                                               \
    "CASE WHEN octet_length(" col ") <= $4::integer THEN " col                 \
    " ELSE left(" col ", $4::integer) END"
const char PGR_SQL_SCAN_SPANS[] = "SELECT s.trace_id, " SS_SPAN_COLUMNS(
    CUT("s.input"),
    CUT("s.output")) " FROM spans s WHERE s.trace_id = ANY ($1::text[])"
                     " AND s.start_time >= $2 AND s.start_time <= $3";

void pgr_scan_traces_query(const halo_scan_filter *f, pgr_query *q)
{
    query_init(q);
    add_sql(q,
            "DECLARE halo_scan NO SCROLL CURSOR FOR SELECT " RB_TRACE_COLUMNS
            " FROM traces WHERE agent_id = $%d",
            add_param(q, f->agent_id));
    add_window(q, f->since_ns, f->until_ns);
}

/* One FETCH of trace rows, shared by the groups cut from it and by the
 * scan while it is the current one. */
typedef struct tbuf {
    PGresult *res;
    int refs;
} tbuf;

static void tbuf_release(tbuf *b)
{
    if (b && --b->refs == 0) {
        PQclear(b->res);
        free(b);
    }
}

/* Traces [first, first + m) of a FETCH: one span query. */
typedef struct group {
    tbuf *buf;
    int first, m;
} group;

typedef struct pg_scan {
    pg_store *s;
    ss_scan sc;
    tbuf *cur; /* the current FETCH */
    int pos;   /* its next trace */
    bool eof;  /* the cursor is exhausted */
    char cut[24];
} pg_scan;

static halo_status fetch_traces(pg_scan *p, halo_err *err)
{
    char sql[64];
    snprintf(sql, sizeof sql, "FETCH %d FROM halo_scan", SCAN_FETCH);
    tbuf_release(p->cur);
    p->cur = NULL;
    p->pos = 0;
    PGresult *res = PQexec(p->s->conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        halo_status st = pgs_fail(p->s, res, "scan a window's traces", err);
        PQclear(res);
        return st;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        p->eof = true;
        return HALO_OK;
    }
    p->cur = calloc(1, sizeof *p->cur);
    if (!p->cur) {
        PQclear(res);
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    }
    p->cur->res = res;
    p->cur->refs = 1;
    return HALO_OK;
}

/* The next group of traces (g->m == 0 at the end of the window). */
static halo_status next_group(pg_scan *p, group *g, halo_err *err)
{
    memset(g, 0, sizeof *g);
    if (!p->eof && (!p->cur || p->pos >= PQntuples(p->cur->res))) {
        halo_status st = fetch_traces(p, err);
        if (st != HALO_OK || p->eof)
            return st;
    }
    if (p->eof)
        return HALO_OK;
    const PGresult *tr = p->cur->res;
    int64_t spans = 0;
    g->buf = p->cur;
    g->first = p->pos;
    while (p->pos < PQntuples(tr) && g->m < SCAN_GROUP_TRACES &&
           (g->m == 0 || spans < SCAN_GROUP_SPANS)) {
        spans += strtoll(PQgetvalue(tr, p->pos, 9), NULL, 10);
        p->pos++;
        g->m++;
    }
    p->cur->refs++;
    return HALO_OK;
}

/* "{id,id,...}" of the group's trace ids (hex: no quoting needed), and
 * its [min start, max end]. */
static char *group_ids(const group *g, uint64_t *lo, uint64_t *hi)
{
    const PGresult *tr = g->buf->res;
    char *ids = malloc((size_t)g->m * 34 + 3);
    if (!ids)
        return NULL;
    size_t o = 0;
    ids[o++] = '{';
    *lo = UINT64_MAX;
    *hi = 0;
    for (int i = g->first; i < g->first + g->m; i++) {
        int len = PQgetlength(tr, i, 0);
        len = len > 32 ? 32 : len;
        if (i > g->first)
            ids[o++] = ',';
        memcpy(ids + o, PQgetvalue(tr, i, 0), (size_t)len);
        o += (size_t)len;
        uint64_t st = strtoull(PQgetvalue(tr, i, 6), NULL, 10);
        uint64_t en = strtoull(PQgetvalue(tr, i, 7), NULL, 10);
        *lo = st < *lo ? st : *lo;
        *hi = en > *hi ? en : *hi;
    }
    ids[o++] = '}';
    ids[o] = '\0';
    return ids;
}

/* Send the group's span query (its result is read by group_result). */
static halo_status send_group(pg_scan *p, const group *g, halo_err *err)
{
    uint64_t lo, hi;
    char lo_ts[HALO_ISO_NS_LEN], hi_ts[HALO_ISO_NS_LEN];
    char *ids = group_ids(g, &lo, &hi);
    if (!ids)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_iso_from_us(lo / 1000u, lo_ts); /* microseconds, as stored */
    halo_iso_from_us(hi / 1000u, hi_ts);
    const char *params[4] = {ids, lo_ts, hi_ts, p->cut};
    int ok = PQsendQueryParams(p->s->conn, PGR_SQL_SCAN_SPANS, 4, NULL, params,
                               NULL, NULL, 0);
    free(ids);
    return ok ? HALO_OK : pgs_fail(p->s, NULL, "scan a window's spans", err);
}

/* The result of the query in flight (every result read, so the
 * connection is idle after); *out NULL on failure. */
static halo_status group_result(pg_scan *p, PGresult **out, halo_err *err)
{
    halo_status st = HALO_OK;
    PGresult *res;
    *out = NULL;
    while ((res = PQgetResult(p->s->conn)) != NULL) {
        if (st == HALO_OK && !*out && PQresultStatus(res) == PGRES_TUPLES_OK) {
            *out = res;
            continue;
        }
        if (st == HALO_OK)
            st = pgs_fail(p->s, res, "scan a window's spans", err);
        PQclear(res);
    }
    if (st == HALO_OK && !*out)
        st = pgs_fail(p->s, NULL, "scan a window's spans", err);
    if (st != HALO_OK) {
        PQclear(*out);
        *out = NULL;
    }
    return st;
}

/* Group membership of span rows: an open-addressing map from trace id to
 * the trace's index in the group. */
typedef struct id_map {
    int *slot; /* index + 1, 0 empty */
    size_t mask;
    const group *g;
} id_map;

static size_t id_hash(const char *p, size_t n)
{
    return (size_t)halo_hash_bytes(p, n);
}

static bool id_map_build(id_map *mp, const group *g)
{
    const PGresult *tr = g->buf->res;
    size_t cap = 16;
    while (cap < 2 * (size_t)g->m)
        cap *= 2;
    mp->slot = calloc(cap, sizeof *mp->slot);
    mp->mask = cap - 1;
    mp->g = g;
    if (!mp->slot)
        return false;
    for (int i = 0; i < g->m; i++) {
        const char *id = PQgetvalue(tr, g->first + i, 0);
        size_t k = id_hash(id, strlen(id)) & mp->mask;
        while (mp->slot[k])
            k = (k + 1) & mp->mask;
        mp->slot[k] = i + 1;
    }
    return true;
}

static int id_map_get(const id_map *mp, const char *id, size_t n)
{
    const PGresult *tr = mp->g->buf->res;
    for (size_t k = id_hash(id, n) & mp->mask; mp->slot[k];
         k = (k + 1) & mp->mask) {
        int i = mp->slot[k] - 1;
        int row = mp->g->first + i;
        if ((size_t)PQgetlength(tr, row, 0) == n &&
            memcmp(PQgetvalue(tr, row, 0), id, n) == 0)
            return i;
    }
    return -1;
}

/* Span rows grouped by trace (a counting sort): the rows of trace i are
 * order[first[i] .. first[i + 1]). */
typedef struct by_trace {
    int *order;
    int *first;
} by_trace;

static bool group_spans(const group *g, const PGresult *sp, by_trace *bt)
{
    int n = PQntuples(sp);
    id_map mp = {NULL, 0, NULL};
    int *bucket = malloc(((size_t)n + 1) * sizeof *bucket);
    int *next = malloc(((size_t)g->m + 1) * sizeof *next);
    bt->order = malloc(((size_t)n + 1) * sizeof *bt->order);
    bt->first = calloc((size_t)g->m + 1, sizeof *bt->first);
    bool ok = bucket && next && bt->order && bt->first && id_map_build(&mp, g);
    for (int r = 0; ok && r < n; r++) {
        bucket[r] = id_map_get(&mp, PQgetvalue(sp, r, 0),
                               (size_t)PQgetlength(sp, r, 0));
        if (bucket[r] >= 0)
            bt->first[bucket[r] + 1]++;
    }
    for (int i = 0; ok && i < g->m; i++)
        bt->first[i + 1] += bt->first[i];
    if (ok)
        memcpy(next, bt->first, (size_t)g->m * sizeof *next);
    for (int r = 0; ok && r < n; r++)
        if (bucket[r] >= 0)
            bt->order[next[bucket[r]]++] = r;
    free(mp.slot);
    free(bucket);
    free(next);
    return ok;
}

/* Deliver the group's traces with their spans. */
static halo_status deliver_group(pg_scan *p, const group *g, const PGresult *sp,
                                 halo_err *err)
{
    by_trace bt = {NULL, NULL};
    halo_status st = HALO_OK;
    if (!group_spans(g, sp, &bt))
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
    for (int i = 0; st == HALO_OK && !p->sc.stopped && i < g->m; i++) {
        pg_row tr = {g->buf->res, g->first + i};
        const rb_cols tcols = {&tr, col_text, col_i64, col_f64, col_null};
        st = ss_begin_trace(&p->sc, &tcols, 0, err);
        for (int k = bt.first[i]; st == HALO_OK && k < bt.first[i + 1]; k++) {
            pg_row r = {sp, bt.order[k]};
            const rb_cols cols = {&r, col_text, col_i64, col_f64, col_null};
            st = ss_add_span(&p->sc, &cols, 1, err);
        }
        if (st == HALO_OK)
            ss_flush(&p->sc);
    }
    free(bt.order);
    free(bt.first);
    return st;
}

/* Pipelined: while the callbacks run over one group, PostgreSQL already
 * reads the next group's spans. */
static halo_status scan_groups(pg_scan *p, halo_err *err)
{
    group g, next = {NULL, 0, 0};
    PGresult *sp = NULL;
    halo_status st = next_group(p, &g, err);
    if (st != HALO_OK || g.m == 0)
        return st;
    st = send_group(p, &g, err);
    while (st == HALO_OK) {
        memset(&next, 0, sizeof next);
        st = group_result(p, &sp, err);
        if (st == HALO_OK)
            st = next_group(p, &next, err);
        bool more = st == HALO_OK && next.m > 0;
        if (more)
            st = send_group(p, &next, err);
        if (st == HALO_OK)
            st = deliver_group(p, &g, sp, err);
        PQclear(sp);
        sp = NULL;
        tbuf_release(g.buf);
        g = next;
        if (!more) {
            tbuf_release(g.buf);
            break;
        }
        if (st != HALO_OK || p->sc.stopped) { /* drain the query in flight */
            PGresult *res;
            while ((res = PQgetResult(p->s->conn)) != NULL)
                PQclear(res);
            tbuf_release(g.buf);
            break;
        }
    }
    return st;
}

/* A command inside the scan's transaction. */
static halo_status scan_cmd(pg_store *s, const char *sql, const pgr_query *q,
                            halo_err *err)
{
    PGresult *res =
        q ? PQexecParams(s->conn, q->sql, q->n, NULL, q->params, NULL, NULL, 0)
          : PQexec(s->conn, sql);
    halo_status st = HALO_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        st = pgs_fail(s, res, "scan a window", err);
    PQclear(res);
    return st;
}

halo_status pgr_scan_window(halo_store *base, const halo_scan_filter *f,
                            halo_scan_fn fn, void *ctx, halo_err *err)
{
    pg_store *s = (pg_store *)base;
    pgr_query q;
    pg_scan p;
    if (!f->agent_id)
        return halo_fail(err, HALO_EINVAL, "invalid scan: no agent id");
    if (f->until_ns <= f->since_ns)
        return HALO_OK;
    halo_status st = pgs_ready(s, "scan a window", err);
    if (st != HALO_OK)
        return st;
    memset(&p, 0, sizeof p);
    p.s = s;
    ss_init(&p.sc, fn, ctx, ss_max_text(f));
    snprintf(p.cut, sizeof p.cut, "%zu", p.sc.max_text);
    pgr_scan_traces_query(f, &q);
    st = scan_cmd(s, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL,
                  err);
    if (st == HALO_OK)
        st = scan_cmd(s, NULL, &q, err);
    if (st == HALO_OK)
        st = scan_groups(&p, err);
    tbuf_release(p.cur);
    if (st == HALO_OK)
        st = scan_cmd(s, "COMMIT", NULL, err);
    if (st != HALO_OK && PQstatus(s->conn) == CONNECTION_OK &&
        PQtransactionStatus(s->conn) != PQTRANS_IDLE)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    ss_free(&p.sc);
    return st;
}
