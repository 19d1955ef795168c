/*
 * test_otlp_encode.c -- the OTLP encoders.
 *
 * The direct protobuf encoder (otlp_codec_pbenc.c, what halo_otlp_encode_pb
 * runs) must write exactly the bytes of the protobuf-c encoder it replaced
 * (otlp_encode_pb_reference). Random span sets cover every field and value
 * type: empty and NULL strings, zero and maximal numbers, negative enums,
 * NaN / infinities / -0.0, empty and nested arrays and kvlists, empty
 * values, bytes, unicode, events, links, flags, dropped counts, resources
 * and scopes shared by pointer and by equal content, spans without any.
 * Also:
 *  - the _refs encoders over a shuffled pointer array write what the
 *    contiguous encoders write for the same spans in the same order
 *    (protobuf and JSON);
 *  - decoding what the direct encoder wrote gives the spans back;
 *  - a few requests are checked byte for byte against hand-encoded wire
 *    bytes, so a mistake both encoders shared would still show;
 *  - nesting limit, empty request, out-of-memory buffer.
 * Ends with the encoding speed of a realistic 100-span request, old and
 * new (printed, not asserted).
 */
#include "fixtures.h"
#include "harness.h"

#include "core/arena.h"
#include "core/buf.h"
#include "core/span.h"
#include "receivers/otlp/otlp_codec.h"
#include "receivers/otlp/otlp_codec_enc.h"
#include "receivers/otlp/otlp_codec_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* --- random span sets ----------------------------------------------------- */

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static unsigned rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* What a generator may produce. Round trips need values the decoders give
 * back as they were: no NULL strings (they decode as ""), no NUL inside
 * string values (protobuf strings are C strings: cut there). */
typedef struct gen {
    halo_arena *a;
    bool odd; /* NULL strings, NULs inside string values */
} gen;

static const char *const words[] = {
    "",
    "a",
    "gen_ai.system",
    "openai",
    "llm.model_name",
    "\xc3\xa9t\xc3\xa9",
    "\xe2\x82\xac 12",
    "\xf0\x9f\x98\x80 smile",
    "tab\there",
    "quote \" and \\ backslash",
    "a much longer string value that goes on for a while so that its "
    "length prefix takes two bytes when it is repeated a few times and "
    "more text "
    "0123456789012345678901234567890123456789012345678901234567890123456789",
};

static const char *rstr(gen *g)
{
    if (g->odd && rn(12) == 0)
        return NULL;
    unsigned k = rn(sizeof words / sizeof *words + 2);
    if (k < sizeof words / sizeof *words)
        return words[k];
    /* a fresh one, sometimes long (length prefixes of 2-3 bytes) */
    size_t n = rn(4) == 0 ? 100 + rn(20000) : rn(40);
    char *s = halo_arena_alloc(g->a, n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)(' ' + rn(95));
    s[n] = '\0';
    return s;
}

static uint64_t rnum(void)
{
    switch (rn(6)) {
    case 0:
        return 0;
    case 1:
        return rn(128);
    case 2:
        return UINT64_MAX;
    case 3:
        return (uint64_t)1 << rn(64);
    default:
        return rnd();
    }
}

static uint32_t ru32(void)
{
    return rn(2) ? 0 : (uint32_t)rnum();
}

static double rdouble(void)
{
    static const double specials[] = {0.0, -0.0, 1.5, -2.25, 1e300, 5e-324};
    switch (rn(8)) {
    case 0:
        return NAN;
    case 1:
        return INFINITY;
    case 2:
        return -INFINITY;
    case 3:
        return specials[rn(6)];
    default: {
        double d;
        uint64_t bits = rnd();
        memcpy(&d, &bits, sizeof d);
        return d; /* any bit pattern, NaN payloads included */
    }
    }
}

static void rattrs(gen *g, halo_attrs *out, int depth);

static void rvalue(gen *g, halo_value *v, int depth)
{
    memset(v, 0, sizeof *v);
    unsigned t = rn(depth < 4 ? 9 : 7);
    switch (t) {
    case 0:
        v->type = HALO_VAL_EMPTY;
        break;
    case 1:
    case 8: {
        const char *s = rstr(g);
        v->type = HALO_VAL_STRING;
        v->u.s.ptr = s ? s : "";
        v->u.s.len = strlen(v->u.s.ptr);
        if (g->odd && rn(8) == 0) { /* NULs inside, bytes past them */
            char *z = halo_arena_alloc(g->a, 8);
            memcpy(z, "ab\0cd\0e", 8);
            v->u.s.ptr = z;
            v->u.s.len = rn(2) ? 5 : 7; /* NUL-terminated there too */
        }
        break;
    }
    case 2:
        v->type = HALO_VAL_BOOL;
        v->u.b = rn(2);
        break;
    case 3:
        v->type = HALO_VAL_INT;
        v->u.i = (int64_t)rnum();
        if (rn(3) == 0)
            v->u.i = (int64_t)(0 - (uint64_t)v->u.i);
        break;
    case 4:
        v->type = HALO_VAL_DOUBLE;
        v->u.d = rdouble();
        break;
    case 5: {
        size_t n = rn(3) ? rn(12) : rn(300);
        char *p = halo_arena_alloc(g->a, n ? n : 1);
        for (size_t i = 0; i < n; i++)
            p[i] = (char)rnd();
        v->type = HALO_VAL_BYTES;
        v->u.s.ptr = p;
        v->u.s.len = n;
        break;
    }
    case 6: {
        v->type = HALO_VAL_ARRAY;
        size_t n = rn(5);
        v->u.arr.n = n;
        v->u.arr.items =
            n ? halo_arena_alloc(g->a, n * sizeof(halo_value)) : NULL;
        for (size_t i = 0; i < n; i++)
            rvalue(g, &v->u.arr.items[i], depth + 1);
        break;
    }
    default: {
        halo_attrs a;
        rattrs(g, &a, depth + 1);
        v->type = HALO_VAL_KVLIST;
        v->u.kv.items = a.items;
        v->u.kv.n = a.n;
        break;
    }
    }
}

