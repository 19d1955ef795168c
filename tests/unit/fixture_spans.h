/*
 * fixture_spans.h -- hand-built spans and batches for the store tests
 * (test_sqlite_store, test_pg_write, test_pg_store): ids from numbers,
 * spans from a few options, a shared resource and scope, and a "rich"
 * trace with every field of a span set.
 *
 * Static inline like fixtures.h, so a test includes it without a build
 * change. Strings are referenced, not copied (literals in practice); a
 * batch owns the arena its spans live in.
 */
#ifndef HALO_TEST_FIXTURE_SPANS_H
#define HALO_TEST_FIXTURE_SPANS_H

#include "fixtures.h"

#include "core/arena.h"
#include "core/batch.h"
#include "core/span.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define T0 1763283600000000000ull /* 2025-11-16T09:00:00Z */

/* ---- comparing ----------------------------------------------------------- */

/* Equal strings, or both NULL. */
static inline bool str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

/* In a function returning bool that compares item number i (a size_t) of
 * kind what: when cond does not hold, say so and return false. */
#define SAME_OR_FALSE(what, i, cond)                                           \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "  %s %zu: %s differs\n", what, (size_t)(i),       \
                    #cond);                                                    \
            return false;                                                      \
        }                                                                      \
    } while (0)

/* ---- building ------------------------------------------------------------ */

/* Trace id abab...ab followed by n, big-endian. */
static inline void make_tid(uint8_t out[16], uint64_t n)
{
    memset(out, 0xab, 8);
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(n >> (56 - 8 * i));
}

static inline void make_sid(uint8_t out[8], uint64_t n)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(n >> (56 - 8 * i));
}

static inline halo_attrs attrs_of(halo_arena *a, const char *const *keys,
                                  const halo_value *vals, size_t n)
{
    halo_attrs at = {halo_arena_calloc(a, n ? n : 1, sizeof(halo_kv)), n};
    for (size_t i = 0; i < n; i++) {
        at.items[i].key = keys[i];
        at.items[i].value = vals[i];
    }
    return at;
}

/* A value of every type, nested arrays and kvlists, doubles that must
 * stay doubles (2.0, 1e300). lossy adds what plain JSON cannot give back
 * (json_attrs.h): a NaN (after "dbig"), a string with a NUL byte and a
 * duplicate key (at the end). */
static inline halo_attrs rich_attrs(halo_arena *a, bool lossy)
{
    static const char bytes[] = {0, 1, 2, (char)0xfe, (char)0xff};
    halo_value *arr = halo_arena_calloc(a, 3, sizeof *arr);
    arr[0] = v_int(1);
    arr[1] = v_str("two");
    arr[2] = v_dbl(3.0);
    halo_kv *kv = halo_arena_calloc(a, 2, sizeof *kv);
    kv[0] = B("inner", false);
    kv[1].key = "list";
    kv[1].value = v_arr(arr, 2);
    halo_value nul = v_str("a");
    nul.u.s.ptr = "a\0b";
    nul.u.s.len = 3;
    halo_kv all[] = {S("s", "hello\nworld"),
                     S("quote\"key", "x"),
                     I("i", INT64_MAX),
                     I("neg", -42),
                     D("d", 0.1),
                     D("dint", 2.0),
                     D("dbig", 1e300),
                     D("nan", NAN),
                     B("b", true),
                     {"bytes", v_bytes(bytes, sizeof bytes)},
                     {"arr", v_arr(arr, 3)},
                     {"kv", v_kvl(kv, 2)},
                     {"empty", {.type = HALO_VAL_EMPTY}},
                     S("utf8", "h\xc3\xa9llo \xe2\x82\xac"),
                     {"nul", nul},
                     S("s", "duplicate key")};
    size_t n_all = sizeof all / sizeof *all;
    halo_attrs at = {halo_arena_calloc(a, n_all, sizeof(halo_kv)), 0};
    for (size_t i = 0; i < n_all; i++) {
        bool extra = i == 7 || i >= n_all - 2;
        if (lossy || !extra)
            at.items[at.n++] = all[i];
    }
    return at;
}

