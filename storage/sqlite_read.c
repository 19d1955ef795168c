/*
 * sqlite_read.c -- the query side of the SQLite backend (store.h):
 * listing traces, rebuilding one trace's spans, per-agent statistics.
 *
 * Results are carved from the caller's arena. Rows are read with prepared
 * statements and bound parameters only (the list query is assembled from
 * fixed fragments, never from user text). A trace is rebuilt into halo_span
 * values exactly as the exporter received them: the JSON columns are decoded
 * by json_attrs.c, and spans whose resource (or scope) JSON is identical
 * share one halo_resource (halo_scope), as they did in the OTLP request, so
 * halo_otlp_encode_json groups them the same way again.
 */
#include "sqlite_int.h"

#include "core/json_attrs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- column helpers ------------------------------------------------------ */

typedef struct rd {
    sq_store *s;
    sqlite3_stmt *st;
    halo_arena *arena;
    bool oom;
} rd;

/* The column as an arena string; NULL for SQL NULL. */
static const char *col_str(rd *r, int col)
{
    const unsigned char *t = sqlite3_column_text(r->st, col);
    if (!t)
        return NULL;
    int len = sqlite3_column_bytes(r->st, col);
    char *c = halo_arena_strndup(r->arena, (const char *)t, (size_t)len);
    if (!c)
        r->oom = true;
    return c;
}

/* The column as an arena string; "" for SQL NULL. */
static const char *col_str0(rd *r, int col)
{
    const char *c = col_str(r, col);
    return c ? c : "";
}

static const char *col_raw(rd *r, int col, size_t *len)
{
    const char *t = (const char *)sqlite3_column_text(r->st, col);
    *len = t ? (size_t)sqlite3_column_bytes(r->st, col) : 0;
    return t;
}

static uint32_t col_u32(rd *r, int col)
{
    int64_t v = sqlite3_column_int64(r->st, col);
    return v < 0 || v > UINT32_MAX ? 0 : (uint32_t)v;
}

/* ---- get_trace ----------------------------------------------------------- */

typedef struct res_entry {
    const char *json;
    const char *schema_url;
    uint32_t dropped;
    halo_resource *res;
} res_entry;

typedef struct scope_entry {
    const char *json;
    halo_scope *scope;
} scope_entry;

typedef struct rebuild {
    rd r;
    res_entry *res;
    size_t n_res, cap_res;
    scope_entry *scopes;
    size_t n_scopes, cap_scopes;
} rebuild;

static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return true;
    size_t nc = *cap ? 2 * *cap : 8;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = nc;
    return true;
}

/* The shared resource for this row's resource columns. */
static halo_status row_resource(rebuild *b, const halo_resource **out,
                                halo_err *err)
{
    size_t len;
    const char *json = col_raw(&b->r, C_RESOURCE - 1, &len);
    const char *schema =
        (const char *)sqlite3_column_text(b->r.st, C_RES_SCHEMA - 1);
    uint32_t dropped = col_u32(&b->r, C_RES_DROPPED - 1);
    if (!schema)
        schema = "";
    if (!json)
        json = "";
    for (size_t i = 0; i < b->n_res; i++) {
        res_entry *e = &b->res[i];
        if (e->dropped == dropped && strcmp(e->json, json) == 0 &&
            strcmp(e->schema_url, schema) == 0) {
            *out = e->res;
            return HALO_OK;
        }
    }
    halo_resource *res = halo_arena_calloc(b->r.arena, 1, sizeof *res);
    if (!res || !grow((void **)&b->res, &b->cap_res, b->n_res, sizeof *b->res))
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_status st = halo_json_decode_attrs(json, len, b->r.arena, &res->attrs,
                                            "resource", err);
    if (st != HALO_OK)
        return st;
    res->dropped_attrs = dropped;
    res->schema_url = halo_arena_strdup(b->r.arena, schema);
    res_entry *e = &b->res[b->n_res++];
    e->json = halo_arena_strdup(b->r.arena, json);
    e->schema_url = res->schema_url;
    e->dropped = dropped;
    e->res = res;
    if (!e->json || !res->schema_url)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    *out = res;
    return HALO_OK;
}

static halo_status row_scope(rebuild *b, const halo_scope **out, halo_err *err)
{
    size_t len;
    const char *json = col_raw(&b->r, C_SCOPE - 1, &len);
    if (!json)
        json = "";
    for (size_t i = 0; i < b->n_scopes; i++) {
        if (strcmp(b->scopes[i].json, json) == 0) {
            *out = b->scopes[i].scope;
            return HALO_OK;
        }
    }
    halo_scope *sc = halo_arena_calloc(b->r.arena, 1, sizeof *sc);
    if (!sc || !grow((void **)&b->scopes, &b->cap_scopes, b->n_scopes,
                     sizeof *b->scopes))
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_status st = halo_json_decode_scope(json, len, b->r.arena, sc, err);
    if (st != HALO_OK)
        return st;
    scope_entry *e = &b->scopes[b->n_scopes++];
    e->json = halo_arena_strdup(b->r.arena, json);
    e->scope = sc;
    if (!e->json)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    *out = sc;
    return HALO_OK;
}