static void rattrs(gen *g, halo_attrs *out, int depth)
{
    size_t n = rn(4) == 0 ? 0 : rn(depth > 1 ? 4 : 14);
    out->n = n;
    out->items = n ? halo_arena_alloc(g->a, n * sizeof(halo_kv)) : NULL;
    for (size_t i = 0; i < n; i++) {
        out->items[i].key = rstr(g);
        if (!out->items[i].key && !g->odd)
            out->items[i].key = "";
        rvalue(g, &out->items[i].value, depth);
    }
}

static const char *rstr_nonnull(gen *g)
{
    const char *s = rstr(g);
    return s || g->odd ? s : "";
}

static void rid(uint8_t *id, size_t n, bool may_be_zero)
{
    for (size_t i = 0; i < n; i++)
        id[i] = (uint8_t)rnd();
    if (may_be_zero && rn(3) == 0)
        memset(id, 0, n);
    else if (halo_bytes_zero(id, n))
        id[0] = 1;
}

static halo_resource *rresource(gen *g)
{
    halo_resource *r = halo_arena_calloc(g->a, 1, sizeof *r);
    if (rn(4))
        rattrs(g, &r->attrs, 1);
    r->dropped_attrs = ru32();
    r->schema_url = rn(2) ? "" : rstr_nonnull(g);
    return r;
}

static halo_scope *rscope(gen *g)
{
    halo_scope *s = halo_arena_calloc(g->a, 1, sizeof *s);
    s->name = rstr_nonnull(g);
    s->version = rstr_nonnull(g);
    if (rn(3) == 0)
        rattrs(g, &s->attrs, 1);
    s->dropped_attrs = ru32();
    s->schema_url = rn(2) ? "" : rstr_nonnull(g);
    return s;
}

static int rkind(void)
{
    static const int odd[] = {-1, 6, 1000, INT32_MIN, INT32_MAX};
    return rn(8) ? (int)rn(6) : odd[rn(5)];
}

static void rspan(gen *g, halo_span *s, const halo_resource *res,
                  const halo_scope *sc)
{
    memset(s, 0, sizeof *s);
    rid(s->trace_id, 16, false);
    rid(s->span_id, 8, false);
    rid(s->parent_span_id, 8, true);
    s->trace_state = rn(3) ? "" : rstr_nonnull(g);
    s->flags = rn(2) ? 0 : (uint32_t)rnum();
    s->name = rstr_nonnull(g);
    s->kind = rkind();
    s->start_ns = rnum();
    s->end_ns = rnum();
    s->status_code = rn(4) ? (int)rn(3) : rkind();
    s->status_message = rn(2) ? "" : rstr_nonnull(g);
    rattrs(g, &s->attrs, 1);
    s->n_events = rn(3) ? 0 : rn(4);
    s->events = s->n_events
                    ? halo_arena_calloc(g->a, s->n_events, sizeof(halo_event))
                    : NULL;
    for (size_t k = 0; k < s->n_events; k++) {
        halo_event *e = &s->events[k];
        e->time_ns = rnum();
        e->name = rstr_nonnull(g);
        if (rn(2))
            rattrs(g, &e->attrs, 1);
        e->dropped_attrs = ru32();
    }
    s->n_links = rn(3) ? 0 : rn(3);
    s->links = s->n_links
                   ? halo_arena_calloc(g->a, s->n_links, sizeof(halo_link))
                   : NULL;
    for (size_t k = 0; k < s->n_links; k++) {
        halo_link *l = &s->links[k];
        rid(l->trace_id, 16, true); /* zero link ids are allowed */
        rid(l->span_id, 8, true);
        l->trace_state = rn(2) ? "" : rstr_nonnull(g);
        if (rn(2))
            rattrs(g, &l->attrs, 1);
        l->dropped_attrs = ru32();
        l->flags = rn(2) ? 0 : (uint32_t)rnum();
    }
    s->dropped_attrs = ru32();
    s->dropped_events = ru32();
    s->dropped_links = ru32();
    s->resource = res;
    s->scope = sc;
}

/* A set of n spans over a few resources and scopes: shared by pointer,
 * copies with equal content, the codec's shared empties, NULL (odd only). */