typedef struct span_opts {
    uint64_t trace;
    uint64_t span;
    uint64_t parent;   /* 0: root */
    uint64_t start_ms; /* after T0, plus start_ns */
    uint64_t dur_ms;   /* plus dur_ns */
    uint64_t start_ns;
    uint64_t dur_ns;
    int status;
    const char *agent;
    uint32_t fb_mask;
    const char *type;
} span_opts;

static inline void fill_span(halo_span *sp, const halo_resource *res,
                             const halo_scope *scope, const span_opts *o)
{
    memset(sp, 0, sizeof *sp);
    make_tid(sp->trace_id, o->trace);
    make_sid(sp->span_id, o->span);
    if (o->parent)
        make_sid(sp->parent_span_id, o->parent);
    sp->trace_state = "";
    sp->name = o->parent ? "child" : "root";
    sp->kind = o->parent ? 1 : 2;
    sp->start_ns = T0 + o->start_ms * 1000000ull + o->start_ns;
    sp->end_ns = sp->start_ns + o->dur_ms * 1000000ull + o->dur_ns;
    sp->status_code = o->status;
    sp->status_message = o->status == HALO_STATUS_ERROR ? "boom" : "";
    sp->resource = res;
    sp->scope = scope;
    sp->d.agent_id = o->agent;
    sp->d.agent_name = o->agent;
    sp->d.span_type = o->type ? o->type : "AGENT";
    sp->d.fallback_mask = o->fb_mask;
}

static inline halo_resource *make_resource(halo_arena *a, const char *service)
{
    halo_resource *r = halo_arena_calloc(a, 1, sizeof *r);
    static const char *keys[] = {"service.name", "host.cores"};
    halo_value vals[] = {v_str(service), v_int(2)};
    r->attrs = attrs_of(a, keys, vals, 2);
    r->schema_url = "";
    return r;
}

static inline halo_scope *make_scope(halo_arena *a)
{
    halo_scope *s = halo_arena_calloc(a, 1, sizeof *s);
    s->name = "my.lib";
    s->version = "1.2.3";
    s->schema_url = "https://opentelemetry.io/schemas/1.21.0";
    static const char *keys[] = {"scope.attr"};
    halo_value vals[] = {v_bool(true)};
    s->attrs = attrs_of(a, keys, vals, 1);
    s->dropped_attrs = 3;
    return s;
}

/* A trace of agent at offset start_ns after T0 into o[0..4): a root (span
 * 1) and three children; child 3 starts before child 2, child 4 at the
 * same time as child 3 (ties: span id); child 2 is an LLM call, child 4 a
 * failing tool call. Returns 4. */
static inline size_t fixture_trace(span_opts *o, uint64_t trace,
                                   const char *agent, uint64_t start_ns)
{
    o[0] = (span_opts){.trace = trace,
                       .span = 1,
                       .start_ns = start_ns,
                       .dur_ns = 50 * 1000000ull,
                       .agent = agent,
                       .status = HALO_STATUS_OK};
    o[1] = (span_opts){.trace = trace,
                       .span = 2,
                       .parent = 1,
                       .start_ns = start_ns + 30,
                       .dur_ns = 1000,
                       .agent = agent,
                       .type = "LLM"};
    o[2] = (span_opts){.trace = trace,
                       .span = 4,
                       .parent = 1,
                       .start_ns = start_ns + 20,
                       .dur_ns = 1000,
                       .agent = agent,
                       .type = "TOOL",
                       .status = HALO_STATUS_ERROR};
    o[3] = (span_opts){.trace = trace,
                       .span = 3,
                       .parent = 1,
                       .start_ns = start_ns + 20,
                       .dur_ns = 7,
                       .agent = agent};
    return 4;
}

/* A batch of spans built from opts under one resource and scope, owning
 * its arena. */
static inline halo_batch *batch_of(const span_opts *opts, size_t n)
{
    halo_arena *a = halo_arena_new(0);
    halo_span *spans = halo_arena_calloc(a, n, sizeof *spans);
    halo_resource *res = make_resource(a, "svc");
    halo_scope *scope = make_scope(a);
    for (size_t i = 0; i < n; i++)
        fill_span(&spans[i], res, scope, &opts[i]);
    halo_batch *b = halo_batch_new();
    if (!b || halo_batch_add_chunk(b, a, spans, n) != HALO_OK)
        return NULL;
    return b;
}

