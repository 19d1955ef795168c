/*
 * test_otlp_limits.c -- the OTLP receiver's per-request limits
 * (receivers/otlp/otlp_limits.h) and the decoders' nesting bound.
 *
 * The pure part first: otlp_limits_check_spans, otlp_limits_apply and its
 * helpers over spans built in an arena, each limit below, at and above its
 * boundary (UTF-8 cutting of 2-, 3- and 4-byte characters, bytes values,
 * values nested in arrays and kvlists, events, links, a shared resource,
 * the counts returned, the fast path that neither visits values nor
 * allocates). Then the decoders on deeply nested AnyValue (protobuf bytes
 * written by hand, OTLP/JSON text): INVALID_ARGUMENT naming the attribute.
 * Last, otlp_dispatch in front of a fake next component: a request over
 * max_spans_per_request is answered RESOURCE_EXHAUSTED with nothing
 * emitted, cut values reach downstream, the per-receiver counters move and
 * the log says it once per interval without the value.
 */
#include "harness.h"

#include "core/arena.h"
#include "core/batch.h"
#include "core/buf.h"
#include "core/component.h"
#include "core/metrics.h"
#include "core/span.h"
#include "receivers/otlp/otlp_codec.h"
#include "receivers/otlp/otlp_internal.h"
#include "receivers/otlp/otlp_limits.h"

#include <stdint.h>
#include <stdlib.h>

/* ---- helpers ----------------------------------------------------------- */

static otlp_limits_cfg limits(int64_t spans, int64_t attrs, int64_t len)
{
    otlp_limits_cfg c = {spans, attrs, len};
    return c;
}

static halo_value str_value(halo_arena *a, const char *s, size_t len)
{
    halo_value v = {.type = HALO_VAL_STRING};
    v.u.s.ptr = halo_arena_strndup(a, s, len);
    v.u.s.len = len;
    return v;
}

/* A string of n bytes: `unit` repeated (the last copy may be partial). */
static char *repeat(const char *unit, size_t n)
{
    char *s = malloc(n + 1);
    size_t u = strlen(unit);
    for (size_t i = 0; i < n; i++)
        s[i] = unit[i % u];
    s[n] = '\0';
    return s;
}

static halo_attrs make_attrs(halo_arena *a, size_t n, size_t value_len)
{
    halo_attrs at = {halo_arena_calloc(a, n ? n : 1, sizeof(halo_kv)), n};
    char *v = repeat("abcdefghij", value_len);
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%zu", i);
        at.items[i].key = halo_arena_strdup(a, key);
        at.items[i].value = str_value(a, v, value_len);
    }
    free(v);
    return at;
}

static halo_resource the_resource;
static halo_scope the_scope;

static void init_span(halo_span *s, int i)
{
    memset(s, 0, sizeof *s);
    for (int k = 0; k < 16; k++)
        s->trace_id[k] = (uint8_t)(0xa0 + k);
    for (int k = 0; k < 8; k++)
        s->span_id[k] = (uint8_t)(i * 8 + k + 1);
    s->name = "s";
    s->trace_state = "";
    s->status_message = "";
    s->resource = &the_resource;
    s->scope = &the_scope;
}

/* Valid UTF-8 (structure only). */
static bool utf8_ok(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : c >> 5 == 6 ? 2 : c >> 4 == 14 ? 3 : 4;
        if (c >= 0x80 && (c & 0xc0) == 0x80)
            return false;
        if (i + k > n)
            return false;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xc0) != 0x80)
                return false;
        i += k;
    }
    return true;
}

static bool ends_with(const char *s, size_t n, const char *tail)
{
    size_t t = strlen(tail);
    return n >= t && memcmp(s + n - t, tail, t) == 0;
}

/* ---- max_spans_per_request -------------------------------------------- */

TEST(spans_at_below_above_limit)
{
    otlp_limits_cfg c = limits(100, 0, 0);
    halo_err err = {{0}};
    CHECK_INT(otlp_limits_check_spans(&c, 0, &err), HALO_OK);
    CHECK_INT(otlp_limits_check_spans(&c, 99, &err), HALO_OK);
    CHECK_INT(otlp_limits_check_spans(&c, 100, &err), HALO_OK);
    CHECK_INT(otlp_limits_check_spans(&c, 101, &err), HALO_ETOOBIG);
    CHECK_STR(err.msg,
              "request of 101 spans exceeds max_spans_per_request (100)");
    c.max_spans_per_request = 0; /* none */
    CHECK_INT(otlp_limits_check_spans(&c, 1000000, &err), HALO_OK);
}

/* ---- helpers: UTF-8 prefix and marker --------------------------------- */