static halo_span *rspans(gen *g, size_t n)
{
    const halo_resource *res[6];
    const halo_scope *scs[6];
    for (int i = 0; i < 3; i++) {
        res[i] = rresource(g);
        scs[i] = rscope(g);
    }
    halo_resource *rc = halo_arena_alloc(g->a, sizeof *rc);
    *rc = *res[0]; /* equal content, another pointer */
    res[3] = rc;
    halo_scope *scc = halo_arena_alloc(g->a, sizeof *scc);
    *scc = *scs[1];
    scs[3] = scc;
    res[4] = &otlp_empty_resource;
    scs[4] = &otlp_empty_scope;
    halo_resource *re = halo_arena_calloc(g->a, 1, sizeof *re);
    re->schema_url = ""; /* empty content, not the shared empty */
    res[5] = re;
    halo_scope *se = halo_arena_calloc(g->a, 1, sizeof *se);
    se->name = se->version = se->schema_url = "";
    scs[5] = se;
    halo_span *spans = halo_arena_alloc(g->a, (n ? n : 1) * sizeof *spans);
    /* runs: a new resource / scope only now and then */
    unsigned ri = rn(6), si = rn(6);
    for (size_t i = 0; i < n; i++) {
        if (rn(4) == 0)
            ri = rn(6);
        if (rn(3) == 0)
            si = rn(6);
        const halo_resource *r = res[ri];
        const halo_scope *sc = scs[si];
        if (g->odd && rn(10) == 0)
            r = NULL;
        if (g->odd && rn(10) == 0)
            sc = NULL;
        rspan(g, &spans[i], r, sc);
    }
    return spans;
}

/* --- encoding helpers ----------------------------------------------------- */

static halo_status enc_ref(const halo_span *spans, size_t n, halo_buf *out)
{
    const halo_span **refs = otlp_span_refs(spans, n);
    halo_status st = otlp_encode_pb_reference(refs, n, out);
    free((void *)refs);
    return st;
}

static halo_status enc_direct(const halo_span *spans, size_t n, halo_buf *out)
{
    const halo_span **refs = otlp_span_refs(spans, n);
    halo_status st = otlp_encode_pbenc(refs, n, out);
    free((void *)refs);
    return st;
}

/* Offset of the first difference, or -1. */
static long first_diff(const halo_buf *a, const halo_buf *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++)
        if (a->data[i] != b->data[i])
            return (long)i;
    return a->len == b->len ? -1 : (long)n;
}

/* Both encoders over the same spans, appended after a prefix (the output is
 * appended, not overwritten): same status, same bytes. */
static bool same_bytes(const halo_span *spans, size_t n, halo_status *st)
{
    halo_buf x = HALO_BUF_INIT, y = HALO_BUF_INIT;
    halo_buf_puts(&x, "prefix");
    halo_buf_puts(&y, "prefix");
    halo_status sx = enc_ref(spans, n, &x);
    halo_status sy = enc_direct(spans, n, &y);
    long d = first_diff(&x, &y);
    bool ok = sx == sy && d < 0;
    if (!ok)
        fprintf(stderr,
                "  reference %d, %zu bytes; direct %d, %zu bytes; first "
                "difference at %ld\n",
                sx, x.len, sy, y.len, d);
    *st = sx;
    halo_buf_free(&x);
    halo_buf_free(&y);
    return ok;
}

/* --- deep comparison for round trips -------------------------------------- */

static bool s_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool v_eq(const halo_value *a, const halo_value *b);

static bool kvs_eq(const halo_kv *a, size_t an, const halo_kv *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (!s_eq(a[i].key, b[i].key) || !v_eq(&a[i].value, &b[i].value))
            return false;
    return true;
}

static bool v_eq(const halo_value *a, const halo_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case HALO_VAL_EMPTY:
        return true;
    case HALO_VAL_STRING:
    case HALO_VAL_BYTES:
        return a->u.s.len == b->u.s.len &&
               (a->u.s.len == 0 ||
                memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0);
    case HALO_VAL_BOOL:
        return a->u.b == b->u.b;
    case HALO_VAL_INT:
        return a->u.i == b->u.i;
    case HALO_VAL_DOUBLE:
        return memcmp(&a->u.d, &b->u.d, sizeof a->u.d) == 0; /* bits */
    case HALO_VAL_ARRAY:
        if (a->u.arr.n != b->u.arr.n)
            return false;
        for (size_t i = 0; i < a->u.arr.n; i++)
            if (!v_eq(&a->u.arr.items[i], &b->u.arr.items[i]))
                return false;
        return true;
    case HALO_VAL_KVLIST:
        return kvs_eq(a->u.kv.items, a->u.kv.n, b->u.kv.items, b->u.kv.n);
    }
    return false;
}

static bool attrs_eq(const halo_attrs *a, const halo_attrs *b)
{
    return kvs_eq(a->items, a->n, b->items, b->n);
}