/* The same, with an acknowledgement calling fn(ud, ...) when the batch is
 * done (stored or refused). */
static inline halo_batch *acked_batch_of(const span_opts *opts, size_t n,
                                         halo_ack_fn fn, void *ud)
{
    halo_batch *b = batch_of(opts, n);
    halo_ack *ack = b ? halo_ack_new(fn, ud) : NULL;
    if (ack) {
        halo_batch_add_ack(b, ack);
        halo_ack_unref(ack);
    }
    return b;
}

/* The root's events (one with attributes and a dropped count, one empty)
 * and a link with attributes. */
static inline void rich_events_links(halo_arena *a, halo_span *sp)
{
    halo_event *ev = halo_arena_calloc(a, 2, sizeof *ev);
    ev[0].name = "exception";
    ev[0].time_ns = T0 + 5;
    static const char *ek[] = {"exception.message", "count"};
    halo_value evv[] = {v_str("bad thing"), v_int(3)};
    ev[0].attrs = attrs_of(a, ek, evv, 2);
    ev[0].dropped_attrs = 4;
    ev[1].name = "empty";
    ev[1].time_ns = T0 + 6;
    sp->events = ev;
    sp->n_events = 2;
    halo_link *ln = halo_arena_calloc(a, 1, sizeof *ln);
    make_tid(ln->trace_id, 99);
    make_sid(ln->span_id, 98);
    ln->trace_state = "k=v";
    ln->flags = 1;
    ln->dropped_attrs = 2;
    static const char *lk[] = {"link.kind"};
    halo_value lv[] = {v_str("follows")};
    ln->attrs = attrs_of(a, lk, lv, 1);
    sp->links = ln;
    sp->n_links = 1;
}

/* Three spans of trace 1 of "support-agent": the root (span 10, OK, every
 * field set: rich_attrs(lossy), trace state, flags, dropped counts,
 * events, a link, session, user, service, input/output), an LLM child
 * (span 11, UNSET, model, tokens, cost) and a TOOL child (span 12, ERROR
 * "boom", tool name, input tokens) under a second resource with a schema
 * URL and a dropped count; one scope with version and attributes. The
 * children share the root's session and user. Starts and durations in ns
 * after T0. *spans (may be NULL) gets the batch's spans, to adjust. */
static inline halo_batch *rich_batch_at(const uint64_t start_ns[3],
                                        const uint64_t dur_ns[3], bool lossy,
                                        halo_span **spans)
{
    halo_arena *a = halo_arena_new(0);
    halo_span *sp = halo_arena_calloc(a, 3, sizeof *sp);
    halo_resource *r1 = make_resource(a, "svc-one");
    halo_resource *r2 = make_resource(a, "svc-two");
    r2->dropped_attrs = 7;
    r2->schema_url = "https://example.com/schema";
    halo_scope *scope = make_scope(a);
    static const int status[3] = {HALO_STATUS_OK, HALO_STATUS_UNSET,
                                  HALO_STATUS_ERROR};
    static const char *const type[3] = {NULL, "LLM", "TOOL"};
    for (int i = 0; i < 3; i++) {
        span_opts o = {.trace = 1,
                       .span = 10 + (uint64_t)i,
                       .parent = i ? 10 : 0,
                       .start_ns = start_ns[i],
                       .dur_ns = dur_ns[i],
                       .status = status[i],
                       .agent = "support-agent",
                       .type = type[i]};
        fill_span(&sp[i], i == 2 ? r2 : r1, scope, &o);
        sp[i].d.session_id = "sess-1";
        sp[i].d.user_id = "user-1";
    }
    sp[0].attrs = rich_attrs(a, lossy);
    sp[0].trace_state = "vendor=x";
    sp[0].flags = 0x301;
    sp[0].dropped_attrs = 1;
    sp[0].dropped_events = 2;
    sp[0].dropped_links = 3;
    sp[0].d.service_name = "svc-one";
    sp[0].d.input = "question?";
    sp[0].d.output = "answer!";
    rich_events_links(a, &sp[0]);
    sp[1].d.model = "gpt-4o";
    sp[1].d.has_input_tokens = sp[1].d.has_output_tokens = true;
    sp[1].d.input_tokens = 1200;
    sp[1].d.output_tokens = 300;
    sp[1].d.has_cost = true;
    sp[1].d.cost = 0.0125;
    sp[2].d.tool_name = "search_docs";
    sp[2].d.has_input_tokens = true;
    sp[2].d.input_tokens = 5;
    if (spans)
        *spans = sp;
    halo_batch *b = halo_batch_new();
    halo_batch_add_chunk(b, a, sp, 3);
    return b;
}

