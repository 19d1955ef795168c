/*
 * store_scan.c -- scan rows into one trace at a time for scan_window (see
 * store_scan.h).
 *
 * Strings of the current trace go into one malloc'd buffer that only
 * grows (its high-water mark is the largest trace seen); until the
 * callback they are remembered as offsets + 1 (0 for SQL NULL), since the
 * buffer may move when it grows, and turned into pointers just before the
 * callback. Span ids are decoded-free: the hex text is copied as is (the
 * store wrote it as 16 lower-case hex digits).
 */
#include "store_scan.h"

#include "../core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The string fields of a scan span, in this order. */
enum {
    O_NAME,
    O_SPAN_TYPE,
    O_TOOL,
    O_MODEL,
    O_STATUS_MSG,
    O_INPUT,
    O_OUTPUT,
    O_N_
};

struct ss_str_offs {
    size_t off[O_N_];
};

/* The trace row's strings, in trace_offs order. */
enum {
    TO_AGENT,
    TO_AGENT_NAME,
    TO_SESSION,
    TO_USER,
    TO_ROOT,
    TO_START,
    TO_END
};

static halo_status oom(halo_err *err)
{
    return halo_fail(err, HALO_ENOMEM, "out of memory");
}

void ss_init(ss_scan *s, halo_scan_fn fn, void *ctx, size_t max_text)
{
    memset(s, 0, sizeof *s);
    s->fn = fn;
    s->ctx = ctx;
    s->max_text = max_text ? max_text : SS_DEFAULT_MAX_TEXT;
}

void ss_free(ss_scan *s)
{
    free(s->spans);
    free(s->offs);
    free(s->text);
    s->spans = NULL;
    s->offs = NULL;
    s->text = NULL;
}

size_t ss_max_text(const halo_scan_filter *f)
{
    return f->max_text ? f->max_text : SS_DEFAULT_MAX_TEXT;
}

/* ---- the text buffer ----------------------------------------------------- */

/* Copy p[0..len) with a NUL into the buffer; its offset + 1 in *off (0 for
 * p == NULL). */
static bool put_text(ss_scan *s, const char *p, size_t len, size_t *off)
{
    *off = 0;
    if (!p)
        return true;
    if (s->text_cap - s->text_len < len + 1) {
        size_t nc = s->text_cap ? s->text_cap : 4096;
        while (nc - s->text_len < len + 1)
            nc *= 2;
        char *t = realloc(s->text, nc);
        if (!t)
            return false;
        s->text = t;
        s->text_cap = nc;
    }
    memcpy(s->text + s->text_len, p, len);
    s->text[s->text_len + len] = '\0';
    *off = s->text_len + 1;
    s->text_len += len + 1;
    return true;
}

static const char *text_at(const ss_scan *s, size_t off)
{
    return off ? s->text + off - 1 : NULL;
}

/* ---- traces -------------------------------------------------------------- */

static const char *col_text(const rb_cols *c, int col, size_t *len)
{
    return c->text(c->ctx, col, len);
}

halo_status ss_begin_trace(ss_scan *s, const rb_cols *row, int col0,
                           halo_err *err)
{
    size_t len;
    char iso[HALO_ISO_NS_LEN];
    halo_trace_row *t = &s->trace;
    memset(t, 0, sizeof *t);
    s->n = 0;
    s->text_len = 0;
    const char *id = col_text(row, col0, &len);
    snprintf(t->trace_id, sizeof t->trace_id, "%.*s",
             (int)(len < 32 ? len : 32), id ? id : "");
    bool ok = true;
    for (int i = TO_AGENT; i <= TO_ROOT; i++) {
        const char *v = col_text(row, col0 + 1 + i, &len);
        ok = ok && put_text(s, v, len, &s->trace_offs[i]);
    }
    t->start_ns = (uint64_t)row->i64(row->ctx, col0 + 6);
    t->end_ns = (uint64_t)row->i64(row->ctx, col0 + 7);
    halo_iso_from_ns(t->start_ns, iso);
    ok = ok && put_text(s, iso, strlen(iso), &s->trace_offs[TO_START]);
    halo_iso_from_ns(t->end_ns, iso);
    ok = ok && put_text(s, iso, strlen(iso), &s->trace_offs[TO_END]);
    t->duration_ms = row->f64(row->ctx, col0 + 8);
    t->span_count = row->i64(row->ctx, col0 + 9);
    t->error_count = row->i64(row->ctx, col0 + 10);
    t->llm_calls = row->i64(row->ctx, col0 + 11);
    t->tool_calls = row->i64(row->ctx, col0 + 12);
    t->input_tokens = row->i64(row->ctx, col0 + 13);
    t->output_tokens = row->i64(row->ctx, col0 + 14);
    t->cost = row->f64(row->ctx, col0 + 15);
    t->priced_spans = row->i64(row->ctx, col0 + 16);
    s->open = true;
    return ok ? HALO_OK : oom(err);
}

/* ---- spans --------------------------------------------------------------- */

static int status_parse(const char *p, size_t len)
{
    if (p && len == 2 && memcmp(p, "OK", 2) == 0)
        return HALO_STATUS_OK;
    if (p && len == 5 && memcmp(p, "ERROR", 5) == 0)
        return HALO_STATUS_ERROR;
    return HALO_STATUS_UNSET;
}

/* A hex id column into out (17 bytes): "" for NULL. */
static void copy_id(const rb_cols *row, int col, char out[17])
{
    size_t len;
    const char *v = col_text(row, col, &len);
    snprintf(out, 17, "%.*s", (int)(v ? (len < 16 ? len : 16) : 0), v ? v : "");
}