TEST(utf8_prefix_never_splits_a_character)
{
    CHECK_INT(otlp_limits_utf8_prefix("abcdef", 6, 10), 6);
    CHECK_INT(otlp_limits_utf8_prefix("abcdef", 6, 6), 6);
    CHECK_INT(otlp_limits_utf8_prefix("abcdef", 6, 3), 3);
    CHECK_INT(otlp_limits_utf8_prefix("abcdef", 6, 0), 0);
    /* "a" then 2-, 3- and 4-byte characters: é € 😀 at offsets 1, 3, 6 */
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
    size_t n = strlen(s); /* 11 */
    size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11};
    for (size_t max = 0; max <= n; max++) {
        size_t got = otlp_limits_utf8_prefix(s, n, max);
        if (got != want[max])
            fprintf(stderr, "  max %zu: got %zu want %zu\n", max, got,
                    want[max]);
        CHECK_INT(got, want[max]);
        CHECK(utf8_ok(s, got));
    }
    /* invalid UTF-8 (continuation bytes only): backs up at most 3 bytes */
    char bad[16];
    memset(bad, 0x80, sizeof bad);
    CHECK_INT(otlp_limits_utf8_prefix(bad, sizeof bad, 10), 7);
}

TEST(marker_text_and_bound)
{
    char m[OTLP_LIMITS_MARKER_MAX + 1];
    size_t n = otlp_limits_marker(m, sizeof m, 123456);
    CHECK_STR(m, "\xe2\x80\xa6[truncated by halo: 123456 bytes]");
    CHECK_INT(n, strlen(m));
    n = otlp_limits_marker(m, sizeof m, SIZE_MAX);
    CHECK_INT(n, OTLP_LIMITS_MARKER_MAX);
    CHECK_INT(strlen(m), OTLP_LIMITS_MARKER_MAX);
}

/* ---- max_attribute_value_length ---------------------------------------- */

TEST(value_length_at_below_above_limit)
{
    halo_arena *a = halo_arena_new(0);
    halo_span s[3];
    size_t lens[3] = {63, 64, 65};
    for (int i = 0; i < 3; i++) {
        init_span(&s[i], i);
        s[i].attrs = make_attrs(a, 1, lens[i]);
    }
    const char *p0 = s[0].attrs.items[0].value.u.s.ptr;
    const char *p1 = s[1].attrs.items[0].value.u.s.ptr;
    otlp_limits_cfg c = limits(0, 0, 64);
    otlp_limits_stats st;
    CHECK_INT(otlp_limits_apply(&c, s, 3, SIZE_MAX, a, &st), HALO_OK);
    CHECK_INT(st.values_truncated, 1);
    CHECK_INT(st.attrs_dropped, 0);
    CHECK_INT(st.spans_touched, 1);
    CHECK_INT(st.first_span, 2);
    /* at and below: the very same bytes */
    CHECK(s[0].attrs.items[0].value.u.s.ptr == p0);
    CHECK_INT(s[0].attrs.items[0].value.u.s.len, 63);
    CHECK(s[1].attrs.items[0].value.u.s.ptr == p1);
    CHECK_INT(s[1].attrs.items[0].value.u.s.len, 64);
    /* above: a prefix, the marker, within the limit, NUL-terminated */
    const halo_value *v = &s[2].attrs.items[0].value;
    const char *marker = "\xe2\x80\xa6[truncated by halo: 65 bytes]";
    size_t ml = strlen(marker);
    CHECK_INT(v->u.s.len, 64);
    CHECK(ends_with(v->u.s.ptr, v->u.s.len, marker));
    char *orig = repeat("abcdefghij", 64 - ml);
    bool same = memcmp(v->u.s.ptr, orig, 64 - ml) == 0;
    free(orig);
    CHECK(same);
    CHECK_INT(strlen(v->u.s.ptr), v->u.s.len);
    CHECK_INT(s[2].dropped_attrs, 0); /* cut, not dropped */
    halo_arena_free(a);
}