static const char *span_diff(const halo_span *a, const halo_span *b)
{
    if (memcmp(a->trace_id, b->trace_id, 16) ||
        memcmp(a->span_id, b->span_id, 8) ||
        memcmp(a->parent_span_id, b->parent_span_id, 8))
        return "ids";
    if (!s_eq(a->trace_state, b->trace_state) || a->flags != b->flags)
        return "trace_state / flags";
    if (!s_eq(a->name, b->name) || a->kind != b->kind)
        return "name / kind";
    if (a->start_ns != b->start_ns || a->end_ns != b->end_ns)
        return "times";
    if (a->status_code != b->status_code ||
        !s_eq(a->status_message, b->status_message))
        return "status";
    if (!attrs_eq(&a->attrs, &b->attrs))
        return "attributes";
    if (a->dropped_attrs != b->dropped_attrs ||
        a->dropped_events != b->dropped_events ||
        a->dropped_links != b->dropped_links)
        return "dropped counts";
    if (a->n_events != b->n_events || a->n_links != b->n_links)
        return "event / link count";
    for (size_t i = 0; i < a->n_events; i++) {
        const halo_event *x = &a->events[i], *y = &b->events[i];
        if (x->time_ns != y->time_ns || !s_eq(x->name, y->name) ||
            x->dropped_attrs != y->dropped_attrs ||
            !attrs_eq(&x->attrs, &y->attrs))
            return "events";
    }
    for (size_t i = 0; i < a->n_links; i++) {
        const halo_link *x = &a->links[i], *y = &b->links[i];
        if (memcmp(x->trace_id, y->trace_id, 16) ||
            memcmp(x->span_id, y->span_id, 8) ||
            !s_eq(x->trace_state, y->trace_state) || x->flags != y->flags ||
            x->dropped_attrs != y->dropped_attrs ||
            !attrs_eq(&x->attrs, &y->attrs))
            return "links";
    }
    const halo_resource *r1 = a->resource, *r2 = b->resource;
    if (!r1 || !r2 || !s_eq(r1->schema_url, r2->schema_url) ||
        r1->dropped_attrs != r2->dropped_attrs ||
        !attrs_eq(&r1->attrs, &r2->attrs))
        return "resource";
    const halo_scope *s1 = a->scope, *s2 = b->scope;
    if (!s1 || !s2 || !s_eq(s1->name, s2->name) ||
        !s_eq(s1->version, s2->version) ||
        !s_eq(s1->schema_url, s2->schema_url) ||
        s1->dropped_attrs != s2->dropped_attrs ||
        !attrs_eq(&s1->attrs, &s2->attrs))
        return "scope";
    return NULL;
}

/* --- differential: direct encoder = protobuf-c ---------------------------- */

static bool differential_round(gen *g, size_t n)
{
    halo_span *spans = rspans(g, n);
    halo_status st;
    if (!same_bytes(spans, n, &st))
        return false;
    if (st != HALO_OK) {
        fprintf(stderr, "  encoding failed: %d\n", st);
        return false;
    }
    return true;
}

TEST(pb_direct_encoder_matches_reference)
{
    halo_arena *a = halo_arena_new(0);
    gen g = {a, false};
    for (int i = 0; i < 3000; i++) {
        if (!differential_round(&g, rn(8) == 0 ? 0 : 1 + rn(12))) {
            fprintf(stderr, "  round %d\n", i);
            halo_arena_free(a);
            CHECK(0);
        }
        if (i % 100 == 99) { /* keep memory bounded */
            halo_arena_free(a);
            a = g.a = halo_arena_new(0);
        }
    }
    halo_arena_free(a);
}

/* NULL strings, NULL resources and scopes, NULs inside string values (the
 * reference writes C strings): still the same bytes. */
TEST(pb_direct_encoder_matches_reference_odd_input)
{
    halo_arena *a = halo_arena_new(0);
    gen g = {a, true};
    for (int i = 0; i < 2000; i++) {
        if (!differential_round(&g, 1 + rn(10))) {
            fprintf(stderr, "  round %d\n", i);
            halo_arena_free(a);
            CHECK(0);
        }
        if (i % 100 == 99) {
            halo_arena_free(a);
            a = g.a = halo_arena_new(0);
        }
    }
    halo_arena_free(a);
}

/* Thousands of spans in one request: the size table outgrows its first
 * block. */
TEST(pb_direct_encoder_big_request)
{
    halo_arena *a = halo_arena_new(0);
    gen g = {a, false};
    halo_span *spans = rspans(&g, 3000);
    halo_status st;
    CHECK(same_bytes(spans, 3000, &st));
    CHECK_INT(st, HALO_OK);
    halo_arena_free(a);
}

/* --- _refs: any order, byte-identical to the contiguous array ------------- */

TEST(refs_encoders_match_contiguous)
{
    halo_arena *a = halo_arena_new(0);
    gen g = {a, false};
    for (int i = 0; i < 500; i++) {
        size_t n = rn(10) == 0 ? 0 : 1 + rn(15);
        halo_span *spans = rspans(&g, n);
        /* a shuffled pointer array, and the same order copied */
        const halo_span **refs = otlp_span_refs(spans, n);
        for (size_t k = n; k > 1; k--) {
            size_t j = rn((unsigned)k);
            const halo_span *t = refs[k - 1];
            refs[k - 1] = refs[j];
            refs[j] = t;
        }
        halo_span *copy = halo_arena_alloc(a, (n ? n : 1) * sizeof *copy);
        for (size_t k = 0; k < n; k++)
            copy[k] = *refs[k];
        uint8_t *pb = NULL;
        size_t len = 0;
        halo_buf b = HALO_BUF_INIT, jr = HALO_BUF_INIT, jc = HALO_BUF_INIT;
        halo_buf_puts(&b, "x");
        halo_buf_puts(&jr, "y");
        halo_buf_puts(&jc, "y");
        halo_status s1 = halo_otlp_encode_pb_refs(refs, n, &b);
        halo_status s2 = halo_otlp_encode_pb(copy, n, &pb, &len);
        halo_status s3 = halo_otlp_encode_json_refs(refs, n, &jr);
        halo_status s4 = halo_otlp_encode_json(copy, n, &jc);
        bool ok = s1 == HALO_OK && s2 == HALO_OK && s3 == HALO_OK &&
                  s4 == HALO_OK && pb && b.len == len + 1 &&
                  memcmp(b.data + 1, pb, len) == 0 && jr.len == jc.len &&
                  memcmp(jr.data, jc.data, jc.len) == 0;
        free(pb);
        free((void *)refs);
        halo_buf_free(&b);
        halo_buf_free(&jr);
        halo_buf_free(&jc);
        if (!ok) {
            fprintf(stderr, "  round %d: statuses %d %d %d %d\n", i, s1, s2, s3,
                    s4);
            halo_arena_free(a);
            CHECK(0);
        }
    }
    halo_arena_free(a);
}