static bool grow_spans(ss_scan *s)
{
    if (s->n < s->cap)
        return true;
    size_t nc = s->cap ? 2 * s->cap : 64;
    halo_scan_span *sp = realloc(s->spans, nc * sizeof *sp);
    if (!sp)
        return false;
    s->spans = sp;
    ss_str_offs *o = realloc(s->offs, nc * sizeof *o);
    if (!o)
        return false;
    s->offs = o;
    s->cap = nc;
    return true;
}

/* The strings of a span: column and whether it is cut to max_text. */
static const struct {
    int col;
    bool cut;
} span_text[O_N_] = {
    [O_NAME] = {SS_NAME, false},
    [O_SPAN_TYPE] = {SS_SPAN_TYPE, false},
    [O_TOOL] = {SS_TOOL, false},
    [O_MODEL] = {SS_MODEL, false},
    [O_STATUS_MSG] = {SS_STATUS_MSG, false},
    [O_INPUT] = {SS_INPUT, true},
    [O_OUTPUT] = {SS_OUTPUT, true},
};

halo_status ss_add_span(ss_scan *s, const rb_cols *row, int col0, halo_err *err)
{
    if (!grow_spans(s))
        return oom(err);
    halo_scan_span *sp = &s->spans[s->n];
    ss_str_offs *o = &s->offs[s->n];
    memset(sp, 0, sizeof *sp);
    copy_id(row, col0 + SS_SPAN_ID, sp->span_id);
    copy_id(row, col0 + SS_PARENT, sp->parent_span_id);
    for (int i = 0; i < O_N_; i++) {
        size_t len;
        const char *v = col_text(row, col0 + span_text[i].col, &len);
        if (v && span_text[i].cut)
            len = halo_utf8_prefix(v, len, s->max_text);
        if (!put_text(s, v, len, &o->off[i]))
            return oom(err);
    }
    sp->start_ns = (uint64_t)row->i64(row->ctx, col0 + SS_START_NS);
    sp->end_ns = (uint64_t)row->i64(row->ctx, col0 + SS_END_NS);
    sp->duration_ms = row->f64(row->ctx, col0 + SS_DURATION);
    size_t len;
    const char *st = col_text(row, col0 + SS_STATUS_CODE, &len);
    sp->status_code = status_parse(st, len);
    bool no_in = row->is_null(row->ctx, col0 + SS_IN_TOK);
    bool no_out = row->is_null(row->ctx, col0 + SS_OUT_TOK);
    bool no_cost = row->is_null(row->ctx, col0 + SS_COST);
    sp->input_tokens = no_in ? -1 : row->i64(row->ctx, col0 + SS_IN_TOK);
    sp->output_tokens = no_out ? -1 : row->i64(row->ctx, col0 + SS_OUT_TOK);
    sp->cost = no_cost ? -1 : row->f64(row->ctx, col0 + SS_COST);
    s->n++;
    return HALO_OK;
}

/* ---- delivering ---------------------------------------------------------- */

static int cmp_span(const void *x, const void *y)
{
    const halo_scan_span *a = x, *b = y;
    if (a->start_ns != b->start_ns)
        return a->start_ns < b->start_ns ? -1 : 1;
    return strcmp(a->span_id, b->span_id);
}

/* Offsets into pointers (the buffer no longer moves until the next
 * trace). */
static void resolve(ss_scan *s)
{
    halo_trace_row *t = &s->trace;
    const char **tf[7] = {&t->agent_id, &t->agent_name, &t->session_id,
                          &t->user_id,  &t->root_name,  &t->start_time,
                          &t->end_time};
    for (int i = 0; i < 7; i++)
        *tf[i] = text_at(s, s->trace_offs[i]);
    for (size_t k = 0; k < s->n; k++) {
        halo_scan_span *sp = &s->spans[k];
        const size_t *off = s->offs[k].off;
        sp->name = text_at(s, off[O_NAME]);
        sp->span_type = text_at(s, off[O_SPAN_TYPE]);
        if (!sp->span_type)
            sp->span_type = "UNKNOWN";
        sp->tool_name = text_at(s, off[O_TOOL]);
        sp->model = text_at(s, off[O_MODEL]);
        sp->status_message = text_at(s, off[O_STATUS_MSG]);
        sp->input = text_at(s, off[O_INPUT]);
        sp->output = text_at(s, off[O_OUTPUT]);
    }
}

/* Sorted after resolve(): the pointers travel with their spans. */
static bool sorted(const ss_scan *s)
{
    for (size_t k = 1; k < s->n; k++)
        if (cmp_span(&s->spans[k - 1], &s->spans[k]) > 0)
            return false;
    return true;
}

void ss_flush(ss_scan *s)
{
    if (!s->open || s->stopped)
        return;
    s->open = false;
    resolve(s);
    if (!sorted(s))
        qsort(s->spans, s->n, sizeof *s->spans, cmp_span);
    halo_scan_trace t = {&s->trace, s->n ? s->spans : NULL, s->n};
    s->traces++;
    s->spans_seen += (int64_t)s->n;
    if (s->fn(s->ctx, &t) != 0)
        s->stopped = true;
}

halo_status ss_join_row(ss_scan *s, const rb_cols *row, halo_err *err)
{
    size_t len;
    const char *id = col_text(row, 0, &len);
    bool same = s->open && id && len == strlen(s->trace.trace_id) &&
                memcmp(id, s->trace.trace_id, len) == 0;
    if (!same) {
        ss_flush(s);
        if (s->stopped)
            return HALO_OK;
        halo_status st = ss_begin_trace(s, row, 0, err);
        if (st != HALO_OK)
            return st;
    }
    return ss_add_span(s, row, RB_N_TRACE_COLUMNS, err);
}