TEST(value_cut_at_utf8_boundary_and_idempotent)
{
    halo_arena *a = halo_arena_new(0);
    const char *units[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                           "a\xf0\x9f\x98\x80", "ab\xe2\x82\xac"};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        for (size_t limit = 64; limit < 72; limit++) {
            halo_span s;
            init_span(&s, 0);
            size_t n = 1000 * strlen(units[u]);
            char *text = repeat(units[u], n);
            halo_attrs at = {halo_arena_calloc(a, 1, sizeof(halo_kv)), 1};
            at.items[0].key = "input.value";
            at.items[0].value = str_value(a, text, n);
            free(text);
            s.attrs = at;
            otlp_limits_cfg c = limits(0, 0, (int64_t)limit);
            otlp_limits_stats st;
            CHECK_INT(otlp_limits_apply(&c, &s, 1, SIZE_MAX, a, &st), HALO_OK);
            CHECK_INT(st.values_truncated, 1);
            const halo_value *v = &s.attrs.items[0].value;
            CHECK(v->u.s.len <= limit);
            CHECK(v->u.s.len + 3 >= limit); /* at most 3 bytes lost */
            CHECK(utf8_ok(v->u.s.ptr, v->u.s.len));
            char marker[OTLP_LIMITS_MARKER_MAX + 1];
            otlp_limits_marker(marker, sizeof marker, n);
            CHECK(ends_with(v->u.s.ptr, v->u.s.len, marker));
            /* a second pass finds nothing to do */
            const char *p = v->u.s.ptr;
            CHECK_INT(otlp_limits_apply(&c, &s, 1, SIZE_MAX, a, &st), HALO_OK);
            CHECK_INT(st.values_truncated, 0);
            CHECK_INT(st.spans_touched, 0);
            CHECK(v->u.s.ptr == p);
        }
    }
    halo_arena_free(a);
}

TEST(bytes_values_cut_on_any_byte)
{
    halo_arena *a = halo_arena_new(0);
    halo_span s;
    init_span(&s, 0);
    uint8_t raw[300];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(0x80 + i % 64); /* continuation bytes all along */
    halo_attrs at = {halo_arena_calloc(a, 1, sizeof(halo_kv)), 1};
    at.items[0].key = "blob";
    at.items[0].value.type = HALO_VAL_BYTES;
    at.items[0].value.u.s.ptr = (const char *)raw;
    at.items[0].value.u.s.len = sizeof raw;
    s.attrs = at;
    otlp_limits_cfg c = limits(0, 0, 100);
    otlp_limits_stats st;
    CHECK_INT(otlp_limits_apply(&c, &s, 1, SIZE_MAX, a, &st), HALO_OK);
    CHECK_INT(st.values_truncated, 1);
    const halo_value *v = &s.attrs.items[0].value;
    CHECK_INT(v->type, HALO_VAL_BYTES);
    CHECK_INT(v->u.s.len, 100); /* exactly: no character boundaries */
    const char *marker = "\xe2\x80\xa6[truncated by halo: 300 bytes]";
    CHECK(ends_with(v->u.s.ptr, v->u.s.len, marker));
    CHECK(memcmp(v->u.s.ptr, raw, 100 - strlen(marker)) == 0);
    halo_arena_free(a);
}

TEST(nested_values_cut_at_any_depth)
{
    halo_arena *a = halo_arena_new(0);
    char *big = repeat("0123456789", 500);
    /* attribute "n": [ "short", big, {"k": big, "deeper": [[big]]}, 7 ] */
    halo_value *inner2 = halo_arena_calloc(a, 1, sizeof *inner2);
    *inner2 = str_value(a, big, 500);
    halo_value *inner1 = halo_arena_calloc(a, 1, sizeof *inner1);
    inner1->type = HALO_VAL_ARRAY;
    inner1->u.arr.items = inner2;
    inner1->u.arr.n = 1;
    halo_kv *kvs = halo_arena_calloc(a, 2, sizeof *kvs);
    kvs[0].key = "k";
    kvs[0].value = str_value(a, big, 500);
    kvs[1].key = "deeper";
    kvs[1].value.type = HALO_VAL_ARRAY;
    kvs[1].value.u.arr.items = inner1;
    kvs[1].value.u.arr.n = 1;
    halo_value *items = halo_arena_calloc(a, 4, sizeof *items);
    items[0] = str_value(a, "short", 5);
    items[1] = str_value(a, big, 500);
    items[2].type = HALO_VAL_KVLIST;
    items[2].u.kv.items = kvs;
    items[2].u.kv.n = 2;
    items[3].type = HALO_VAL_INT;
    items[3].u.i = 7;
    free(big);
    halo_span s;
    init_span(&s, 0);
    s.attrs.items = halo_arena_calloc(a, 1, sizeof(halo_kv));
    s.attrs.n = 1;
    s.attrs.items[0].key = "n";
    s.attrs.items[0].value.type = HALO_VAL_ARRAY;
    s.attrs.items[0].value.u.arr.items = items;
    s.attrs.items[0].value.u.arr.n = 4;
    otlp_limits_cfg c = limits(0, 1, 64); /* the kvlist's 2 entries stay */
    otlp_limits_stats st;
    CHECK_INT(otlp_limits_apply(&c, &s, 1, SIZE_MAX, a, &st), HALO_OK);
    CHECK_INT(st.values_truncated, 3);
    CHECK_INT(st.attrs_dropped, 0);
    CHECK_STR(items[0].u.s.ptr, "short");
    const char *marker = "\xe2\x80\xa6[truncated by halo: 500 bytes]";
    CHECK(items[1].u.s.len <= 64 &&
          ends_with(items[1].u.s.ptr, items[1].u.s.len, marker));
    CHECK_INT(items[2].u.kv.n, 2);
    CHECK(kvs[0].value.u.s.len <= 64 &&
          ends_with(kvs[0].value.u.s.ptr, kvs[0].value.u.s.len, marker));
    CHECK(inner2->u.s.len <= 64 &&
          ends_with(inner2->u.s.ptr, inner2->u.s.len, marker));
    CHECK_INT(items[3].u.i, 7);
    halo_arena_free(a);
}