/* --- round trip: decode(encode(spans)) = spans ---------------------------- */

TEST(pb_direct_encoder_round_trip)
{
    halo_arena *a = halo_arena_new(0);
    gen g = {a, false};
    for (int i = 0; i < 1000; i++) {
        size_t n = 1 + rn(12);
        halo_span *spans = rspans(&g, n);
        uint8_t *pb = NULL;
        size_t len = 0;
        CHECK_INT(halo_otlp_encode_pb(spans, n, &pb, &len), HALO_OK);
        halo_arena *da = halo_arena_new(0);
        halo_otlp_result r;
        halo_err err = {{0}};
        halo_status st = halo_otlp_decode_pb(pb, len, da, &r, &err);
        free(pb);
        const char *diff = NULL;
        size_t at = 0;
        if (st == HALO_OK && r.n == n && r.rejected == 0)
            for (at = 0; at < n && !diff; at++)
                diff = span_diff(&spans[at], &r.spans[at]);
        if (st != HALO_OK || r.n != n || r.rejected || diff) {
            fprintf(stderr,
                    "  round %d: status %d (%s), %zu of %zu spans, "
                    "span %zu differs in %s\n",
                    i, st, err.msg, r.n, n, at ? at - 1 : 0, diff ? diff : "-");
            halo_arena_free(da);
            halo_arena_free(a);
            CHECK(0);
        }
        halo_arena_free(da);
        if (i % 100 == 99) {
            halo_arena_free(a);
            a = g.a = halo_arena_new(0);
        }
    }
    halo_arena_free(a);
}

/* --- fixed bytes ---------------------------------------------------------- */

static bool encodes_to(const halo_span *spans, size_t n, const uint8_t *want,
                       size_t want_len)
{
    halo_buf b = HALO_BUF_INIT;
    halo_status st = enc_direct(spans, n, &b);
    bool ok = st == HALO_OK && b.len == want_len &&
              memcmp(b.data, want, want_len) == 0;
    if (!ok) {
        fprintf(stderr, "  status %d, got %zu bytes:", st, b.len);
        for (size_t i = 0; i < b.len; i++)
            fprintf(stderr, " %02x", (uint8_t)b.data[i]);
        fprintf(stderr, "\n");
    }
    halo_buf_free(&b);
    halo_status st2;
    return ok && same_bytes(spans, n, &st2);
}

/* A root span with the shared empty resource and scope, only ids, a
 * negative kind, status code 2 and flags: flags (field 16) comes last, the
 * enum takes 10 bytes, empty strings and zero times are left out. */
TEST(pb_fixed_bytes_minimal_span)
{
    halo_span s;
    memset(&s, 0, sizeof s);
    memset(s.trace_id, 0x11, 16);
    memset(s.span_id, 0x22, 8);
    s.trace_state = "";
    s.name = "";
    s.status_message = "";
    s.kind = -1;
    s.status_code = 2;
    s.flags = 0x301;
    s.resource = &otlp_empty_resource;
    s.scope = &otlp_empty_scope;
    static const uint8_t want[] = {
        0x0a, 0x35, /* resource_spans, 53 bytes */
        0x12, 0x33, /* scope_spans, 51 */
        0x12, 0x31, /* spans, 49 */
        0x0a, 0x10, /* trace_id */
        0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
        0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x12, 0x08, /* span_id */
        0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x30, /* kind -1 */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x01, 0x7a, 0x02, 0x18, 0x02,       /* status {code 2} */
        0x85, 0x01, 0x01, 0x03, 0x00, 0x00, /* flags, fixed32 */
    };
    CHECK(encodes_to(&s, 1, want, sizeof want));
}

/* Every AnyValue kind, empty where it can be: each is still written (the
 * oneof member is set), and KeyValue.value is written even when empty. A
 * resource with no content that is not the shared empty one is written as
 * an empty message; the scope's name goes in, its empty version does not. */
