/*
 * sqlite_read.c -- the query side of the SQLite backend (store.h):
 * listing traces, rebuilding one trace's spans, per-agent statistics,
 * reading reports, the analyzer's window scan (storage/README.md says how
 * it streams).
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
#include "store_scan.h"

#include <stdio.h>
#include <string.h>

/* ---- columns for store_rebuild.c ----------------------------------------- */

const char *sq_col_text(void *ctx, int col, size_t *len)
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

/* Step st to the end, handing every row to fn(ctx, row), until fn
 * fails. */
static halo_status sq_each(sq_store *s, sqlite3_stmt *st, rb_row_fn fn,
                           void *ctx, const char *what, halo_err *err)
{
    const rb_cols cols = {st, sq_col_text, col_i64, col_f64, col_null};
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            return HALO_OK;
        if (rc != SQLITE_ROW)
            return sq_fail(s, err, what);
        halo_status ret = fn(ctx, &cols, err);
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
    halo_status st =
        sq_each(s, s->get_trace, rb_acc_add, &a, "read a trace", err);
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
        ret = sq_each(s, st, rb_acc_add, &a, "list traces", err);
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
        ret = sq_each(s, st, rb_acc_add, &a, "compute agent statistics", err);
    }
    sqlite3_finalize(st);
    return rb_acc_finish(&a, ret, (void **)rows, n, err);
}

/* ---- scan_window --------------------------------------------------------- */

/* The window's traces by the index (agent_id, start_time); then, per
 * trace, its spans by the unique index (trace_id, span_id), ordered in C
 * (store_scan.c). The whole scan is one read transaction: one snapshot,
 * whatever the writers do meanwhile. Only the current trace is in memory.
 * input/output are cut in C: SQLite's substr() counts characters, and
 * nothing crosses a network here. */
static const char SQL_SCAN_TRACES[] =
    "SELECT " RB_TRACE_COLUMNS " FROM traces"
    " WHERE agent_id = ?1 AND start_time >= ?2 AND start_time < ?3";

static const char SQL_SCAN_SPANS[] =
    "SELECT " SS_SPAN_COLUMNS("s.input", "s.output") " FROM spans s"
                                                     " WHERE s.trace_id = ?1";

static halo_status add_span(void *sc, const rb_cols *row, halo_err *err)
{
    return ss_add_span(sc, row, 0, err);
}

/* The spans of the trace just begun in sc. */
static halo_status scan_spans(sq_store *s, sqlite3_stmt *sp, ss_scan *sc,
                              halo_err *err)
{
    sqlite3_bind_text(sp, 1, sc->trace.trace_id, -1, SQLITE_STATIC);
    halo_status st = sq_each(s, sp, add_span, sc, "scan a window's spans", err);
    sqlite3_reset(sp);
    return st;
}

static halo_status scan_all(sq_store *s, sqlite3_stmt *tr, sqlite3_stmt *sp,
                            ss_scan *sc, halo_err *err)
{
    const rb_cols cols = {tr, sq_col_text, col_i64, col_f64, col_null};
    while (!sc->stopped) {
        int rc = sqlite3_step(tr);
        if (rc == SQLITE_DONE)
            return HALO_OK;
        if (rc != SQLITE_ROW)
            return sq_fail(s, err, "scan a window's traces");
        halo_status st = ss_begin_trace(sc, &cols, 0, err);
        if (st == HALO_OK)
            st = scan_spans(s, sp, sc, err);
        if (st != HALO_OK)
            return st;
        ss_flush(sc);
    }
    return HALO_OK;
}

