/*
 * store_rebuild.c -- result rows into store.h's read results, for every
 * backend (see store_rebuild.h).
 *
 * Spans are rebuilt exactly as the exporter received them: the JSON columns
 * are decoded by json_attrs.c, the derived fields and numbers are copied,
 * and resources and scopes are looked up by their JSON text (a trace has a
 * handful, so a linear scan) so that spans that shared one in the OTLP
 * request share one again. Trace rows take their ISO times from the
 * nanosecond columns; report rows copy their columns as text. Agent
 * statistics are computed here, not in SQL, from one row per trace in any
 * order (store_rebuild.h says how). Strings are
 * copied into the caller's arena as they are read; an allocation failure
 * is remembered (oom) and reported once per row. The results grow in
 * malloc'd arrays and are copied into the arena once, at the end.
 */
#include "store_rebuild.h"

#include "sqlite_int.h"

#include "core/json_attrs.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rb_res {
    const char *json;
    const char *schema_url;
    uint32_t dropped;
    halo_resource *res;
};

struct rb_scope {
    const char *json;
    halo_scope *scope;
};

typedef struct rb_run rb_run;

/* ---- growable arrays ----------------------------------------------------- */

/* Make room for element n of *arr (elem bytes each). */
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

static halo_status oom(halo_err *err)
{
    return halo_fail(err, HALO_ENOMEM, "out of memory");
}

static size_t item_size(rb_kind kind)
{
    switch (kind) {
    case RB_SPANS:
        return sizeof(halo_span);
    case RB_TRACES:
        return sizeof(halo_trace_row);
    case RB_REPORTS:
        return sizeof(halo_report_row);
    default:
        return sizeof(halo_agent_stats);
    }
}

/* A zeroed new item at the end of a->items. */
static void *push_item(rb_acc *a)
{
    size_t sz = item_size(a->kind);
    if (!grow(&a->items, &a->cap, a->n, sz))
        return NULL;
    char *p = (char *)a->items + a->n++ * sz;
    memset(p, 0, sz);
    return p;
}

/* ---- columns ------------------------------------------------------------- */

/* A row and the arena its strings go to. */
typedef struct rd {
    const rb_cols *c;
    halo_arena *arena;
    bool oom;
} rd;

static const char *raw(const rd *r, int col, size_t *len)
{
    return r->c->text(r->c->ctx, col, len);
}

static int64_t i64(const rd *r, int col)
{
    return r->c->i64(r->c->ctx, col);
}

static double f64(const rd *r, int col)
{
    return r->c->f64(r->c->ctx, col);
}

static bool is_null(const rd *r, int col)
{
    return r->c->is_null(r->c->ctx, col);
}

/* The column as an arena string; NULL for SQL NULL. */
static const char *str(rd *r, int col)
{
    size_t len;
    const char *t = raw(r, col, &len);
    if (!t)
        return NULL;
    char *c = halo_arena_strndup(r->arena, t, len);
    if (!c)
        r->oom = true;
    return c;
}

/* The column as an arena string; "" for SQL NULL. */
static const char *str0(rd *r, int col)
{
    const char *c = str(r, col);
    return c ? c : "";
}

static uint32_t u32(const rd *r, int col)
{
    int64_t v = i64(r, col);
    return v < 0 || v > UINT32_MAX ? 0 : (uint32_t)v;
}

/* An ISO time of the nanoseconds in column col, in the arena. */
static const char *iso(rd *r, int col)
{
    char t[HALO_ISO_NS_LEN];
    halo_iso_from_ns((uint64_t)i64(r, col), t);
    char *c = halo_arena_strdup(r->arena, t);
    if (!c)
        r->oom = true;
    return c ? c : "";
}

/* ---- spans --------------------------------------------------------------- */