TEST(pb_fixed_bytes_empty_values)
{
    static halo_kv inner[1];
    static halo_kv kvs[8];
    inner[0] = (halo_kv){.key = "", .value = {.type = HALO_VAL_EMPTY}};
    kvs[0] = S("s", "");
    kvs[1] = B("b", false);
    kvs[2] = I("i", 0);
    kvs[3] = D("d", 0.0);
    kvs[4] = (halo_kv){.key = "y", .value = v_bytes("", 0)};
    kvs[5] = (halo_kv){.key = "a", .value = v_arr(NULL, 0)};
    kvs[6] = (halo_kv){.key = "k", .value = v_kvl(inner, 1)};
    kvs[7] = (halo_kv){.key = "e", .value = {.type = HALO_VAL_EMPTY}};
    halo_resource res = {{NULL, 0}, 0, ""};
    halo_scope sc = {"n", "", {NULL, 0}, 0, ""};
    halo_span s;
    memset(&s, 0, sizeof s);
    memset(s.trace_id, 1, 16);
    memset(s.span_id, 2, 8);
    s.attrs = (halo_attrs){kvs, 8};
    s.resource = &res;
    s.scope = &sc;
    static const uint8_t want[] = {
        0x0a, 0x78,                  /* resource_spans, 120 */
        0x0a, 0x00,                  /* resource {} */
        0x12, 0x74,                  /* scope_spans, 116 */
        0x0a, 0x03, 0x0a, 0x01, 'n', /* scope {name "n"} */
        0x12, 0x6d,                  /* spans, 109 */
        0x0a, 0x10, 1,    1,    1,   1,    1,    1,    1,    1,
        1,    1,    1,    1,    1,   1,    1,    1,             /* */
        0x12, 0x08, 2,    2,    2,   2,    2,    2,    2,    2, /* */
        0x4a, 0x07, 0x0a, 0x01, 's', 0x12, 0x02, 0x0a, 0x00,    /* "" */
        0x4a, 0x07, 0x0a, 0x01, 'b', 0x12, 0x02, 0x10, 0x00,    /* false */
        0x4a, 0x07, 0x0a, 0x01, 'i', 0x12, 0x02, 0x18, 0x00,    /* 0 */
        0x4a, 0x0e, 0x0a, 0x01, 'd', 0x12, 0x09, 0x21, 0,    0,
        0,    0,    0,    0,    0,   0,                      /* 0.0 */
        0x4a, 0x07, 0x0a, 0x01, 'y', 0x12, 0x02, 0x3a, 0x00, /* bytes */
        0x4a, 0x07, 0x0a, 0x01, 'a', 0x12, 0x02, 0x2a, 0x00, /* [] */
        0x4a, 0x0b, 0x0a, 0x01, 'k', 0x12, 0x06, 0x32, 0x04, /* kvlist */
        0x0a, 0x02, 0x12, 0x00,                              /* {"": empty} */
        0x4a, 0x05, 0x0a, 0x01, 'e', 0x12, 0x00,             /* empty value */
    };
    CHECK(encodes_to(&s, 1, want, sizeof want));
}

/* Spans under resources equal in content share one resourceSpans entry;
 * a different scope opens a new scopeSpans entry. */
TEST(pb_grouping_by_pointer_and_content)
{
    halo_resource r1 = {{NULL, 0}, 0, "u"}, r2 = {{NULL, 0}, 0, "u"};
    halo_scope s1 = {"a", "", {NULL, 0}, 0, ""},
               s2 = {"b", "", {NULL, 0}, 0, ""};
    halo_span sp[3];
    memset(sp, 0, sizeof sp);
    for (int i = 0; i < 3; i++) {
        memset(sp[i].trace_id, 1, 16);
        memset(sp[i].span_id, i + 1, 8);
        sp[i].name = "";
    }
    sp[0].resource = &r1, sp[0].scope = &s1;
    sp[1].resource = &r2, sp[1].scope = &s1;
    sp[2].resource = &r2, sp[2].scope = &s2;
#define SPAN_BYTES(k)                                                          \
    0x12, 0x1c, 0x0a, 0x10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,    \
        0x12, 0x08, k, k, k, k, k, k, k, k
    static const uint8_t want[] = {
        0x0a,          0x6d, /* one resource_spans, 109 */
        0x0a,          0x00, /* resource {} */
        0x12,          0x41, /* scope_spans "a", 65 */
        0x0a,          0x03,          0x0a, 0x01, 'a', /* scope */
        SPAN_BYTES(1), SPAN_BYTES(2),                  /* two spans */
        0x12,          0x23,                           /* scope_spans "b", 35 */
        0x0a,          0x03,          0x0a, 0x01, 'b', /* scope */
        SPAN_BYTES(3),                                 /* */
        0x1a,          0x01,          'u',             /* schema_url */
    };
#undef SPAN_BYTES
    CHECK(encodes_to(sp, 3, want, sizeof want));
}

/* --- limits and edge cases ------------------------------------------------ */

static halo_value *nested(halo_arena *a, int levels)
{
    halo_value *v = halo_arena_calloc(a, 1, sizeof *v);
    v->type = HALO_VAL_INT;
    v->u.i = 7;
    for (int i = 1; i < levels; i++) {
        halo_value *outer = halo_arena_calloc(a, 1, sizeof *outer);
        if (i % 2) {
            outer->type = HALO_VAL_ARRAY;
            outer->u.arr.items = v;
            outer->u.arr.n = 1;
        } else {
            halo_kv *kv = halo_arena_calloc(a, 1, sizeof *kv);
            kv->key = "k";
            kv->value = *v;
            outer->type = HALO_VAL_KVLIST;
            outer->u.kv.items = kv;
            outer->u.kv.n = 1;
        }
        v = outer;
    }
    return v;
}

