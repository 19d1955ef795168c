/*
 * detect.c -- the detector accumulator and the per-run pass.
 *
 * halo_detect_add() sees one run at a time (a trace's spans in start
 * order, streamed from the store) and runs every detector that looks
 * inside one run, in this order, because a span explained by a more
 * specific detector is *claimed* and not counted again by the generic ones
 * (README.md, Claims):
 *
 *   unknown_tool, invalid_tool_input    failed spans, by their message
 *   tool_retry_loop                     failed call + near-identical retries
 *   duplicate_tool_call                 identical successful calls
 *   context_growth                      growing prompts ending in failure
 *   silent_failure                      OK spans carrying an error
 *   error_cluster                       the remaining ERROR spans
 *
 * What survives a run is small: the groups' run and span lists (span ids
 * capped at max_evidence), per-run facts for the report and regressions,
 * and one latency sample per span for the slow-step statistics
 * (detect_window.c). A window of 1M spans costs about 30 MB.
 */
#include "detect_int.h"
#include "text.h"

#include "../core/buf.h"
#include "../core/span.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration ------------------------------------------------------- */

#define OFF(f) offsetof(halo_detect_config, f)
const halo_field halo_detect_schema[] = {
    {"min_traces", HALO_F_INT, OFF(min_traces), "3", 1, 1e9, NULL, NULL, 0,
     "a pattern must recur in at least this many runs"},
    {"min_fraction", HALO_F_DOUBLE, OFF(min_fraction), "0.002", 0, 1, NULL,
     NULL, 0, "... and in at least this share of the window's runs"},
    {"max_evidence", HALO_F_INT, OFF(max_evidence), "1000", 1, 1e7, NULL, NULL,
     0, "trace ids and span ids cited per finding"},
    {"retry_min_retries", HALO_F_INT, OFF(retry_min_retries), "2", 1, 1000,
     NULL, NULL, 0, "tool_retry_loop: calls after the first failure"},
    {"retry_similarity", HALO_F_DOUBLE, OFF(retry_similarity), "0.7", 0, 1,
     NULL, NULL, 0, "tool_retry_loop: word-set similarity of arguments"},
    {"slow_min_samples", HALO_F_INT, OFF(slow_min_samples), "20", 2, 1e9, NULL,
     NULL, 0, "slow_span: spans a step needs in the window"},
    {"slow_factor", HALO_F_DOUBLE, OFF(slow_factor), "5", 1, 1e6, NULL, NULL, 0,
     "slow_span: slow at this many times the step's 25th percentile"},
    {"slow_min_excess", HALO_F_DURATION, OFF(slow_min_excess), "500ms", 0,
     8.64e13, NULL, NULL, 0, "slow_span: ... and this much over its median"},
    {"slow_peer_factor", HALO_F_DOUBLE, OFF(slow_peer_factor), "10", 1, 1e6,
     NULL, NULL, 0,
     "slow_span: a step this many times slower than its peers' median"},
    {"slow_peer_min", HALO_F_DURATION, OFF(slow_peer_min), "2s", 0, 8.64e13,
     NULL, NULL, 0, "slow_span: ... with a median of at least this"},
    {"context_min_calls", HALO_F_INT, OFF(context_min_calls), "4", 2, 1e6, NULL,
     NULL, 0, "context_growth: LLM calls a run needs"},
    {"context_growth", HALO_F_DOUBLE, OFF(context_growth), "2", 1, 1e6, NULL,
     NULL, 0, "context_growth: last / first prompt tokens"},
    {"regression_min_runs", HALO_F_INT, OFF(regression_min_runs), "20", 2, 1e9,
     NULL, NULL, 0, "regressions: runs on each side of the change"},
    {"regression_ratio", HALO_F_DOUBLE, OFF(regression_ratio), "1.5", 1, 1e6,
     NULL, NULL, 0, "regressions: median after / median before"},
    {"regression_min_t", HALO_F_DOUBLE, OFF(regression_min_t), "5", 0, 1e6,
     NULL, NULL, 0, "regressions: t statistic of the change (log values)"},
    {"recovered_min_fraction", HALO_F_DOUBLE, OFF(recovered_min_fraction),
     "0.2", 0, 1, NULL, NULL, 0,
     "error_cluster: report recovered errors from this share of runs"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, 0, NULL},
};
#undef OFF