/* ---- spans whose input and output repeat in their attributes ---------- */

/* Trace 1's spans 1..IO_SPANS, for the stores' "input and output stored
 * once" tests: the attributes repeat the span's input / output
 * (input.value, output.value) in either order, after characters of
 * several bytes, with escapes, both the same text; io_cut[i] says which
 * of input / output a store cuts from span i+1 ("10": the input).
 * Kept whole: a text that is not UTF-8 (IO_SPAN_BAD), a short one, a value
 * that is not a string. IO_SPAN_FF has \f and \b (which stores may
 * escape differently). The attribute lists are static: one batch at a
 * time. */
#define IO_SPANS 8
#define IO_SPAN_BAD 5
#define IO_SPAN_FF 7
#define IO_IN                                                                  \
    "Question: \"why\" \\ na\xc3\xafve\n\ttab \x01 \xf0\x9f\x98\x80 "          \
    "\xe2\x80\xa8 \x7f end"
#define IO_OUT "Answer \xe2\x82\xac 42, long enough"
static const char *const io_cut[IO_SPANS] = {"11", "11", "10", "01",
                                             "11", "00", "00", "10"};
static inline halo_batch *io_batch(void)
{
    static const char bad[] = "invalid \xff UTF-8 byte, long enough";
    static const char ff[] = "form\ffeed\bbackspace, long enough";
    static halo_kv k0[5], k1[3], k2[2], k3[1], k4[2], k5[1], k6[1], k7[1];
    span_opts o[IO_SPANS];
    for (int i = 0; i < IO_SPANS; i++)
        o[i] = (span_opts){.trace = 1,
                           .span = (uint64_t)i + 1,
                           .parent = i ? 1 : 0,
                           .start_ms = (uint64_t)i,
                           .dur_ms = 1,
                           .agent = "io"};
    halo_batch *b = batch_of(o, IO_SPANS);
    if (!b)
        return NULL;
    halo_span *sp = b->head->spans;
    k0[0] = S("pre", "\xc3\xa9\xc3\xa9 two-byte characters");
    k0[1] = S("output.value", IO_OUT);
    k0[2] = I("k", 1);
    k0[3] = S("input.value", IO_IN);
    k0[4] = S("copy", IO_IN);
    k1[0] = S("input.value", IO_IN);
    k1[1] = S("mid", "\xe2\x82\xac");
    k1[2] = S("output.value", IO_OUT);
    k2[0] = S("input.value", IO_IN);
    k2[1] = S("output.value", "short");
    k3[0] = S("output.value", IO_OUT);
    k4[0] = S("a", IO_OUT);
    k4[1] = S("b", IO_OUT);
    k5[0] = S("input.value", bad);
    k6[0] = I("input.value", 12345678901234567);
    k7[0] = S("input.value", ff);
    sp[0].attrs = (halo_attrs){k0, 5};
    sp[1].attrs = (halo_attrs){k1, 3};
    sp[2].attrs = (halo_attrs){k2, 2};
    sp[3].attrs = (halo_attrs){k3, 1};
    sp[4].attrs = (halo_attrs){k4, 2};
    sp[5].attrs = (halo_attrs){k5, 1};
    sp[6].attrs = (halo_attrs){k6, 1};
    sp[7].attrs = (halo_attrs){k7, 1};
    sp[0].d.input = sp[1].d.input = sp[2].d.input = IO_IN;
    sp[0].d.output = sp[1].d.output = sp[3].d.output = IO_OUT;
    sp[2].d.output = "short";
    sp[4].d.input = sp[4].d.output = IO_OUT;
    sp[5].d.input = bad;
    sp[6].d.input = "12345678901234567";
    sp[7].d.input = ff;
    return b;
}

#endif