TEST(pb_nesting_limit)
{
    halo_arena *a = halo_arena_new(0);
    halo_kv kv = {.key = "deep"};
    halo_span s;
    memset(&s, 0, sizeof s);
    memset(s.trace_id, 1, 16);
    memset(s.span_id, 1, 8);
    s.attrs = (halo_attrs){&kv, 1};
    halo_status st;
    kv.value = *nested(a, 32); /* the deepest allowed */
    CHECK(same_bytes(&s, 1, &st));
    CHECK_INT(st, HALO_OK);
    kv.value = *nested(a, 33); /* one too deep: refused, nothing written */
    CHECK(same_bytes(&s, 1, &st));
    CHECK_INT(st, HALO_EINVAL);
    halo_buf b = HALO_BUF_INIT;
    halo_buf_puts(&b, "keep");
    CHECK_INT(halo_otlp_encode_pb_refs((const halo_span *const[]){&s}, 1, &b),
              HALO_EINVAL);
    CHECK_INT(b.len, 4);
    halo_buf_free(&b);
    uint8_t *pb = (uint8_t *)"";
    size_t len = 1;
    CHECK_INT(halo_otlp_encode_pb(&s, 1, &pb, &len), HALO_EINVAL);
    CHECK(pb == NULL && len == 0);
    halo_arena_free(a);
}

TEST(pb_empty_request_and_oom_buffer)
{
    uint8_t *pb = NULL;
    size_t len = 1;
    CHECK_INT(halo_otlp_encode_pb(NULL, 0, &pb, &len), HALO_OK);
    CHECK(pb != NULL);
    CHECK_INT(len, 0);
    free(pb);
    halo_buf b = HALO_BUF_INIT;
    CHECK_INT(halo_otlp_encode_pb_refs(NULL, 0, &b), HALO_OK);
    CHECK_INT(b.len, 0);
    b.oom = true; /* a buffer that already ran out of memory */
    halo_span s;
    memset(&s, 0, sizeof s);
    memset(s.trace_id, 1, 16);
    memset(s.span_id, 1, 8);
    const halo_span *ref = &s;
    CHECK_INT(halo_otlp_encode_pb_refs(&ref, 1, &b), HALO_ENOMEM);
    CHECK_INT(otlp_encode_pb_reference(&ref, 1, &b), HALO_ENOMEM);
    halo_buf_free(&b);
}

/* --- speed ---------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 100 spans of agent runs the way bench/lg_pool.c makes them: ten traces
 * of an AGENT root, a CHAIN and alternating LLM / TOOL calls, 8-13
 * attributes each (model, token counts, a few hundred bytes of prompt,
 * completion, JSON arguments and results), one resource and scope. */