/* ---- max_attributes_per_span ------------------------------------------- */

TEST(attribute_count_at_below_above_limit)
{
    halo_arena *a = halo_arena_new(0);
    halo_span s[3];
    size_t counts[3] = {9, 10, 11};
    for (int i = 0; i < 3; i++) {
        init_span(&s[i], i);
        s[i].attrs = make_attrs(a, counts[i], 4);
    }
    s[2].dropped_attrs = 5; /* the client dropped some already */
    otlp_limits_cfg c = limits(0, 10, 1 << 20);
    otlp_limits_stats st;
    CHECK_INT(otlp_limits_apply(&c, s, 3, SIZE_MAX, a, &st), HALO_OK);
    CHECK_INT(st.attrs_dropped, 1);
    CHECK_INT(st.values_truncated, 0);
    CHECK_INT(st.spans_touched, 1);
    CHECK_INT(st.first_span, 2);
    CHECK_INT(s[0].attrs.n, 9);
    CHECK_INT(s[0].dropped_attrs, 0);
    CHECK_INT(s[1].attrs.n, 10);
    CHECK_INT(s[1].dropped_attrs, 0);
    CHECK_INT(s[2].attrs.n, 10);
    CHECK_INT(s[2].dropped_attrs, 6);
    /* the first ones are kept, in order */
    for (size_t i = 0; i < 10; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%zu", i);
        CHECK_STR(s[2].attrs.items[i].key, key);
    }
    halo_arena_free(a);
}

TEST(dropped_count_saturates)
{
    halo_arena *a = halo_arena_new(0);
    halo_span s;
    init_span(&s, 0);
    s.attrs = make_attrs(a, 20, 4);
    s.dropped_attrs = UINT32_MAX - 3;
    otlp_limits_cfg c = limits(0, 10, 0);
    otlp_limits_stats st;
    CHECK_INT(otlp_limits_apply(&c, &s, 1, SIZE_MAX, a, &st), HALO_OK);
    CHECK_INT(st.attrs_dropped, 10);
    CHECK(s.dropped_attrs == UINT32_MAX);
    halo_arena_free(a);
}

TEST(events_and_links_limited_each)
{
    halo_arena *a = halo_arena_new(0);
    halo_span s;
    init_span(&s, 0);
    s.attrs = make_attrs(a, 3, 4);
    halo_event ev[2];
    memset(ev, 0, sizeof ev);
    ev[0].name = "e0";
    ev[0].attrs = make_attrs(a, 5, 4); /* 2 dropped */
    ev[1].name = "e1";
    ev[1].attrs = make_attrs(a, 2, 200); /* 2 values cut */
    halo_link ln[1];
    memset(ln, 0, sizeof ln);
    ln[0].trace_state = "";
    ln[0].attrs = make_attrs(a, 4, 100); /* 1 dropped, 3 values cut */
    ln[0].dropped_attrs = 1;
    s.events = ev;
    s.n_events = 2;
    s.links = ln;
    s.n_links = 1;
    otlp_limits_cfg c = limits(0, 3, 64);
    otlp_limits_stats st;
    CHECK_INT(otlp_limits_apply(&c, &s, 1, SIZE_MAX, a, &st), HALO_OK);
    CHECK_INT(st.attrs_dropped, 3);
    CHECK_INT(st.values_truncated, 5);
    CHECK_INT(st.spans_touched, 1);
    CHECK_INT(s.attrs.n, 3);
    CHECK_INT(s.dropped_attrs, 0);
    CHECK_INT(ev[0].attrs.n, 3);
    CHECK_INT(ev[0].dropped_attrs, 2);
    CHECK_INT(ev[1].attrs.n, 2);
    CHECK_INT(ev[1].dropped_attrs, 0);
    CHECK(ev[1].attrs.items[1].value.u.s.len <= 64);
    CHECK_INT(ln[0].attrs.n, 3);
    CHECK_INT(ln[0].dropped_attrs, 2);
    for (size_t i = 0; i < 3; i++)
        CHECK(ends_with(ln[0].attrs.items[i].value.u.s.ptr,
                        ln[0].attrs.items[i].value.u.s.len,
                        "[truncated by halo: 100 bytes]"));
    halo_arena_free(a);
}