void halo_detect_config_defaults(halo_detect_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    halo_errlist errs = {0};
    halo_config_apply(halo_detect_schema, NULL, cfg, "analyzer.detectors",
                      &errs);
    halo_errlist_free(&errs);
}

/* ---- strmap -------------------------------------------------------------- */

static uint64_t hash_key(const char *k, size_t len)
{
    return halo_text_hash(k, len);
}

static int32_t slot_find(const strmap *m, const char *key, size_t len,
                         size_t *slot)
{
    size_t mask = m->n_slots - 1;
    for (size_t i = (size_t)hash_key(key, len) & mask;; i = (i + 1) & mask) {
        int32_t v = m->slots[i];
        if (v < 0) {
            *slot = i;
            return -1;
        }
        const char *k = m->keys[v];
        if (strlen(k) == len && !memcmp(k, key, len))
            return v;
    }
}

static bool strmap_grow(strmap *m)
{
    size_t ns = m->n_slots ? m->n_slots * 2 : 64;
    int32_t *slots = malloc(ns * sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < ns; i++)
        slots[i] = -1;
    free(m->slots);
    m->slots = slots;
    m->n_slots = ns;
    for (size_t k = 0; k < m->n; k++) {
        size_t slot = 0;
        slot_find(m, m->keys[k], strlen(m->keys[k]), &slot);
        m->slots[slot] = (int32_t)k;
    }
    return true;
}

int32_t strmap_find(const strmap *m, const char *key, size_t len)
{
    if (!m->n_slots)
        return -1;
    size_t slot;
    return slot_find(m, key, len, &slot);
}

int32_t strmap_intern(strmap *m, const char *key, size_t len)
{
    if ((m->n + 1) * 2 > m->n_slots && !strmap_grow(m))
        return -1;
    size_t slot;
    int32_t v = slot_find(m, key, len, &slot);
    if (v >= 0)
        return v;
    if (m->n == m->cap_keys) {
        size_t nc = m->cap_keys ? m->cap_keys * 2 : 32;
        char **k = realloc(m->keys, nc * sizeof *k);
        if (!k)
            return -1;
        m->keys = k;
        m->cap_keys = nc;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, key, len);
    copy[len] = '\0';
    m->keys[m->n] = copy;
    m->slots[slot] = (int32_t)m->n;
    return (int32_t)m->n++;
}

void strmap_free(strmap *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- growth helper ------------------------------------------------------- */

/* Make room for one more element of size sz in *v (n used, *cap). */
static bool grow(void **v, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap)
        return true;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*v, nc * sz);
    if (!p)
        return false;
    *v = p;
    *cap = nc;
    return true;
}

/* ---- groups -------------------------------------------------------------- */

group *detect_group(halo_detect *d, const char *kind, const char *subject,
                    const char *signature, const char *example)
{
    halo_buf k = HALO_BUF_INIT;
    halo_buf_puts(&k, kind);
    halo_buf_putc(&k, '\x1f');
    halo_buf_puts(&k, subject ? subject : "");
    if (signature) {
        halo_buf_putc(&k, '\x1f');
        halo_buf_puts(&k, signature);
    }
    if (k.oom) {
        d->oom = true;
        return NULL;
    }
    /* room first: every interned key must have its group (the free walks
     * them all) */
    size_t before = d->group_keys.n;
    if (!grow((void **)&d->groups, before, &d->cap_groups, sizeof *d->groups)) {
        halo_buf_free(&k);
        d->oom = true;
        return NULL;
    }
    int32_t idx = strmap_intern(&d->group_keys, k.data, k.len);
    halo_buf_free(&k);
    if (idx < 0) {
        d->oom = true;
        return NULL;
    }
    if ((size_t)idx < before)
        return &d->groups[idx];
    group *g = &d->groups[idx];
    memset(g, 0, sizeof *g);
    g->kind = kind;
    g->subject = strdup(subject ? subject : "");
    g->example = example ? strndup(example, 300) : NULL;
    g->last_unrec = -1;
    if (!g->subject)
        d->oom = true;
    return g;
}