static halo_span *realistic_spans(halo_arena *a, size_t n)
{
    static const char prompt[] =
        "You are a support agent. The customer asks about the refund policy "
        "for order 1234 placed three weeks ago; look up the order, check the "
        "policy and answer briefly and politely, citing the policy section.";
    static const char completion[] =
        "Refunds are accepted within 30 days of delivery (policy 4.2). Your "
        "order 1234 was delivered 19 days ago, so it qualifies; I have opened "
        "refund request R-5521 and you will get an email confirmation.";
    static const char args[] = "{\"order_id\":\"1234\",\"fields\":[\"status\","
                               "\"delivered_at\",\"items\",\"total\"]}";
    static const char result[] =
        "{\"order_id\":\"1234\",\"status\":\"delivered\",\"delivered_at\":"
        "\"2024-05-02T10:11:12Z\",\"items\":[{\"sku\":\"A-1\",\"qty\":2},{"
        "\"sku\":\"B-7\",\"qty\":1}],\"total\":129.5}";
    halo_kv *rattrs = halo_arena_alloc(a, 4 * sizeof *rattrs);
    rattrs[0] = S("service.name", "support-agent");
    rattrs[1] = S("service.version", "1.4.2");
    rattrs[2] = S("telemetry.sdk.language", "python");
    rattrs[3] = S("deployment.environment", "production");
    halo_resource *res = halo_arena_calloc(a, 1, sizeof *res);
    *res = (halo_resource){{rattrs, 4}, 0, ""};
    halo_scope *sc = halo_arena_calloc(a, 1, sizeof *sc);
    *sc = (halo_scope){
        "openinference.instrumentation.openai", "0.1.12", {NULL, 0}, 0, ""};
    halo_span *spans = halo_arena_calloc(a, n, sizeof *spans);
    for (size_t i = 0; i < n; i++) {
        halo_span *s = &spans[i];
        size_t k = i % 10;
        memset(s->trace_id, (int)(i / 10 + 1), 16);
        s->trace_id[15] = 0x42;
        memset(s->span_id, (int)(k + 1), 8);
        s->span_id[0] = (uint8_t)i;
        if (k)
            memset(s->parent_span_id, k == 1 ? 1 : 2, 8);
        s->trace_state = "";
        s->flags = 0x100;
        s->kind = 1;
        s->start_ns = 1714644672000000000ull + i * 1000003;
        s->end_ns = s->start_ns + 850000000;
        s->status_message = "";
        s->resource = res;
        s->scope = sc;
        halo_kv *kv = halo_arena_alloc(a, 13 * sizeof *kv);
        size_t m = 0;
        if (k == 0) {
            s->name = "support_agent.run";
            kv[m++] = S("openinference.span.kind", "AGENT");
            kv[m++] = S("agent.name", "support-agent");
            kv[m++] = S("session.id", "3f2a9c1e-5b7d-4c1a-9e0f-1a2b3c4d5e6f");
            kv[m++] = S("user.id", "user-8812");
            kv[m++] = S("input.value", prompt);
            kv[m++] = S("output.value", completion);
            kv[m++] = S("input.mime_type", "text/plain");
            kv[m++] = S("output.mime_type", "text/plain");
        } else if (k == 1) {
            s->name = "plan_and_act";
            kv[m++] = S("openinference.span.kind", "CHAIN");
            kv[m++] = S("session.id", "3f2a9c1e-5b7d-4c1a-9e0f-1a2b3c4d5e6f");
            kv[m++] = S("input.value", prompt);
            kv[m++] = S("output.value", completion);
            kv[m++] = I("chain.steps", 8);
            kv[m++] = S("metadata", "{\"tier\":\"gold\",\"region\":\"eu\"}");
            kv[m++] = B("streaming", false);
            kv[m++] = S("user.id", "user-8812");
        } else if (k % 2 == 0) {
            s->name = "ChatCompletion";
            s->kind = 3;
            kv[m++] = S("openinference.span.kind", "LLM");
            kv[m++] = S("llm.model_name", "gpt-4o-mini-2024-07-18");
            kv[m++] = S("gen_ai.system", "openai");
            kv[m++] = S("gen_ai.request.model", "gpt-4o-mini");
            kv[m++] = I("llm.token_count.prompt", 1243);
            kv[m++] = I("llm.token_count.completion", 187);
            kv[m++] = I("llm.token_count.total", 1430);
            kv[m++] = D("llm.invocation_parameters.temperature", 0.2);
            kv[m++] = D("llm.cost.total", 0.000298);
            kv[m++] = S("input.value", prompt);
            kv[m++] = S("output.value", completion);
            kv[m++] = S("session.id", "3f2a9c1e-5b7d-4c1a-9e0f-1a2b3c4d5e6f");
            kv[m++] = S("llm.provider", "openai");
        } else {
            s->name = "tool.lookup_order";
            kv[m++] = S("openinference.span.kind", "TOOL");
            kv[m++] = S("tool.name", "lookup_order");
            kv[m++] = S("tool.description", "Fetch an order by its id");
            kv[m++] = S("tool.parameters", args);
            kv[m++] = S("input.value", args);
            kv[m++] = S("output.value", result);
            kv[m++] = S("session.id", "3f2a9c1e-5b7d-4c1a-9e0f-1a2b3c4d5e6f");
            kv[m++] = I("tool.latency_ms", 42);
            kv[m++] = B("tool.cached", true);
            if (k == 9) { /* a failed call with an exception event */
                halo_kv *ek = halo_arena_alloc(a, 2 * sizeof *ek);
                ek[0] = S("exception.type", "TimeoutError");
                ek[1] = S("exception.message", "order service timed out");
                s->events = halo_arena_calloc(a, 1, sizeof *s->events);
                s->events[0] =
                    (halo_event){s->end_ns - 1000, "exception", {ek, 2}, 0};
                s->n_events = 1;
                s->status_code = 2;
                s->status_message = "order service timed out";
            }
        }
        s->attrs = (halo_attrs){kv, m};
    }
    return spans;
}

typedef halo_status (*pb_encoder)(const halo_span *const *, size_t, halo_buf *);

static double time_encoder(pb_encoder enc, const halo_span *const *refs,
                           size_t n, int rounds, size_t *bytes)
{
    halo_buf b = HALO_BUF_INIT;
    double best = 1e9;
    for (int rep = 0; rep < 3; rep++) { /* best of three */
        double t0 = now_s();
        for (int k = 0; k < rounds; k++) {
            halo_buf_reset(&b);
            if (enc(refs, n, &b) != HALO_OK)
                return -1;
        }
        double dt = (now_s() - t0) / rounds / (double)n * 1e6;
        best = dt < best ? dt : best;
    }
    *bytes = b.len;
    halo_buf_free(&b);
    return best;
}

TEST(pb_encode_speed)
{
    enum { N = 100 };
    halo_arena *a = halo_arena_new(0);
    halo_span *spans = realistic_spans(a, N);
    const halo_span **refs = otlp_span_refs(spans, N);
    halo_status st;
    CHECK(same_bytes(spans, N, &st));
    size_t b1 = 0, b2 = 0, b3 = 0;
    double old_us = time_encoder(otlp_encode_pb_reference, refs, N, 300, &b1);
    double new_us = time_encoder(otlp_encode_pbenc, refs, N, 2000, &b2);
    double json_us =
        time_encoder(halo_otlp_encode_json_refs, refs, N, 300, &b3);
    free((void *)refs);
    halo_arena_free(a);
    CHECK(old_us > 0 && new_us > 0 && json_us > 0);
    CHECK_INT(b1, b2);
    printf("  %d-span request, %zu bytes protobuf (%zu JSON): protobuf-c "
           "%.3f us/span, direct %.3f us/span (%.1fx); JSON %.3f us/span\n",
           N, b2, b3, old_us, new_us, old_us / new_us, json_us);
}