TEST(shared_resource_and_scope_limited_once)
{
    halo_arena *a = halo_arena_new(0);
    memset(&the_resource, 0, sizeof the_resource);
    memset(&the_scope, 0, sizeof the_scope);
    the_resource.attrs = make_attrs(a, 8, 300);
    the_resource.schema_url = "";
    the_scope.attrs = make_attrs(a, 6, 4);
    the_scope.name = the_scope.version = the_scope.schema_url = "";
    halo_span s[3];
    for (int i = 0; i < 3; i++)
        init_span(&s[i], i);
    otlp_limits_cfg c = limits(0, 5, 100);
    otlp_limits_stats st;
    CHECK_INT(otlp_limits_apply(&c, s, 3, SIZE_MAX, a, &st), HALO_OK);
    CHECK_INT(st.attrs_dropped, 3 + 1); /* once, not per span */
    CHECK_INT(st.values_truncated, 5);  /* the 5 kept resource values */
    CHECK_INT(st.spans_touched, 1);     /* found through the first span */
    CHECK_INT(the_resource.attrs.n, 5);
    CHECK_INT(the_resource.dropped_attrs, 3);
    CHECK_INT(the_scope.attrs.n, 5);
    CHECK_INT(the_scope.dropped_attrs, 1);
    for (size_t i = 0; i < 5; i++)
        CHECK(the_resource.attrs.items[i].value.u.s.len <= 100);
    /* spans under it again (as in another request): nothing left to do */
    CHECK_INT(otlp_limits_apply(&c, s, 3, SIZE_MAX, a, &st), HALO_OK);
    CHECK_INT(st.attrs_dropped + st.values_truncated, 0);
    CHECK_INT(the_resource.dropped_attrs, 3);
    memset(&the_resource, 0, sizeof the_resource);
    memset(&the_scope, 0, sizeof the_scope);
    halo_arena_free(a);
}

/* ---- the fast path ----------------------------------------------------- */

TEST(fast_path_no_visit_no_allocation)
{
    halo_arena *a = halo_arena_new(0);
    halo_span s[50];
    for (int i = 0; i < 50; i++) {
        init_span(&s[i], i);
        s[i].attrs = make_attrs(a, 10, 100);
    }
    size_t reserved = halo_arena_reserved(a);
    /* values within the limit, counts within the limit: nothing changes,
     * nothing is allocated */
    otlp_limits_cfg c = limits(100, 10, 100);
    otlp_limits_stats st;
    CHECK_INT(otlp_limits_apply(&c, s, 50, SIZE_MAX, a, &st), HALO_OK);
    CHECK_INT(st.attrs_dropped + st.values_truncated + st.spans_touched, 0);
    CHECK(st.first_span == SIZE_MAX);
    CHECK_INT(halo_arena_reserved(a), reserved);
    /* a body no longer than the value limit cannot hold a longer value:
     * values are not visited at all (the 100-byte ones stay, although the
     * limit is 64, because the caller promised value_bound = 64) */
    c.max_attribute_value_length = 64;
    CHECK_INT(otlp_limits_apply(&c, s, 50, 64, a, &st), HALO_OK);
    CHECK_INT(st.values_truncated, 0);
    CHECK_INT(s[0].attrs.items[0].value.u.s.len, 100);
    CHECK_INT(halo_arena_reserved(a), reserved);
    /* the same with value_bound above the limit: they are cut */
    CHECK_INT(otlp_limits_apply(&c, s, 50, 65, a, &st), HALO_OK);
    CHECK_INT(st.values_truncated, 500);
    CHECK_INT(st.spans_touched, 50);
    halo_arena_free(a);
}

/* ---- deeply nested AnyValue in the decoders ---------------------------- */

typedef struct pbw {
    uint8_t *b;
    size_t n, cap;
} pbw;