static int status_parse(const char *s)
{
    if (s && strcmp(s, "OK") == 0)
        return HALO_STATUS_OK;
    if (s && strcmp(s, "ERROR") == 0)
        return HALO_STATUS_ERROR;
    return HALO_STATUS_UNSET;
}

static halo_status row_ids(rd *r, halo_span *sp, halo_err *err)
{
    size_t lt, ls, lp;
    const char *t = col_raw(r, C_TRACE_ID - 1, &lt);
    const char *s = col_raw(r, C_SPAN_ID - 1, &ls);
    const char *p = col_raw(r, C_PARENT - 1, &lp);
    if (!t || !halo_hex_decode(t, lt, sp->trace_id, 16))
        return halo_fail(err, HALO_EINVAL, "invalid spans.trace_id \"%s\"",
                         t ? t : "");
    if (!s || !halo_hex_decode(s, ls, sp->span_id, 8))
        return halo_fail(err, HALO_EINVAL, "invalid spans.span_id \"%s\"",
                         s ? s : "");
    if (p && !halo_hex_decode(p, lp, sp->parent_span_id, 8))
        return halo_fail(err, HALO_EINVAL,
                         "invalid spans.parent_span_id \"%s\" (span %s)", p, s);
    return HALO_OK;
}

static void row_derived(rd *r, halo_derived *d)
{
    sqlite3_stmt *st = r->st;
    d->agent_id = col_str(r, C_AGENT_ID - 1);
    d->agent_name = col_str(r, C_AGENT_NAME - 1);
    d->session_id = col_str(r, C_SESSION_ID - 1);
    d->user_id = col_str(r, C_USER_ID - 1);
    d->service_name = col_str(r, C_SERVICE - 1);
    d->span_type = col_str(r, C_SPAN_TYPE - 1);
    d->model = col_str(r, C_MODEL - 1);
    d->tool_name = col_str(r, C_TOOL - 1);
    d->input = col_str(r, C_INPUT - 1);
    d->output = col_str(r, C_OUTPUT - 1);
    d->has_input_tokens = sqlite3_column_type(st, C_IN_TOK - 1) != SQLITE_NULL;
    d->input_tokens = sqlite3_column_int64(st, C_IN_TOK - 1);
    d->has_output_tokens =
        sqlite3_column_type(st, C_OUT_TOK - 1) != SQLITE_NULL;
    d->output_tokens = sqlite3_column_int64(st, C_OUT_TOK - 1);
    d->has_cost = sqlite3_column_type(st, C_COST - 1) != SQLITE_NULL;
    d->cost = sqlite3_column_double(st, C_COST - 1);
    d->fallback_mask = col_u32(r, C_FB_MASK - 1);
}

/* The JSON columns of this row (attributes, events, links). */
static halo_status row_json(rd *r, halo_span *sp, halo_err *err)
{
    size_t len;
    const char *t = col_raw(r, C_ATTRS - 1, &len);
    halo_status st =
        halo_json_decode_attrs(t, len, r->arena, &sp->attrs, "attributes", err);
    if (st != HALO_OK)
        return st;
    t = col_raw(r, C_EVENTS - 1, &len);
    st = halo_json_decode_events(t, len, r->arena, &sp->events, &sp->n_events,
                                 err);
    if (st != HALO_OK)
        return st;
    t = col_raw(r, C_LINKS - 1, &len);
    return halo_json_decode_links(t, len, r->arena, &sp->links, &sp->n_links,
                                  err);
}

static halo_status row_to_span(rebuild *b, halo_span *sp, halo_err *err)
{
    rd *r = &b->r;
    sqlite3_stmt *st = r->st;
    memset(sp, 0, sizeof *sp);
    halo_status ret = row_ids(r, sp, err);
    if (ret == HALO_OK)
        ret = row_json(r, sp, err);
    if (ret == HALO_OK)
        ret = row_resource(b, &sp->resource, err);
    if (ret == HALO_OK)
        ret = row_scope(b, &sp->scope, err);
    if (ret != HALO_OK)
        return ret;
    sp->name = col_str0(r, C_NAME - 1);
    sp->kind = sq_kind_parse((const char *)sqlite3_column_text(st, C_KIND - 1));
    sp->start_ns = (uint64_t)sqlite3_column_int64(st, C_START_NS - 1);
    sp->end_ns = (uint64_t)sqlite3_column_int64(st, C_END_NS - 1);
    sp->status_code =
        status_parse((const char *)sqlite3_column_text(st, C_STATUS_CODE - 1));
    sp->status_message = col_str0(r, C_STATUS_MSG - 1);
    sp->trace_state = col_str0(r, C_TRACE_STATE - 1);
    sp->flags = col_u32(r, C_FLAGS - 1);
    sp->dropped_attrs = col_u32(r, C_DROPPED_ATTRS - 1);
    sp->dropped_events = col_u32(r, C_DROPPED_EVENTS - 1);
    sp->dropped_links = col_u32(r, C_DROPPED_LINKS - 1);
    row_derived(r, &sp->d);
    if (r->oom)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    return HALO_OK;
}

