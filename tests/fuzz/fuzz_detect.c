/*
 * fuzz_detect.c -- libFuzzer target for the detectors and the report
 * renderings (analyzer/detect*.c, text.c, report.c): span contents come
 * from users' agents, so every judgement on them must hold for any bytes.
 *
 * The input is cut into runs of spans. Each span takes a few control bytes
 * (span type, status, parent, duration, tokens, cost) and three
 * NUL-separated texts (tool/name, input, output/message), so the fuzzer
 * reaches retry chains, duplicates, error clusters, growth and the window
 * statistics with text it chose. Thresholds are lowered so small inputs
 * make findings; the findings are rendered as JSON (which must parse) and
 * Markdown.
 */
#include "analyzer/analyzer.h"
#include "core/span.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_SPANS = 64, MAX_RUNS = 64 };

typedef struct cursor {
    const uint8_t *p;
    size_t n;
} cursor;

static uint8_t byte(cursor *c)
{
    if (!c->n)
        return 0;
    c->n--;
    return *c->p++;
}

/* A NUL-terminated text of at most 300 bytes from the input (copied into
 * pool), NULL when the control byte says so. */
static const char *text(cursor *c, char *pool, size_t *used, size_t cap)
{
    if (byte(c) % 5 == 0)
        return NULL;
    size_t len = 0;
    while (len < c->n && len < 300 && c->p[len] != 0)
        len++;
    if (*used + len + 1 > cap)
        return NULL;
    char *s = pool + *used;
    memcpy(s, c->p, len);
    s[len] = '\0';
    *used += len + 1;
    c->p += len < c->n ? len + 1 : len;
    c->n -= len < c->n ? len + 1 : len;
    return s;
}

static const char *const types[] = {"LLM",       "TOOL",    "AGENT",
                                    "RETRIEVER", "UNKNOWN", "CHAIN"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    halo_detect_config cfg;
    halo_detect_config_defaults(&cfg);
    cfg.min_traces = 1;
    cfg.min_fraction = 0;
    cfg.slow_min_samples = 2;
    cfg.regression_min_runs = 2;
    cfg.regression_min_t = 0;
    cfg.context_min_calls = 2;
    cfg.max_evidence = 5;
    halo_detect *d = halo_detect_new(&cfg);
    if (!d)
        return 0;
    cursor c = {data, size};
    static halo_scan_span spans[MAX_SPANS];
    static char pool[MAX_SPANS * 1024];
    for (int run = 0; run < MAX_RUNS && c.n; run++) {
        size_t n = byte(&c) % MAX_SPANS, used = 0;
        halo_trace_row tr;
        memset(&tr, 0, sizeof tr);
        snprintf(tr.trace_id, sizeof tr.trace_id, "%032x", run);
        tr.start_ns = (uint64_t)byte(&c) * 1000000000ull * 60;
        tr.duration_ms = byte(&c) * 100.0;
        tr.cost = byte(&c) / 100.0;
        tr.input_tokens = byte(&c) * 10;
        for (size_t i = 0; i < n; i++) {
            halo_scan_span *s = &spans[i];
            memset(s, 0, sizeof *s);
            uint8_t k = byte(&c), st = byte(&c), par = byte(&c);
            snprintf(s->span_id, sizeof s->span_id, "%016zx", i % 7);
            if (par % 4)
                snprintf(s->parent_span_id, sizeof s->parent_span_id, "%016x",
                         par % 9);
            s->span_type = types[k % 6];
            s->status_code = st % 3;
            s->start_ns = tr.start_ns + (uint64_t)byte(&c) * 1000000;
            s->duration_ms = (k & 0x80) ? NAN : byte(&c) * 37.0 - 100;
            s->end_ns = s->start_ns + 1000;
            s->input_tokens = (int64_t)byte(&c) * 100 - 1;
            s->output_tokens = st & 0x40 ? -1 : st;
            s->cost = par & 0x80 ? -1 : par / 1000.0;
            s->name = text(&c, pool, &used, sizeof pool);
            if (!s->name)
                s->name = "";
            s->tool_name = (k & 0x40) ? s->name : NULL;
            s->model = (k & 0x20) ? "m" : NULL;
            s->input = text(&c, pool, &used, sizeof pool);
            s->output = text(&c, pool, &used, sizeof pool);
            s->status_message = (st & 0x80) ? s->output : NULL;
        }
        halo_scan_trace t = {&tr, spans, n};
        halo_err err;
        if (halo_detect_add(d, &t, &err) != HALO_OK)
            break;
    }
    halo_report *r = calloc(1, sizeof *r);
    halo_err err;
    if (r && halo_detect_finish(d, r, &err) == HALO_OK) {
        r->agent_id = strdup("a");
        r->schedule = strdup("s");
        r->mode = "detectors";
        char *js = halo_report_json(r);
        char *md = halo_report_markdown(r);
        if (js) {
            json_t *j = json_loads(js, 0, NULL);
            if (!j)
                abort(); /* the report must always be valid JSON */
            json_decref(j);
        }
        free(js);
        free(md);
    }
    halo_report_free(r);
    halo_detect_free(d);
    return 0;
}