void group_add_run(halo_detect *d, group *g, int32_t r)
{
    if (g->n_runs && g->runs[g->n_runs - 1] == r)
        return;
    if (!grow((void **)&g->runs, g->n_runs, &g->cap_runs, sizeof *g->runs)) {
        d->oom = true;
        return;
    }
    g->runs[g->n_runs++] = r;
}

void group_add_span_bytes(halo_detect *d, group *g, const uint8_t id[8])
{
    if ((int64_t)g->n_spans >= d->cfg.max_evidence)
        return;
    if (!grow((void **)&g->spans, g->n_spans, &g->cap_spans,
              sizeof *g->spans)) {
        d->oom = true;
        return;
    }
    memcpy(g->spans[g->n_spans++], id, 8);
}

void group_add_span(halo_detect *d, group *g, const char *span_hex)
{
    uint8_t id[8];
    if (halo_hex_decode(span_hex, 16, id, 8))
        group_add_span_bytes(d, g, id);
}

/* ---- lifecycle ----------------------------------------------------------- */

halo_detect *halo_detect_new(const halo_detect_config *cfg)
{
    halo_detect *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    if (cfg)
        d->cfg = *cfg;
    else
        halo_detect_config_defaults(&d->cfg);
    return d;
}

void halo_detect_free(halo_detect *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->group_keys.n; i++) {
        group *g = &d->groups[i];
        free(g->subject);
        free(g->example);
        free(g->runs);
        free(g->spans);
    }
    free(d->groups);
    strmap_free(&d->group_keys);
    for (size_t i = 0; i < d->steps.n; i++)
        free(d->step_lat[i].v);
    free(d->step_lat);
    strmap_free(&d->steps);
    strmap_free(&d->models);
    free(d->runs);
    free(d->prev);
    free(d->sc);
    free(d->order);
    free(d);
}

void halo_detect_add_previous(halo_detect *d, const halo_trace_row *t)
{
    if (!grow((void **)&d->prev, d->n_prev, &d->cap_prev, sizeof *d->prev)) {
        d->oom = true;
        return;
    }
    prev_run *p = &d->prev[d->n_prev++];
    p->start_ns = t->start_ns;
    p->duration_ms = t->duration_ms;
    p->cost = t->cost;
    p->tokens = tok_add(t->input_tokens, t->output_tokens);
}

/* ---- the per-run pass ---------------------------------------------------- */

/* What the pass knows of each span of the current run. */
typedef struct span_scratch {
    const halo_scan_span *s;
    bool llm, tool;
    bool failed;     /* status ERROR, empty output, or an error in it */
    bool claimed;    /* explained by a more specific detector */
    bool err_child;  /* some child span is ERROR */
    int32_t step;    /* index in d->steps for the tool/step key */
    const char *key; /* tool name, else span name */
    halo_buf args;   /* normalized input, computed on demand */
    bool args_done;
} span_scratch;

typedef struct run_ctx {
    halo_detect *d;
    const halo_scan_trace *t;
    span_scratch *sc;
    size_t n;
    int32_t run;
    size_t root;
} run_ctx;

static const char *nz(const char *s)
{
    return s ? s : "";
}

static const char *span_message(const halo_scan_span *s)
{
    if (s->status_message && *s->status_message)
        return s->status_message;
    return s->output;
}

static bool says(bool (*fn)(const char *), const halo_scan_span *s)
{
    return fn(s->status_message) || fn(s->output);
}

