/*
 * sqlite_read.c -- the query side of the SQLite backend (store.h):
 * listing traces, rebuilding one trace's spans, per-agent statistics.
 *
 * Rows are read with prepared statements and bound parameters only (the
 * list query is assembled from fixed fragments, never from user text) and
 * handed, through the column accessors below, to store_rebuild.c, which
 * turns them into the results exactly as the PostgreSQL backend does
 * (results carved from the caller's arena).
 *
 * Orderings are total, so both backends give the same order: traces newest
 * first, ties by trace id (descending); a trace's spans by start time, then
 * span id.
 */
#include "sqlite_int.h"
#include "store_rebuild.h"

#include <stdio.h>
#include <string.h>

/* ---- columns for store_rebuild.c ----------------------------------------- */

static const char *col_text(void *ctx, int col, size_t *len)
{
    const char *t = (const char *)sqlite3_column_text(ctx, col);
    *len = t ? (size_t)sqlite3_column_bytes(ctx, col) : 0;
    return t;
}

static int64_t col_i64(void *ctx, int col)
{
    return sqlite3_column_int64(ctx, col);
}

static double col_f64(void *ctx, int col)
{
    return sqlite3_column_double(ctx, col);
}

static bool col_null(void *ctx, int col)
{
    return sqlite3_column_type(ctx, col) == SQLITE_NULL;
}

/* Step st to the end, folding every row into a. */
static halo_status sq_each(sq_store *s, sqlite3_stmt *st, rb_acc *a,
                           const char *what, halo_err *err)
{
    const rb_cols cols = {st, col_text, col_i64, col_f64, col_null};
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            return HALO_OK;
        if (rc != SQLITE_ROW)
            return sq_fail(s, err, what);
        halo_status ret = rb_acc_add(a, &cols, err);
        if (ret != HALO_OK)
            return ret;
    }
}

/* ---- get_trace ----------------------------------------------------------- */

halo_status sq_get_trace(halo_store *base, const uint8_t trace_id[16],
                         halo_arena *arena, halo_span **spans, size_t *n,
                         halo_err *err)
{
    sq_store *s = (sq_store *)base;
    rb_acc a;
    rb_acc_init_trace(&a, arena, trace_id);
    sqlite3_bind_text(s->get_trace, 1, a.tid, 32, SQLITE_STATIC);
    halo_status st = sq_each(s, s->get_trace, &a, "read a trace", err);
    sqlite3_reset(s->get_trace);
    return rb_acc_finish(&a, st, (void **)spans, n, err);
}

/* ---- list_traces --------------------------------------------------------- */

/* Bind :name when the statement has it. */
static void bind_named_text(sqlite3_stmt *st, const char *name, const char *v)
{
    int i = sqlite3_bind_parameter_index(st, name);
    if (i > 0)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

static halo_status prepare_list(sq_store *s, const halo_trace_filter *f,
                                sqlite3_stmt **out, halo_err *err)
{
    char sql[512];
    char since[31], until[31];
    snprintf(sql, sizeof sql,
             "SELECT " RB_TRACE_COLUMNS " FROM traces WHERE 1%s%s%s%s"
             " ORDER BY start_time DESC, trace_id DESC%s",
             f->agent_id ? " AND agent_id = :agent" : "",
             f->since_ns ? " AND start_time >= :since" : "",
             f->until_ns ? " AND start_time < :until" : "",
             f->errors_only ? " AND error_count > 0" : "",
             f->limit > 0 ? " LIMIT :limit" : "");
    if (sqlite3_prepare_v2(s->db, sql, -1, out, NULL) != SQLITE_OK)
        return sq_fail(s, err, "prepare the trace list");
    halo_iso_from_ns(f->since_ns, since);
    halo_iso_from_ns(f->until_ns, until);
    bind_named_text(*out, ":agent", f->agent_id);
    bind_named_text(*out, ":since", since);
    bind_named_text(*out, ":until", until);
    int li = sqlite3_bind_parameter_index(*out, ":limit");
    if (li > 0)
        sqlite3_bind_int64(*out, li, f->limit);
    return HALO_OK;
}

halo_status sq_list_traces(halo_store *base, const halo_trace_filter *f,
                           halo_arena *arena, halo_trace_row **rows, size_t *n,
                           halo_err *err)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *st = NULL;
    rb_acc a;
    rb_acc_init(&a, RB_TRACES, arena);
    halo_status ret = prepare_list(s, f, &st, err);
    if (ret == HALO_OK)
        ret = sq_each(s, st, &a, "list traces", err);
    sqlite3_finalize(st);
    return rb_acc_finish(&a, ret, (void **)rows, n, err);
}

/* ---- agent_stats --------------------------------------------------------- */

halo_status sq_agent_stats(halo_store *base, uint64_t since_ns,
                           uint64_t until_ns, halo_arena *arena,
                           halo_agent_stats **rows, size_t *n, halo_err *err)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *st = NULL;
    char since[31], until[31];
    rb_acc a;
    rb_acc_init(&a, RB_STATS, arena);
    halo_iso_from_ns(since_ns, since);
    halo_iso_from_ns(until_ns ? until_ns : UINT64_MAX / 2, until);
    halo_status ret = HALO_OK;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT " RB_STATS_COLUMNS " FROM traces"
                           " WHERE start_time >= ?1 AND start_time < ?2",
                           -1, &st, NULL) != SQLITE_OK)
        ret = sq_fail(s, err, "prepare the agent statistics");
    if (ret == HALO_OK) {
        sqlite3_bind_text(st, 1, since, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, until, -1, SQLITE_STATIC);
        ret = sq_each(s, st, &a, "compute agent statistics", err);
    }
    sqlite3_finalize(st);
    return rb_acc_finish(&a, ret, (void **)rows, n, err);
}