halo_status sq_scan_window(halo_store *base, const halo_scan_filter *f,
                           halo_scan_fn fn, void *ctx, halo_err *err)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *tr = NULL, *sp = NULL;
    char since[31], until[31];
    ss_scan sc;
    if (!f->agent_id)
        return halo_fail(err, HALO_EINVAL, "invalid scan: no agent id");
    if (f->until_ns <= f->since_ns)
        return HALO_OK;
    ss_init(&sc, fn, ctx, ss_max_text(f));
    halo_iso_from_ns(f->since_ns, since);
    halo_iso_from_ns(f->until_ns, until);
    halo_status st = sq_exec(s, "BEGIN", "begin a scan", err);
    if (st != HALO_OK)
        return st;
    if (sqlite3_prepare_v2(s->db, SQL_SCAN_TRACES, -1, &tr, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(s->db, SQL_SCAN_SPANS, -1, &sp, NULL) != SQLITE_OK)
        st = sq_fail(s, err, "prepare the window scan");
    if (st == HALO_OK) {
        sqlite3_bind_text(tr, 1, f->agent_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(tr, 2, since, -1, SQLITE_STATIC);
        sqlite3_bind_text(tr, 3, until, -1, SQLITE_STATIC);
        st = scan_all(s, tr, sp, &sc, err);
    }
    sqlite3_finalize(tr);
    sqlite3_finalize(sp);
    ss_free(&sc);
    if (st == HALO_OK)
        return sq_exec(s, "COMMIT", "end a scan", err);
    sq_rollback(s);
    return st;
}

/* ---- reports ------------------------------------------------------------- */

#define REPORT_LIST_COLUMNS                                                    \
    "id, agent_id, schedule, window_start, window_end, generated_at, mode, "   \
    "model"
#define REPORT_COLUMNS REPORT_LIST_COLUMNS ", json, markdown"

halo_status sq_list_reports(halo_store *base, const halo_report_filter *f,
                            halo_arena *arena, halo_report_row **rows,
                            size_t *n, halo_err *err)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *st = NULL;
    char sql[384];
    rb_acc a;
    rb_acc_init(&a, RB_REPORTS, arena);
    snprintf(sql, sizeof sql,
             "SELECT " REPORT_LIST_COLUMNS " FROM reports WHERE 1%s%s"
             " ORDER BY window_start DESC, id DESC LIMIT ?3",
             f->agent_id ? " AND agent_id = ?1" : "",
             f->schedule ? " AND schedule = ?2" : "");
    halo_status ret = HALO_OK;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        ret = sq_fail(s, err, "prepare the report list");
    if (ret == HALO_OK) {
        sqlite3_bind_text(st, 1, f->agent_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, f->schedule, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, f->limit > 0 ? f->limit : -1);
        ret = sq_each(s, st, rb_acc_add, &a, "list reports", err);
    }
    sqlite3_finalize(st);
    return rb_acc_finish(&a, ret, (void **)rows, n, err);
}

/* Reports whose id is id (exact) or, when !exact, starts with it, into
 * f; at most two rows read (two: ambiguous). */
static halo_status find_reports(sq_store *s, const char *id, bool exact,
                                rb_found *f, halo_err *err)
{
    sqlite3_stmt *st = NULL;
    f->found = 0;
    const char *sql =
        exact ? "SELECT " REPORT_COLUMNS " FROM reports WHERE id = ?1"
              : "SELECT " REPORT_COLUMNS " FROM reports"
                " WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT 2";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_fail(s, err, "prepare a report lookup");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    halo_status ret = sq_each(s, st, rb_found_add, f, "read a report", err);
    sqlite3_finalize(st);
    return ret;
}

halo_status sq_get_report(halo_store *base, const char *id, halo_arena *arena,
                          halo_report_row *out, halo_err *err)
{
    sq_store *s = (sq_store *)base;
    rb_found f = {arena, out, 0};
    memset(out, 0, sizeof *out);
    if (!id || !*id)
        return halo_fail(err, HALO_EINVAL, "invalid report id: empty");
    halo_status st = find_reports(s, id, true, &f, err);
    if (st == HALO_OK && !f.found && strlen(id) >= 6)
        st = find_reports(s, id, false, &f, err);
    return rb_report_found(id, f.found, st, out, err);
}