/* The shared resource for this row's resource columns. */
static halo_status row_resource(rb_acc *a, rd *r, const halo_resource **out,
                                halo_err *err)
{
    size_t len, slen;
    const char *json = raw(r, C_RESOURCE - 1, &len);
    const char *schema = raw(r, C_RES_SCHEMA - 1, &slen);
    uint32_t dropped = u32(r, C_RES_DROPPED - 1);
    schema = schema ? schema : "";
    json = json ? json : "";
    for (size_t i = 0; i < a->n_res; i++) {
        rb_res *e = &a->res[i];
        if (e->dropped == dropped && strcmp(e->json, json) == 0 &&
            strcmp(e->schema_url, schema) == 0) {
            *out = e->res;
            return HALO_OK;
        }
    }
    halo_resource *res = halo_arena_calloc(a->arena, 1, sizeof *res);
    if (!res || !grow((void **)&a->res, &a->cap_res, a->n_res, sizeof *a->res))
        return oom(err);
    halo_status st = halo_json_decode_attrs(json, len, a->arena, &res->attrs,
                                            "resource", err);
    if (st != HALO_OK)
        return st;
    res->dropped_attrs = dropped;
    res->schema_url = halo_arena_strdup(a->arena, schema);
    rb_res *e = &a->res[a->n_res++];
    e->json = halo_arena_strdup(a->arena, json);
    e->schema_url = res->schema_url;
    e->dropped = dropped;
    e->res = res;
    if (!e->json || !res->schema_url)
        return oom(err);
    *out = res;
    return HALO_OK;
}