static const char *args_of(span_scratch *x)
{
    if (!x->args_done) {
        halo_buf_reset(&x->args);
        halo_text_normalize_args(x->s->input, &x->args);
        halo_buf_putc(&x->args, '\0');
        x->args_done = true;
    }
    return x->args.oom || !x->args.data ? "" : x->args.data;
}

static bool error_status(const halo_scan_span *s)
{
    return s->status_code == HALO_STATUS_ERROR;
}

/* Step key -> slow-step samples index (TYPE:name). */
static int32_t step_index(halo_detect *d, const halo_scan_span *s)
{
    const char *name = s->name;
    if (!strcmp(s->span_type, "TOOL") && s->tool_name)
        name = s->tool_name;
    else if (!strcmp(s->span_type, "LLM") && s->model)
        name = s->model;
    char key[512];
    int n = snprintf(key, sizeof key, "%s:%s", s->span_type, nz(name));
    if (n < 0)
        return -1;
    size_t len = (size_t)n < sizeof key ? (size_t)n : sizeof key - 1;
    size_t before = d->steps.n;
    if (!grow((void **)&d->step_lat, before, &d->cap_steps,
              sizeof *d->step_lat)) {
        d->oom = true;
        return -1;
    }
    int32_t i = strmap_intern(&d->steps, key, len);
    if (i < 0) {
        d->oom = true;
        return -1;
    }
    if ((size_t)i >= before)
        memset(&d->step_lat[i], 0, sizeof d->step_lat[i]);
    return i;
}

static void add_sample(halo_detect *d, int32_t step, const halo_scan_span *s,
                       int32_t run)
{
    step_samples *v = &d->step_lat[step];
    if (!grow((void **)&v->v, v->n, &v->cap, sizeof *v->v)) {
        d->oom = true;
        return;
    }
    step_sample *x = &v->v[v->n++];
    /* a clock gone backwards or a NaN must not upset the sorts */
    x->ms = isfinite(s->duration_ms) && s->duration_ms > 0 ? s->duration_ms : 0;
    x->run = run;
    if (!halo_hex_decode(s->span_id, 16, x->span_id, 8))
        memset(x->span_id, 0, 8);
}

/* Span ids of this run sorted, to find parents. */
static int cmp_span_id(const void *a, const void *b, void *ctx)
{
    const span_scratch *sc = ctx;
    return strcmp(sc[*(const int32_t *)a].s->span_id,
                  sc[*(const int32_t *)b].s->span_id);
}