static halo_status read_spans(rebuild *b, halo_span **arr, size_t *n,
                              size_t *cap, halo_err *err)
{
    for (;;) {
        int rc = sqlite3_step(b->r.st);
        if (rc == SQLITE_DONE)
            return HALO_OK;
        if (rc != SQLITE_ROW)
            return sq_fail(b->r.s, err, "read a trace");
        if (!grow((void **)arr, cap, *n, sizeof **arr))
            return halo_fail(err, HALO_ENOMEM, "out of memory");
        halo_status st = row_to_span(b, &(*arr)[*n], err);
        if (st != HALO_OK)
            return st;
        (*n)++;
    }
}

halo_status sq_get_trace(halo_store *base, const uint8_t trace_id[16],
                         halo_arena *arena, halo_span **spans, size_t *n,
                         halo_err *err)
{
    sq_store *s = (sq_store *)base;
    char tid[33];
    halo_span *arr = NULL;
    size_t count = 0, cap = 0;
    rebuild b;
    memset(&b, 0, sizeof b);
    b.r = (rd){s, s->get_trace, arena, false};
    *spans = NULL;
    *n = 0;
    halo_hex_encode(trace_id, 16, tid);
    sqlite3_bind_text(s->get_trace, 1, tid, 32, SQLITE_STATIC);
    halo_status st = read_spans(&b, &arr, &count, &cap, err);
    if (st == HALO_OK && count == 0)
        st = halo_fail(err, HALO_ENOTFOUND, "trace %s not found", tid);
    if (st == HALO_OK) {
        *spans = halo_arena_alloc(arena, count * sizeof *arr);
        if (!*spans)
            st = halo_fail(err, HALO_ENOMEM, "out of memory");
        else
            memcpy(*spans, arr, count * sizeof *arr);
    }
    if (st == HALO_OK)
        *n = count;
    sqlite3_reset(s->get_trace);
    free(arr);
    free(b.res);
    free(b.scopes);
    return st;
}

/* ---- list_traces --------------------------------------------------------- */

#define TRACE_COLUMNS                                                          \
    "trace_id, agent_id, agent_name, session_id, user_id, root_name, "         \
    "start_time, end_time, start_unix_nano, end_unix_nano, duration_ms, "      \
    "span_count, error_count, llm_calls, tool_calls, input_tokens, "           \
    "output_tokens, cost"

static void row_to_trace(rd *r, halo_trace_row *t)
{
    sqlite3_stmt *st = r->st;
    memset(t, 0, sizeof *t);
    const char *id = (const char *)sqlite3_column_text(st, 0);
    snprintf(t->trace_id, sizeof t->trace_id, "%s", id ? id : "");
    t->agent_id = col_str(r, 1);
    t->agent_name = col_str(r, 2);
    t->session_id = col_str(r, 3);
    t->user_id = col_str(r, 4);
    t->root_name = col_str(r, 5);
    t->start_time = col_str0(r, 6);
    t->end_time = col_str0(r, 7);
    t->start_ns = (uint64_t)sqlite3_column_int64(st, 8);
    t->end_ns = (uint64_t)sqlite3_column_int64(st, 9);
    t->duration_ms = sqlite3_column_double(st, 10);
    t->span_count = sqlite3_column_int64(st, 11);
    t->error_count = sqlite3_column_int64(st, 12);
    t->llm_calls = sqlite3_column_int64(st, 13);
    t->tool_calls = sqlite3_column_int64(st, 14);
    t->input_tokens = sqlite3_column_int64(st, 15);
    t->output_tokens = sqlite3_column_int64(st, 16);
    t->cost = sqlite3_column_double(st, 17);
}

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
             "SELECT " TRACE_COLUMNS " FROM traces WHERE 1%s%s%s%s"
             " ORDER BY start_time DESC%s",
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
    halo_trace_row *arr = NULL;
    size_t count = 0, cap = 0;
    *rows = NULL;
    *n = 0;
    halo_status ret = prepare_list(s, f, &st, err);
    rd r = {s, st, arena, false};
    while (ret == HALO_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            ret = sq_fail(s, err, "list traces");
            break;
        }
        if (!grow((void **)&arr, &cap, count, sizeof *arr)) {
            ret = halo_fail(err, HALO_ENOMEM, "out of memory");
            break;
        }
        row_to_trace(&r, &arr[count++]);
    }
    if (ret == HALO_OK && r.oom)
        ret = halo_fail(err, HALO_ENOMEM, "out of memory");
    if (ret == HALO_OK && count) {
        *rows = halo_arena_alloc(arena, count * sizeof *arr);
        if (!*rows)
            ret = halo_fail(err, HALO_ENOMEM, "out of memory");
        else
            memcpy(*rows, arr, count * sizeof *arr);
    }
    if (ret == HALO_OK)
        *n = count;
    sqlite3_finalize(st);
    free(arr);
    return ret;
}