static void pb_put(pbw *w, const void *p, size_t n)
{
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->b = realloc(w->b, w->cap);
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void pb_varint(pbw *w, uint64_t v)
{
    uint8_t t[10];
    size_t k = 0;
    do {
        t[k] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            t[k] |= 0x80;
        k++;
    } while (v);
    pb_put(w, t, k);
}

/* field (length-delimited) holding inner; inner is freed */
static pbw pb_wrap(uint32_t field, pbw inner, const void *prefix, size_t plen)
{
    pbw w = {0};
    if (plen)
        pb_put(&w, prefix, plen);
    pb_varint(&w, (uint64_t)field << 3 | 2);
    pb_varint(&w, inner.n);
    pb_put(&w, inner.b, inner.n);
    free(inner.b);
    return w;
}

/* An Export with one span whose attribute "deep" holds `levels` kvlists
 * nested in each other around a string: levels + 1 AnyValues. */
static pbw pb_deep(int levels)
{
    pbw any = {0};
    pb_varint(&any, 1 << 3 | 2); /* string_value */
    pb_varint(&any, 1);
    pb_put(&any, "x", 1);
    static const uint8_t key_k[] = {0x0a, 0x01, 'k'};
    for (int i = 0; i < levels; i++) {
        pbw kv = pb_wrap(2, any, key_k, sizeof key_k); /* KeyValue */
        pbw kvl = pb_wrap(1, kv, NULL, 0);             /* KeyValueList */
        any = pb_wrap(6, kvl, NULL, 0);                /* AnyValue */
    }
    static const uint8_t key_deep[] = {0x0a, 0x04, 'd', 'e', 'e', 'p'};
    pbw kv = pb_wrap(2, any, key_deep, sizeof key_deep);
    uint8_t ids[2 + 16 + 2 + 8];
    ids[0] = 0x0a;
    ids[1] = 16;
    for (int i = 0; i < 16; i++)
        ids[2 + i] = (uint8_t)(i + 1);
    ids[18] = 0x12;
    ids[19] = 8;
    for (int i = 0; i < 8; i++)
        ids[20 + i] = (uint8_t)(i + 1);
    pbw span = pb_wrap(9, kv, ids, sizeof ids); /* Span.attributes */
    pbw ss = pb_wrap(2, span, NULL, 0);         /* ScopeSpans.spans */
    pbw rs = pb_wrap(2, ss, NULL, 0);           /* ResourceSpans.scope_spans */
    return pb_wrap(1, rs, NULL, 0);             /* request.resource_spans */
}

static char *json_deep(int levels)
{
    halo_buf b = HALO_BUF_INIT;
    halo_buf_puts(&b, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{"
                      "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
                      "\"spanId\":\"0102030405060708\",\"name\":\"d\","
                      "\"attributes\":[{\"key\":\"deep\",\"value\":");
    for (int i = 0; i < levels; i++)
        halo_buf_puts(&b, "{\"kvlistValue\":{\"values\":[{\"key\":\"k\","
                          "\"value\":");
    halo_buf_puts(&b, "{\"stringValue\":\"x\"}");
    for (int i = 0; i < levels; i++)
        halo_buf_puts(&b, "}]}}");
    halo_buf_puts(&b, "}]}]}]}]}");
    return halo_buf_steal(&b);
}

TEST(deep_values_refused_naming_the_attribute)
{
    const char *path = "resourceSpans[0].scopeSpans[0].spans[0]."
                       "attributes[0].value";
    for (int levels = 30; levels <= 33; levels++) {
        /* 31 kvlists = 32 AnyValues: the deepest accepted */
        bool ok = levels <= 31;
        halo_arena *a = halo_arena_new(0);
        halo_otlp_result res;
        halo_err err = {{0}};
        pbw pb = pb_deep(levels);
        halo_status st = halo_otlp_decode_pb(pb.b, pb.n, a, &res, &err);
        free(pb.b);
        CHECK_INT(st, ok ? HALO_OK : HALO_EINVAL);
        if (ok) {
            CHECK_INT(res.n, 1);
        } else {
            CHECK_CONTAINS(err.msg, path);
            CHECK_CONTAINS(err.msg, "nested deeper than 32 levels");
        }
        halo_arena_free(a);
        a = halo_arena_new(0);
        char *js = json_deep(levels);
        memset(&err, 0, sizeof err);
        st = halo_otlp_decode_json(js, strlen(js), a, &res, &err);
        free(js);
        CHECK_INT(st, ok ? HALO_OK : HALO_EINVAL);
        if (!ok) {
            CHECK_CONTAINS(err.msg, path);
            CHECK_CONTAINS(err.msg, "nested deeper than 32 levels");
        }
        halo_arena_free(a);
    }
}

TEST(very_deep_values_refused)
{
    /* hundreds of levels: past jansson's own bound (2048 JSON levels) for
     * JSON; the protobuf scan stops at level 33 whatever follows */
    for (int levels = 200; levels <= 1000; levels += 800) {
        halo_arena *a = halo_arena_new(0);
        halo_otlp_result res;
        halo_err err = {{0}};
        pbw pb = pb_deep(levels);
        CHECK_INT(halo_otlp_decode_pb(pb.b, pb.n, a, &res, &err), HALO_EINVAL);
        free(pb.b);
        CHECK_CONTAINS(err.msg, "nested deeper than 32 levels");
        halo_arena_free(a);
        a = halo_arena_new(0);
        char *js = json_deep(levels);
        memset(&err, 0, sizeof err);
        CHECK_INT(halo_otlp_decode_json(js, strlen(js), a, &res, &err),
                  HALO_EINVAL);
        free(js);
        CHECK(strstr(err.msg, "nested deeper than 32 levels") ||
              strstr(err.msg, "maximum parsing depth"));
        halo_arena_free(a);
    }
}

/* ---- otlp_dispatch: the receiver's request path ----------------------- */

static struct {
    int batches;
    size_t spans;
    char value[256]; /* first attribute value of the first span */
    size_t value_len;
    size_t n_attrs;
    uint32_t dropped;
} got;

static halo_status fake_consume(halo_component *self, halo_batch *b)
{
    (void)self;
    got.batches++;
    got.spans += b->n_spans;
    halo_span *s = b->head && b->head->n ? &b->head->spans[0] : NULL;
    if (s && s->attrs.n) {
        const halo_value *v = &s->attrs.items[0].value;
        got.value_len = v->u.s.len;
        snprintf(got.value, sizeof got.value, "%.*s", (int)v->u.s.len,
                 v->u.s.ptr);
        got.n_attrs = s->attrs.n;
        got.dropped = s->dropped_attrs;
    }
    halo_batch_done(b, HALO_OK, "");
    return HALO_OK;
}

static const halo_component_def fake_def = {
    .kind = HALO_EXPORTER, .type = "fake", .consume = fake_consume};

typedef struct answer_rec {
    int calls;
    halo_status st;
    char msg[512];
} answer_rec;

static void record_answer(void *ud, halo_status st, const char *msg)
{
    answer_rec *r = ud;
    r->calls++;
    r->st = st;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
}

typedef struct drx {
    halo_component c, next;
    halo_component *nexts[1];
    otlp_cfg cfg;
    otlp_ctx ctx; /* what the request path keeps per receiver */
} drx;

static void drx_init(drx *d, const char *id, otlp_limits_cfg l)
{
    memset(d, 0, sizeof *d);
    d->next.def = &fake_def;
    d->next.id = (char *)"fake";
    d->next.log_prefix = (char *)"exporter:fake";
    d->nexts[0] = &d->next;
    d->cfg.limits = l;
    d->c.id = (char *)id;
    d->c.log_prefix = (char *)"receiver:otlp/limits-test";
    d->c.cfg = &d->cfg;
    d->c.ctx = &d->ctx;
    otlp_limits_state_init(&d->ctx.limits, id);
    d->c.next = d->nexts;
    d->c.n_next = 1;
    memset(&got, 0, sizeof got);
}

/* A JSON request of n spans whose first attribute holds value. */
static char *json_request(int n, int n_attrs, const char *value)
{
    halo_buf b = HALO_BUF_INIT;
    halo_buf_puts(&b, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[");
    for (int i = 0; i < n; i++) {
        halo_buf_printf(&b,
                        "%s{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
                        "\"spanId\":\"%016x\",\"name\":\"s\",\"attributes\":[",
                        i ? "," : "", i + 1);
        for (int k = 0; k < n_attrs; k++) {
            halo_buf_printf(&b, "%s{\"key\":\"a%d\",\"value\":{", k ? "," : "",
                            k);
            halo_buf_puts(&b, "\"stringValue\":");
            halo_buf_json_str(&b, k ? "v" : value, strlen(k ? "v" : value));
            halo_buf_puts(&b, "}}");
        }
        halo_buf_puts(&b, "]}");
    }
    halo_buf_puts(&b, "]}]}]}");
    return halo_buf_steal(&b);
}

static double metric(const char *name, const char *receiver)
{
    char labels[128];
    snprintf(labels, sizeof labels, "receiver=\"%s\"", receiver);
    return halo_metric_value(halo_counter(name, "", labels));
}

TEST(dispatch_refuses_too_many_spans)
{
    halo_metrics_reset();
    drx d;
    drx_init(&d, "otlp/limits-a", limits(3, 100, 1 << 20));
    otlp_metrics m;
    otlp_metrics_init(&m, "otlp/limits-a", "http");
    const char *refused = "halo_receiver_limit_refused_requests_total";
    CHECK(metric(refused, "otlp/limits-a") == 0); /* registered at 0 */
    halo_test_capture cap;
    CHECK(halo_test_capture_start(&cap, "dispatch_refuse.log"));
    for (int n = 3; n <= 5; n++) {
        otlp_req r;
        memset(&r, 0, sizeof r);
        answer_rec ans = {0};
        char *body = json_request(n, 1, "hello");
        otlp_dispatch(&d.c, &r, (const uint8_t *)body, strlen(body), true,
                      record_answer, &ans);
        free(body);
        CHECK_INT(ans.calls, 1);
        if (n == 3) {
            CHECK_INT(ans.st, HALO_OK);
            CHECK_INT(got.spans, 3);
        } else {
            CHECK_INT(ans.st, HALO_ETOOBIG);
            char want[128];
            snprintf(want, sizeof want,
                     "request of %d spans exceeds max_spans_per_request (3)",
                     n);
            CHECK_STR(ans.msg, want);
            CHECK_INT(r.n_spans, n); /* counted as refused spans */
        }
    }
    char *log = halo_test_capture_end(&cap);
    CHECK_INT(got.batches, 1); /* the refused ones never went downstream */
    CHECK_INT(got.spans, 3);
    CHECK(metric(refused, "otlp/limits-a") == 2);
    CHECK(log != NULL);
    /* logged once: the second refusal is within the interval */
    CHECK_CONTAINS(log, "refused a request of 4 spans: more than "
                        "max_spans_per_request (3)");
    CHECK(strstr(log, "request of 5 spans") == NULL);
    free(log);
    halo_metrics_reset();
}

TEST(dispatch_cuts_and_drops_before_emitting)
{
    halo_metrics_reset();
    drx d;
    drx_init(&d, "otlp/limits-b", limits(100, 4, 64));
    otlp_metrics m;
    otlp_metrics_init(&m, "otlp/limits-b", "grpc");
    const char *secret = "SECRET-VALUE-0123456789-0123456789-0123456789-"
                         "0123456789-0123456789-0123456789";
    halo_test_capture cap;
    CHECK(halo_test_capture_start(&cap, "dispatch_cut.log"));
    otlp_req r;
    memset(&r, 0, sizeof r);
    answer_rec ans = {0};
    char *body = json_request(2, 6, secret);
    otlp_dispatch(&d.c, &r, (const uint8_t *)body, strlen(body), true,
                  record_answer, &ans);
    free(body);
    char *log = halo_test_capture_end(&cap);
    CHECK_INT(ans.calls, 1);
    CHECK_INT(ans.st, HALO_OK);
    CHECK_INT(got.spans, 2);
    CHECK_INT(got.n_attrs, 4);
    CHECK_INT(got.dropped, 2);
    CHECK(got.value_len <= 64);
    char marker[OTLP_LIMITS_MARKER_MAX + 1];
    otlp_limits_marker(marker, sizeof marker, strlen(secret));
    CHECK(ends_with(got.value, got.value_len, marker));
    CHECK(metric("halo_receiver_limit_dropped_attributes_total",
                 "otlp/limits-b") == 4);
    CHECK(metric("halo_receiver_limit_truncated_values_total",
                 "otlp/limits-b") == 2);
    CHECK(log != NULL);
    CHECK_CONTAINS(log, "limits hit by 2 spans (first: trace "
                        "0102030405060708090a0b0c0d0e0f10 span "
                        "0000000000000001): 4 attributes dropped");
    CHECK_CONTAINS(log, "2 values truncated (max_attribute_value_length 64)");
    CHECK(strstr(log, "SECRET") == NULL); /* never the value */
    free(log);
    halo_metrics_reset();
}

TEST(dispatch_within_limits_changes_nothing)
{
    halo_metrics_reset();
    drx d;
    drx_init(&d, "otlp/limits-c", limits(100, 4, 64));
    otlp_req r;
    memset(&r, 0, sizeof r);
    answer_rec ans = {0};
    char *body = json_request(3, 4, "fits");
    otlp_dispatch(&d.c, &r, (const uint8_t *)body, strlen(body), true,
                  record_answer, &ans);
    free(body);
    CHECK_INT(ans.st, HALO_OK);
    CHECK_INT(got.spans, 3);
    CHECK_STR(got.value, "fits");
    CHECK_INT(got.n_attrs, 4);
    CHECK_INT(got.dropped, 0);
    CHECK(metric("halo_receiver_limit_dropped_attributes_total",
                 "otlp/limits-c") == 0);
    CHECK(metric("halo_receiver_limit_truncated_values_total",
                 "otlp/limits-c") == 0);
    halo_metrics_reset();
}