/* The shared scope for this row's scope column. */
static halo_status row_scope(rb_acc *a, rd *r, const halo_scope **out,
                             halo_err *err)
{
    size_t len;
    const char *json = raw(r, C_SCOPE - 1, &len);
    json = json ? json : "";
    for (size_t i = 0; i < a->n_scopes; i++) {
        if (strcmp(a->scopes[i].json, json) == 0) {
            *out = a->scopes[i].scope;
            return HALO_OK;
        }
    }
    halo_scope *sc = halo_arena_calloc(a->arena, 1, sizeof *sc);
    if (!sc || !grow((void **)&a->scopes, &a->cap_scopes, a->n_scopes,
                     sizeof *a->scopes))
        return oom(err);
    halo_status st = halo_json_decode_scope(json, len, a->arena, sc, err);
    if (st != HALO_OK)
        return st;
    rb_scope *e = &a->scopes[a->n_scopes++];
    e->json = halo_arena_strdup(a->arena, json);
    e->scope = sc;
    if (!e->json)
        return oom(err);
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
    const char *t = raw(r, C_TRACE_ID - 1, &lt);
    const char *s = raw(r, C_SPAN_ID - 1, &ls);
    const char *p = raw(r, C_PARENT - 1, &lp);
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

/* The derived text fields and their columns (NULL for SQL NULL). */
static const struct {
    size_t off;
    int col;
} derived_text[] = {
    {offsetof(halo_derived, agent_id), C_AGENT_ID},
    {offsetof(halo_derived, agent_name), C_AGENT_NAME},
    {offsetof(halo_derived, session_id), C_SESSION_ID},
    {offsetof(halo_derived, user_id), C_USER_ID},
    {offsetof(halo_derived, service_name), C_SERVICE},
    {offsetof(halo_derived, span_type), C_SPAN_TYPE},
    {offsetof(halo_derived, model), C_MODEL},
    {offsetof(halo_derived, tool_name), C_TOOL},
    {offsetof(halo_derived, input), C_INPUT},
    {offsetof(halo_derived, output), C_OUTPUT},
};

static void row_derived(rd *r, halo_derived *d)
{
    for (size_t i = 0; i < sizeof derived_text / sizeof *derived_text; i++)
        *(const char **)((char *)d + derived_text[i].off) =
            str(r, derived_text[i].col - 1);
    d->has_input_tokens = !is_null(r, C_IN_TOK - 1);
    d->input_tokens = i64(r, C_IN_TOK - 1);
    d->has_output_tokens = !is_null(r, C_OUT_TOK - 1);
    d->output_tokens = i64(r, C_OUT_TOK - 1);
    d->has_cost = !is_null(r, C_COST - 1);
    d->cost = f64(r, C_COST - 1);
    d->fallback_mask = u32(r, C_FB_MASK - 1);
}

/* The JSON columns of this row (attributes, events, links). */
static halo_status row_json(rd *r, halo_span *sp, halo_err *err)
{
    size_t len;
    const char *t = raw(r, C_ATTRS - 1, &len);
    halo_status st =
        halo_json_decode_attrs(t, len, r->arena, &sp->attrs, "attributes", err);
    if (st != HALO_OK)
        return st;
    t = raw(r, C_EVENTS - 1, &len);
    st = halo_json_decode_events(t, len, r->arena, &sp->events, &sp->n_events,
                                 err);
    if (st != HALO_OK)
        return st;
    t = raw(r, C_LINKS - 1, &len);
    return halo_json_decode_links(t, len, r->arena, &sp->links, &sp->n_links,
                                  err);
}

static halo_status row_to_span(rb_acc *a, rd *r, halo_span *sp, halo_err *err)
{
    size_t len;
    halo_status ret = row_ids(r, sp, err);
    if (ret == HALO_OK)
        ret = row_json(r, sp, err);
    if (ret == HALO_OK)
        ret = row_resource(a, r, &sp->resource, err);
    if (ret == HALO_OK)
        ret = row_scope(a, r, &sp->scope, err);
    if (ret != HALO_OK)
        return ret;
    sp->name = str0(r, C_NAME - 1);
    sp->kind = sq_kind_parse(raw(r, C_KIND - 1, &len));
    sp->start_ns = (uint64_t)i64(r, C_START_NS - 1);
    sp->end_ns = (uint64_t)i64(r, C_END_NS - 1);
    sp->status_code = status_parse(raw(r, C_STATUS_CODE - 1, &len));
    sp->status_message = str0(r, C_STATUS_MSG - 1);
    sp->trace_state = str0(r, C_TRACE_STATE - 1);
    sp->flags = u32(r, C_FLAGS - 1);
    sp->dropped_attrs = u32(r, C_DROPPED_ATTRS - 1);
    sp->dropped_events = u32(r, C_DROPPED_EVENTS - 1);
    sp->dropped_links = u32(r, C_DROPPED_LINKS - 1);
    row_derived(r, &sp->d);
    /* BYTES and NaN/Infinity values back to their types; the resource and
     * scope are this rebuild's own (shared by rows with the same JSON, and
     * applying the marks again changes nothing) */
    const char *vt = raw(r, C_VALUE_TYPES - 1, &len);
    return halo_json_apply_value_types(vt, vt ? len : 0, r->arena, sp,
                                       &((halo_resource *)sp->resource)->attrs,
                                       &((halo_scope *)sp->scope)->attrs, err);
}

/* ---- traces -------------------------------------------------------------- */

static void row_to_trace(rd *r, halo_trace_row *t)
{
    size_t len;
    const char *id = raw(r, 0, &len);
    snprintf(t->trace_id, sizeof t->trace_id, "%s", id ? id : "");
    t->agent_id = str(r, 1);
    t->agent_name = str(r, 2);
    t->session_id = str(r, 3);
    t->user_id = str(r, 4);
    t->root_name = str(r, 5);
    t->start_ns = (uint64_t)i64(r, 6);
    t->end_ns = (uint64_t)i64(r, 7);
    t->start_time = iso(r, 6);
    t->end_time = iso(r, 7);
    t->duration_ms = f64(r, 8);
    t->span_count = i64(r, 9);
    t->error_count = i64(r, 10);
    t->llm_calls = i64(r, 11);
    t->tool_calls = i64(r, 12);
    t->input_tokens = i64(r, 13);
    t->output_tokens = i64(r, 14);
    t->cost = f64(r, 15);
    t->priced_spans = i64(r, 16);
}

/* ---- agent statistics ---------------------------------------------------- */

/* One trace of the window: its agent (an index into a->items), duration
 * and cost. */
struct rb_run {
    uint32_t agent;
    double duration_ms;
    double cost;
};

static size_t hash_str(const char *s)
{
    return (size_t)halo_hash_bytes(s, strlen(s));
}

/* Agents with an id are found through an open-addressing table of item
 * indexes + 1 (0: empty), kept at most half full. */
static bool rehash(rb_acc *a)
{
    size_t cap = a->n_slots ? 2 * a->n_slots : 16;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    const halo_agent_stats *g = a->items;
    for (size_t k = 0; k < a->n; k++) {
        if (!g[k].agent_id)
            continue;
        size_t i = hash_str(g[k].agent_id) & (cap - 1);
        while (slots[i])
            i = (i + 1) & (cap - 1);
        slots[i] = (uint32_t)k + 1;
    }
    free(a->slots);
    a->slots = slots;
    a->n_slots = cap;
    return true;
}

/* A new agent (id copied from column 0 of r); its index, -1 when out of
 * memory. */
static long new_agent(rb_acc *a, rd *r)
{
    halo_agent_stats *g = push_item(a);
    if (!g)
        return -1;
    g->agent_id = str(r, 0);
    return (long)a->n - 1;
}

/* The index in a->items of the agent of row r, added when new. */
static long agent_index(rb_acc *a, rd *r)
{
    size_t len;
    const char *agent = raw(r, 0, &len);
    if (!agent) {
        if (a->null_agent < 0)
            a->null_agent = new_agent(a, r);
        return a->null_agent;
    }
    if (2 * (a->n + 1) > a->n_slots && !rehash(a))
        return -1;
    const halo_agent_stats *g = a->items;
    size_t mask = a->n_slots - 1;
    for (size_t i = hash_str(agent) & mask;; i = (i + 1) & mask) {
        if (!a->slots[i]) {
            long k = new_agent(a, r);
            if (k >= 0)
                a->slots[i] = (uint32_t)k + 1;
            return k;
        }
        if (strcmp(g[a->slots[i] - 1].agent_id, agent) == 0)
            return (long)a->slots[i] - 1;
    }
}

/* Fold one RB_STATS_COLUMNS row into its agent's totals; its duration and
 * cost wait for the end (percentiles need them sorted). */
static halo_status add_stats_row(rb_acc *a, rd *r, halo_err *err)
{
    long k = agent_index(a, r);
    if (k < 0 ||
        !grow((void **)&a->runs, &a->cap_runs, a->n_runs, sizeof *a->runs))
        return oom(err);
    a->runs[a->n_runs++] = (rb_run){(uint32_t)k, f64(r, 1), f64(r, 6)};
    halo_agent_stats *g = (halo_agent_stats *)a->items + k;
    g->runs++;
    if (i64(r, 2) > 0)
        g->error_runs++;
    g->spans += i64(r, 3);
    g->input_tokens += i64(r, 4);
    g->output_tokens += i64(r, 5);
    g->priced_spans += i64(r, 7);
    return HALO_OK;
}

static int cmp_double(double x, double y)
{
    return (x > y) - (x < y);
}

/* By agent, duration, cost: a total order, so the costs are summed in the
 * same order whatever order the backend returned the rows in. */
static int cmp_run(const void *x, const void *y)
{
    const rb_run *p = x, *q = y;
    if (p->agent != q->agent)
        return p->agent < q->agent ? -1 : 1;
    int c = cmp_double(p->duration_ms, q->duration_ms);
    return c ? c : cmp_double(p->cost, q->cost);
}

/* By agent id, NULL first, then byte order (as SQLite sorts). */
static int cmp_agent(const void *x, const void *y)
{
    const char *p = ((const halo_agent_stats *)x)->agent_id;
    const char *q = ((const halo_agent_stats *)y)->agent_id;
    if (!p || !q)
        return (p != NULL) - (q != NULL);
    return strcmp(p, q);
}

/* Every agent's cost, error rate and percentiles, then the agents in
 * order. */
static halo_status finish_stats(rb_acc *a, halo_err *err)
{
    halo_agent_stats *g = a->items;
    double *dur = malloc((a->n_runs ? a->n_runs : 1) * sizeof *dur);
    if (!dur)
        return oom(err);
    if (a->n_runs)
        qsort(a->runs, a->n_runs, sizeof *a->runs, cmp_run);
    for (size_t i = 0, j; i < a->n_runs; i = j) {
        halo_agent_stats *s = &g[a->runs[i].agent];
        for (j = i; j < a->n_runs && a->runs[j].agent == a->runs[i].agent;
             j++) {
            dur[j - i] = a->runs[j].duration_ms;
            s->cost += a->runs[j].cost;
        }
        s->error_rate = (double)s->error_runs / (double)s->runs;
        s->p50_ms = halo_percentile(dur, j - i, 0.50);
        s->p95_ms = halo_percentile(dur, j - i, 0.95);
    }
    free(dur);
    if (a->n)
        qsort(a->items, a->n, sizeof *g, cmp_agent);
    return HALO_OK;
}

/* ---- the accumulator ----------------------------------------------------- */

void rb_acc_init(rb_acc *a, rb_kind kind, halo_arena *arena)
{
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->arena = arena;
    a->null_agent = -1;
}

void rb_acc_init_trace(rb_acc *a, halo_arena *arena, const uint8_t trace_id[16])
{
    rb_acc_init(a, RB_SPANS, arena);
    halo_hex_encode(trace_id, 16, a->tid);
}

halo_status rb_acc_add(void *acc, const rb_cols *row, halo_err *err)
{
    rb_acc *a = acc;
    rd r = {row, a->arena, false};
    halo_status st = HALO_OK;
    if (a->kind == RB_STATS) {
        st = add_stats_row(a, &r, err);
    } else {
        void *item = push_item(a);
        if (!item)
            return oom(err);
        if (a->kind == RB_SPANS)
            st = row_to_span(a, &r, item, err);
        else if (a->kind == RB_REPORTS)
            st =
                rb_report_row(row, RB_REPORT_LIST_COLUMNS, a->arena, item, err);
        else
            row_to_trace(&r, item);
    }
    if (st == HALO_OK && r.oom)
        return oom(err);
    return st;
}

halo_status rb_acc_finish(rb_acc *a, halo_status st, void **out, size_t *n,
                          halo_err *err)
{
    *out = NULL;
    *n = 0;
    if (st == HALO_OK && a->kind == RB_STATS)
        st = finish_stats(a, err);
    if (st == HALO_OK && a->n == 0 && a->tid[0])
        st = halo_fail(err, HALO_ENOTFOUND, "trace %s not found", a->tid);
    if (st == HALO_OK && a->n) {
        size_t bytes = a->n * item_size(a->kind);
        *out = halo_arena_alloc(a->arena, bytes);
        if (*out)
            memcpy(*out, a->items, bytes);
        else
            st = oom(err);
    }
    if (st == HALO_OK)
        *n = a->n;
    free(a->items);
    free(a->res);
    free(a->scopes);
    free(a->runs);
    free(a->slots);
    memset(a, 0, sizeof *a);
    return st;
}

/* ---- reports ------------------------------------------------------------- */

halo_status rb_report_values(const halo_report_row *r,
                             const char *vals[RB_REPORT_COLUMNS], halo_err *err)
{
    if (!r->id || !*r->id)
        return halo_fail(err, HALO_EINVAL, "invalid report: empty id");
    const char *v[RB_REPORT_COLUMNS] = {
        r->id,         r->agent_id,     r->schedule, r->window_start,
        r->window_end, r->generated_at, r->mode,     r->model,
        r->json,       r->markdown};
    memcpy(vals, v, sizeof v);
    return HALO_OK;
}

halo_status rb_report_row(const rb_cols *row, int n_cols, halo_arena *arena,
                          halo_report_row *out, halo_err *err)
{
    rd r = {row, arena, false};
    const char **f[RB_REPORT_COLUMNS] = {&out->id,         &out->agent_id,
                                         &out->schedule,   &out->window_start,
                                         &out->window_end, &out->generated_at,
                                         &out->mode,       &out->model,
                                         &out->json,       &out->markdown};
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n_cols && i < RB_REPORT_COLUMNS; i++)
        *f[i] = str(&r, i);
    return r.oom ? oom(err) : HALO_OK;
}

halo_status rb_found_add(void *found, const rb_cols *row, halo_err *err)
{
    rb_found *f = found;
    if (f->found++)
        return HALO_OK;
    return rb_report_row(row, RB_REPORT_COLUMNS, f->arena, f->out, err);
}

halo_status rb_report_found(const char *id, int found, halo_status st,
                            halo_report_row *out, halo_err *err)
{
    if (st == HALO_OK && found == 0)
        st = halo_fail(err, HALO_ENOTFOUND, "report \"%s\" not found%s", id,
                       strlen(id) < 6 ? " (an id prefix needs at least 6 "
                                        "characters; halo reports list "
                                        "shows the ids)"
                                      : "");
    else if (st == HALO_OK && found > 1)
        st = halo_fail(err, HALO_EINVAL, "report id prefix \"%s\" is ambiguous",
                       id);
    if (st != HALO_OK)
        memset(out, 0, sizeof *out);
    return st;
}