/* ---- agent_stats --------------------------------------------------------- */

typedef struct stats_acc {
    halo_agent_stats *rows;
    size_t n, cap;
    double *durations; /* of the current agent, ascending (ORDER BY) */
    size_t n_dur, cap_dur;
} stats_acc;

static void finish_agent(stats_acc *a)
{
    if (a->n == 0)
        return;
    halo_agent_stats *g = &a->rows[a->n - 1];
    g->error_rate = g->runs ? (double)g->error_runs / (double)g->runs : 0;
    g->p50_ms = halo_percentile(a->durations, a->n_dur, 0.50);
    g->p95_ms = halo_percentile(a->durations, a->n_dur, 0.95);
    a->n_dur = 0;
}

static bool same_agent(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Fold one row (agent_id, duration_ms, error_count, span_count,
 * input_tokens, output_tokens, cost) into the accumulator. */
static halo_status add_stats_row(rd *r, stats_acc *a, halo_err *err)
{
    sqlite3_stmt *st = r->st;
    const char *agent = (const char *)sqlite3_column_text(st, 0);
    if (a->n == 0 || !same_agent(a->rows[a->n - 1].agent_id, agent)) {
        finish_agent(a);
        if (!grow((void **)&a->rows, &a->cap, a->n, sizeof *a->rows))
            return halo_fail(err, HALO_ENOMEM, "out of memory");
        halo_agent_stats *g = &a->rows[a->n++];
        memset(g, 0, sizeof *g);
        g->agent_id = col_str(r, 0);
        if (r->oom)
            return halo_fail(err, HALO_ENOMEM, "out of memory");
    }
    halo_agent_stats *g = &a->rows[a->n - 1];
    if (!grow((void **)&a->durations, &a->cap_dur, a->n_dur,
              sizeof *a->durations))
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    a->durations[a->n_dur++] = sqlite3_column_double(st, 1);
    g->runs++;
    if (sqlite3_column_int64(st, 2) > 0)
        g->error_runs++;
    g->spans += sqlite3_column_int64(st, 3);
    g->input_tokens += sqlite3_column_int64(st, 4);
    g->output_tokens += sqlite3_column_int64(st, 5);
    g->cost += sqlite3_column_double(st, 6);
    return HALO_OK;
}

halo_status sq_agent_stats(halo_store *base, uint64_t since_ns,
                           uint64_t until_ns, halo_arena *arena,
                           halo_agent_stats **rows, size_t *n, halo_err *err)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *st = NULL;
    stats_acc a;
    char since[31], until[31];
    memset(&a, 0, sizeof a);
    *rows = NULL;
    *n = 0;
    halo_iso_from_ns(since_ns, since);
    halo_iso_from_ns(until_ns ? until_ns : UINT64_MAX / 2, until);
    halo_status ret = HALO_OK;
    if (sqlite3_prepare_v2(
            s->db,
            "SELECT agent_id, duration_ms, error_count, span_count,"
            " input_tokens, output_tokens, cost FROM traces"
            " WHERE start_time >= ?1 AND start_time < ?2"
            " ORDER BY agent_id, duration_ms",
            -1, &st, NULL) != SQLITE_OK)
        return sq_fail(s, err, "prepare the agent statistics");
    sqlite3_bind_text(st, 1, since, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, until, -1, SQLITE_STATIC);
    rd r = {s, st, arena, false};
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            ret = sq_fail(s, err, "compute agent statistics");
            break;
        }
        if ((ret = add_stats_row(&r, &a, err)) != HALO_OK)
            break;
    }
    finish_agent(&a);
    if (ret == HALO_OK && a.n) {
        *rows = halo_arena_alloc(arena, a.n * sizeof *a.rows);
        if (!*rows)
            ret = halo_fail(err, HALO_ENOMEM, "out of memory");
        else
            memcpy(*rows, a.rows, a.n * sizeof *a.rows);
    }
    if (ret == HALO_OK)
        *n = a.n;
    sqlite3_finalize(st);
    free(a.rows);
    free(a.durations);
    return ret;
}