static void mark_error_parents(run_ctx *c)
{
    halo_detect *d = c->d;
    int32_t *ord = d->order;
    for (size_t i = 0; i < c->n; i++)
        ord[i] = (int32_t)i;
    qsort_r(ord, c->n, sizeof *ord, cmp_span_id, c->sc);
    for (size_t i = 0; i < c->n; i++) {
        const halo_scan_span *s = c->sc[i].s;
        if (!error_status(s) || !s->parent_span_id[0])
            continue;
        size_t lo = 0, hi = c->n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            int r = strcmp(c->sc[ord[mid]].s->span_id, s->parent_span_id);
            if (r == 0) {
                c->sc[ord[mid]].err_child = true;
                break;
            }
            if (r < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
}

static void unknown_and_invalid(run_ctx *c)
{
    halo_detect *d = c->d;
    for (size_t i = 0; i < c->n; i++) {
        span_scratch *x = &c->sc[i];
        if (!x->failed || x->llm)
            continue;
        const char *kind = NULL;
        char subject[128];
        snprintf(subject, sizeof subject, "%s", x->key);
        if (says(halo_text_says_unknown_tool, x->s)) {
            kind = HALO_KIND_UNKNOWN_TOOL;
            if (!x->s->tool_name &&
                !halo_text_quoted_name(span_message(x->s), subject,
                                       sizeof subject))
                snprintf(subject, sizeof subject, "%s", x->key);
        } else if (x->tool && says(halo_text_says_invalid_input, x->s)) {
            kind = HALO_KIND_INVALID_INPUT;
        }
        if (!kind)
            continue;
        group *g = detect_group(d, kind, subject, NULL, span_message(x->s));
        if (!g)
            return;
        group_add_run(d, g, c->run);
        group_add_span(d, g, x->s->span_id);
        g->occurrences++;
        g->wasted_ms += x->s->duration_ms;
        x->claimed = true;
    }
}

/* Tool calls grouped by tool (stable: start order within a tool). */
static int cmp_tool_calls(const void *a, const void *b, void *ctx)
{
    const span_scratch *sc = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (sc[x].step != sc[y].step)
        return sc[x].step < sc[y].step ? -1 : 1;
    return x < y ? -1 : x > y;
}

static bool near_identical(halo_detect *d, span_scratch *a, span_scratch *b)
{
    if (!strcmp(args_of(a), args_of(b)))
        return true;
    return halo_text_similarity(a->s->input, b->s->input) >=
           d->cfg.retry_similarity;
}

/* LLM tokens and cost spent between two instants of the run. */
static void llm_between(run_ctx *c, uint64_t from, uint64_t to, group *g)
{
    for (size_t i = 0; i < c->n; i++) {
        const halo_scan_span *s = c->sc[i].s;
        if (!c->sc[i].llm || s->start_ns <= from || s->start_ns >= to)
            continue;
        g->wasted_tokens = tok_add(g->wasted_tokens,
                                   tok_add(s->input_tokens, s->output_tokens));
        g->wasted_cost += s->cost > 0 ? s->cost : 0;
    }
}

/* Chains of one tool's calls: a failed call, then the later calls with
 * near-identical arguments (other calls of the tool in between, e.g. in
 * parallel, are passed over), up to the first that succeeded. */
static void retry_loops(run_ctx *c, const int32_t *calls, size_t m)
{
    halo_detect *d = c->d;
    int32_t chain[64];
    if (m > 1024)
        m = 1024; /* bounded work for pathological runs */
    for (size_t i = 0; i < m; i++) {
        span_scratch *first = &c->sc[calls[i]];
        if (first->claimed || !first->failed)
            continue;
        size_t n = 0;
        chain[n++] = calls[i];
        for (size_t j = i + 1; j < m && j <= i + 64 && n < 64; j++) {
            span_scratch *x = &c->sc[calls[j]];
            if (x->claimed || !near_identical(d, first, x))
                continue;
            chain[n++] = calls[j];
            if (!x->failed)
                break;
        }
        int64_t retries = (int64_t)n - 1;
        if (retries < d->cfg.retry_min_retries)
            continue;
        group *g = detect_group(d, HALO_KIND_RETRY_LOOP, first->key, NULL,
                                span_message(first->s));
        if (!g)
            return;
        group_add_run(d, g, c->run);
        g->occurrences++;
        g->extra += retries;
        span_scratch *last = &c->sc[chain[n - 1]];
        for (size_t k = 0; k < n; k++) {
            span_scratch *x = &c->sc[chain[k]];
            group_add_span(d, g, x->s->span_id);
            if (x != last || x->failed)
                g->wasted_ms += x->s->duration_ms;
            x->claimed = true;
        }
        llm_between(c, first->s->start_ns, last->s->start_ns, g);
    }
}

static bool same_output(const halo_scan_span *a, const halo_scan_span *b)
{
    if (!a->output || !b->output)
        return true;
    return !strcmp(a->output, b->output);
}

static void duplicates(run_ctx *c, const int32_t *calls, size_t m)
{
    halo_detect *d = c->d;
    if (m > 256)
        m = 256; /* bounded work for pathological runs */
    for (size_t j = 1; j < m; j++) {
        span_scratch *b = &c->sc[calls[j]];
        if (b->claimed || b->failed)
            continue;
        for (size_t i = 0; i < j; i++) {
            span_scratch *a = &c->sc[calls[i]];
            if (a->claimed || a->failed || !a->s->input || !b->s->input ||
                !same_output(a->s, b->s) || strcmp(args_of(a), args_of(b)))
                continue;
            group *g = detect_group(d, HALO_KIND_DUPLICATE_CALL, b->key, NULL,
                                    b->s->input);
            if (!g)
                return;
            group_add_run(d, g, c->run);
            group_add_span(d, g, b->s->span_id);
            g->occurrences++;
            g->wasted_ms += b->s->duration_ms;
            break;
        }
    }
}

static void tool_calls(run_ctx *c)
{
    halo_detect *d = c->d;
    size_t m = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->sc[i].tool)
            d->order[m++] = (int32_t)i;
    qsort_r(d->order, m, sizeof *d->order, cmp_tool_calls, c->sc);
    for (size_t a = 0; a < m;) {
        size_t b = a + 1;
        while (b < m && c->sc[d->order[b]].step == c->sc[d->order[a]].step)
            b++;
        if (b - a >= 2) {
            retry_loops(c, d->order + a, b - a);
            duplicates(c, d->order + a, b - a);
        }
        a = b;
    }
}

static void context_growth(run_ctx *c)
{
    halo_detect *d = c->d;
    size_t k = 0, ups = 0;
    int64_t first = -1, prev = -1;
    span_scratch *last = NULL;
    for (size_t i = 0; i < c->n; i++) {
        span_scratch *x = &c->sc[i];
        if (!x->llm || x->s->input_tokens < 0)
            continue;
        if (k == 0)
            first = x->s->input_tokens;
        else if (x->s->input_tokens > prev)
            ups++;
        prev = x->s->input_tokens;
        last = x;
        k++;
    }
    if ((int64_t)k < d->cfg.context_min_calls ||
        (double)ups < 0.8 * (double)(k - 1) ||
        (double)prev < d->cfg.context_growth * (double)(first > 0 ? first : 1))
        return;
    span_scratch *root = c->root < c->n ? &c->sc[c->root] : NULL;
    bool ends_badly = (root && error_status(root->s)) ||
                      error_status(last->s) ||
                      halo_text_is_empty_output(last->s->output) ||
                      says(halo_text_says_context_limit, last->s);
    if (!ends_badly)
        return;
    group *g = detect_group(d, HALO_KIND_CONTEXT_GROWTH, "", NULL,
                            span_message(last->s));
    if (!g)
        return;
    group_add_run(d, g, c->run);
    g->occurrences++;
    g->extra += prev - first;
    g->wasted_ms += c->t->trace->duration_ms;
    for (size_t i = 0; i < c->n; i++) {
        span_scratch *x = &c->sc[i];
        if (x->llm && x->s->input_tokens >= 0) {
            group_add_span(d, g, x->s->span_id);
            g->wasted_tokens =
                tok_add(g->wasted_tokens,
                        tok_add(x->s->input_tokens, x->s->output_tokens));
            g->wasted_cost += x->s->cost > 0 ? x->s->cost : 0;
        }
        if (x == last || x == root ||
            (error_status(x->s) && says(halo_text_says_context_limit, x->s)))
            x->claimed = true;
    }
}

static void silent_failures(run_ctx *c)
{
    halo_detect *d = c->d;
    for (size_t i = 0; i < c->n; i++) {
        span_scratch *x = &c->sc[i];
        if (x->llm || x->claimed || error_status(x->s) ||
            !halo_text_carries_error(x->s->output))
            continue;
        char subject[300];
        snprintf(subject, sizeof subject, "%s %s", x->s->span_type, x->key);
        group *g = detect_group(d, HALO_KIND_SILENT_FAILURE, subject, NULL,
                                x->s->output);
        if (!g)
            return;
        group_add_run(d, g, c->run);
        group_add_span(d, g, x->s->span_id);
        g->occurrences++;
        x->claimed = true;
    }
}

/* Did a later call of the same step succeed (and the run end well)? */
static bool recovered(run_ctx *c, size_t i)
{
    if (c->root < c->n && error_status(c->sc[c->root].s))
        return false;
    for (size_t j = i + 1; j < c->n; j++)
        if (c->sc[j].step == c->sc[i].step && !c->sc[j].failed)
            return true;
    return false;
}

static void error_clusters(run_ctx *c)
{
    halo_detect *d = c->d;
    halo_buf sig = HALO_BUF_INIT;
    for (size_t i = 0; i < c->n; i++) {
        span_scratch *x = &c->sc[i];
        if (!error_status(x->s) || x->claimed || x->err_child)
            continue;
        const char *msg = span_message(x->s);
        halo_buf_reset(&sig);
        halo_text_normalize_message(msg && *msg ? msg : "(no message)", &sig);
        halo_buf_putc(&sig, '\0');
        if (sig.oom) {
            d->oom = true;
            break;
        }
        group *g =
            detect_group(d, HALO_KIND_ERROR_CLUSTER, x->key, sig.data, msg);
        if (!g)
            break;
        group_add_run(d, g, c->run);
        group_add_span(d, g, x->s->span_id);
        g->occurrences++;
        g->wasted_ms += x->s->duration_ms;
        if (!recovered(c, i) && g->last_unrec != c->run) {
            g->last_unrec = c->run;
            g->unrec_runs++;
            g->wasted_tokens =
                tok_add(g->wasted_tokens, tok_add(c->t->trace->input_tokens,
                                                  c->t->trace->output_tokens));
            g->wasted_cost += c->t->trace->cost;
        }
    }
    halo_buf_free(&sig);
}

/* The model of most of the run's LLM calls. */
static int32_t main_model(run_ctx *c)
{
    const char *best = NULL;
    size_t best_n = 0;
    for (size_t i = 0; i < c->n; i++) {
        const char *m = c->sc[i].llm ? c->sc[i].s->model : NULL;
        if (!m)
            continue;
        size_t cnt = 0;
        for (size_t j = i; j < c->n; j++)
            if (c->sc[j].llm && c->sc[j].s->model &&
                !strcmp(c->sc[j].s->model, m))
                cnt++;
        if (cnt > best_n) {
            best_n = cnt;
            best = m;
        }
        if (best_n * 2 > c->n)
            break;
    }
    if (!best)
        return -1;
    int32_t idx = strmap_intern(&c->d->models, best, strlen(best));
    if (idx < 0)
        c->d->oom = true;
    return idx;
}

static bool ensure_scratch(halo_detect *d, size_t n)
{
    if (n <= d->cap_sc)
        return true;
    size_t nc = d->cap_sc ? d->cap_sc : 64;
    while (nc < n)
        nc *= 2;
    span_scratch *sc = realloc(d->sc, nc * sizeof *sc);
    if (!sc)
        return false;
    d->sc = sc;
    int32_t *ord = realloc(d->order, nc * sizeof *ord);
    if (!ord)
        return false;
    d->order = ord;
    d->cap_sc = d->cap_order = nc;
    return true;
}

static void run_facts(run_ctx *c)
{
    halo_detect *d = c->d;
    run_info *ri = &d->runs[c->run];
    const halo_trace_row *tr = c->t->trace;
    if (!halo_hex_decode(tr->trace_id, 32, ri->trace_id, 16))
        memset(ri->trace_id, 0, 16);
    ri->start_ns = tr->start_ns;
    ri->duration_ms = tr->duration_ms;
    ri->cost = tr->cost;
    ri->tokens = tok_add(tr->input_tokens, tr->output_tokens);
    ri->main_model = main_model(c);
    if (c->root >= c->n || /* no root stored */
        !halo_hex_decode(c->sc[c->root].s->span_id, 16, ri->root_span, 8))
        memset(ri->root_span, 0, 8);
}

halo_status halo_detect_add(halo_detect *d, const halo_scan_trace *t,
                            halo_err *err)
{
    if (!grow((void **)&d->runs, d->n_runs, &d->cap_runs, sizeof *d->runs) ||
        !ensure_scratch(d, t->n ? t->n : 1))
        return halo_fail(err, HALO_ENOMEM, "out of memory analyzing a run");
    /* the root: the first span without a parent; none (SIZE_MAX) when the
     * trace's root was not stored */
    run_ctx c = {d, t, d->sc, t->n, (int32_t)d->n_runs++, SIZE_MAX};
    for (size_t i = 0; i < t->n; i++) {
        const halo_scan_span *s = &t->spans[i];
        span_scratch *x = &c.sc[i];
        memset(x, 0, sizeof *x);
        x->s = s;
        x->llm = !strcmp(s->span_type, "LLM");
        x->tool = !strcmp(s->span_type, "TOOL");
        x->failed = error_status(s) || halo_text_is_empty_output(s->output) ||
                    (!x->llm && halo_text_carries_error(s->output));
        x->key = x->tool && s->tool_name ? s->tool_name : nz(s->name);
        x->step = step_index(d, s);
        if (!s->parent_span_id[0] && c.root == SIZE_MAX)
            c.root = i;
    }
    run_facts(&c);
    if (t->n) {
        mark_error_parents(&c);
        unknown_and_invalid(&c);
        tool_calls(&c);
        context_growth(&c);
        silent_failures(&c);
        error_clusters(&c);
        for (size_t i = 0; i < t->n; i++)
            if (i != c.root && strcmp(t->spans[i].span_type, "AGENT") &&
                c.sc[i].step >= 0)
                add_sample(d, c.sc[i].step, &t->spans[i], c.run);
    }
    for (size_t i = 0; i < t->n; i++)
        halo_buf_free(&c.sc[i].args);
    if (d->oom)
        return halo_fail(err, HALO_ENOMEM, "out of memory analyzing a run");
    return HALO_OK;
}

/* ---- findings ------------------------------------------------------------ */

int64_t detect_needed_runs(const halo_detect *d)
{
    int64_t by_share =
        (int64_t)ceil(d->cfg.min_fraction * (double)d->n_runs - 1e-9);
    return by_share > d->cfg.min_traces ? by_share : d->cfg.min_traces;
}

static bool group_reportable(const halo_detect *d, const group *g)
{
    int64_t need = detect_needed_runs(d);
    if (strcmp(g->kind, HALO_KIND_ERROR_CLUSTER))
        return (int64_t)g->n_runs >= need;
    if (g->unrec_runs >= need)
        return true;
    int64_t flaky =
        (int64_t)ceil(d->cfg.recovered_min_fraction * (double)d->n_runs - 1e-9);
    return (int64_t)g->n_runs >= (flaky > need ? flaky : need);
}

halo_status halo_detect_finish(halo_detect *d, halo_report *r, halo_err *err)
{
    if (d->oom)
        return halo_fail(err, HALO_ENOMEM, "out of memory analyzing runs");
    for (size_t i = 0; i < d->group_keys.n; i++)
        if (group_reportable(d, &d->groups[i]) &&
            !finding_from_group(d, &d->groups[i], r))
            return halo_fail(err, HALO_ENOMEM,
                             "out of memory writing findings");
    halo_status st = detect_window_findings(d, r, err);
    if (st != HALO_OK)
        return st;
    /* the window's totals, for the waste shares */
    double ms = 0, cost = 0;
    int64_t tokens = 0;
    for (size_t i = 0; i < d->n_runs; i++) {
        ms += d->runs[i].duration_ms;
        cost += d->runs[i].cost;
        tokens = tok_add(tokens, d->runs[i].tokens);
    }
    r->total_ms = ms;
    r->total_tokens = (double)tokens;
    r->total_cost = cost;
    halo_findings_rank(r);
    return HALO_OK;
}
