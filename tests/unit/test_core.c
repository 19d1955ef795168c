/*
 * test_core.c -- acks, batches, buffers, arenas, metrics, the registry.
 */
#include "core/arena.h"
#include "core/base64.h"
#include "core/batch.h"
#include "core/buf.h"
#include "core/component.h"
#include "core/fs.h"
#include "core/json_attrs.h"
#include "core/metrics.h"
#include "fixtures.h"
#include "harness.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A batch of n spans named "s<i>" in its own arena. */
static halo_batch *make_batch(size_t n, halo_ack *ack)
{
    halo_arena *a = halo_arena_new(0);
    halo_span *spans = halo_arena_calloc(a, n, sizeof *spans);
    static halo_resource res;
    static halo_scope scope = {"lib", "1.0", {NULL, 0}, 0, ""};
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%zu", i);
        spans[i].name = halo_arena_strdup(a, name);
        spans[i].trace_id[0] = 1;
        spans[i].span_id[0] = (uint8_t)(i + 1);
        spans[i].resource = &res;
        spans[i].scope = &scope;
        spans[i].trace_state = "";
        spans[i].status_message = "";
    }
    halo_batch *b = halo_batch_new();
    halo_batch_add_chunk(b, a, spans, n);
    if (ack)
        halo_batch_add_ack(b, ack);
    return b;
}

TEST(ack_reports_ok_once_after_last_reference)
{
    halo_test_ack r = HALO_TEST_ACK_INIT;
    halo_ack *ack = halo_ack_new(halo_test_on_ack, &r);
    halo_batch *b = make_batch(3, ack);
    halo_ack_unref(ack); /* the receiver's reference */
    CHECK_INT(r.calls, 0);
    halo_batch_ref(b); /* fan-out to a second exporter */
    halo_batch_done(b, HALO_OK, "");
    CHECK_INT(r.calls, 0);
    halo_batch_done(b, HALO_OK, "");
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.st, HALO_OK);
}

TEST(ack_reports_first_failure)
{
    halo_test_ack r = HALO_TEST_ACK_INIT;
    halo_ack *ack = halo_ack_new(halo_test_on_ack, &r);
    halo_batch *b = make_batch(1, ack);
    halo_ack_unref(ack);
    halo_batch_ref(b);
    halo_batch_done(b, HALO_ERETRY, "queue full");
    halo_batch_done(b, HALO_EIO, "disk gone");
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.st, HALO_ERETRY);
    CHECK_STR(r.msg, "queue full");
}

TEST(merge_moves_chunks_and_acks)
{
    halo_test_ack r1 = HALO_TEST_ACK_INIT, r2 = HALO_TEST_ACK_INIT;
    halo_ack *a1 = halo_ack_new(halo_test_on_ack, &r1);
    halo_ack *a2 = halo_ack_new(halo_test_on_ack, &r2);
    halo_batch *b1 = make_batch(2, a1);
    halo_batch *b2 = make_batch(5, a2);
    halo_ack_unref(a1);
    halo_ack_unref(a2);
    CHECK_INT(halo_batch_merge(b1, b2), HALO_OK);
    CHECK_INT(b1->n_spans, 7);
    CHECK_INT(b1->n_acks, 2);
    size_t seen = 0;
    HALO_BATCH_FOREACH(b1, c, sp)
    {
        (void)sp;
        seen++;
    }
    CHECK_INT(seen, 7);
    halo_batch_done(b1, HALO_OK, "");
    CHECK_INT(r1.calls, 1);
    CHECK_INT(r2.calls, 1);
    CHECK_INT(r1.st, HALO_OK);
}

TEST(clone_is_deep_and_shares_acks)
{
    halo_test_ack r = HALO_TEST_ACK_INIT;
    halo_ack *ack = halo_ack_new(halo_test_on_ack, &r);
    halo_batch *b = make_batch(4, ack);
    halo_ack_unref(ack);
    halo_batch *c = halo_batch_clone(b);
    CHECK(c != NULL);
    CHECK_INT(c->n_spans, 4);
    CHECK(c->head->spans[0].name != b->head->spans[0].name);
    CHECK_STR(c->head->spans[3].name, "s3");
    CHECK_STR(c->head->spans[0].scope->name, "lib");
    /* same resource for all spans of the clone, as in the original */
    CHECK(c->head->spans[0].resource == c->head->spans[3].resource);
    halo_batch_done(b, HALO_OK, "");
    CHECK_INT(r.calls, 0); /* the clone still holds the ack */
    halo_batch_done(c, HALO_ERETRY, "second pipeline refused");
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.st, HALO_ERETRY);
}

TEST(arena_counts_inflight_bytes)
{
    int64_t before = halo_arena_total_reserved();
    halo_arena *a = halo_arena_new(1000);
    for (int i = 0; i < 100; i++)
        CHECK(halo_arena_alloc(a, 1000) != NULL);
    CHECK(halo_arena_total_reserved() >= before + 100000);
    CHECK(((uintptr_t)halo_arena_alloc(a, 3) & 15) == 0);
    halo_arena_free(a);
    CHECK_INT(halo_arena_total_reserved(), before);
}

TEST(arena_big_blocks_are_mapped_and_accounted)
{
    int64_t before = halo_arena_total_reserved();
    halo_arena *a = halo_arena_new(200000); /* a mapped 256 KiB block */
    CHECK(halo_arena_reserved(a) >= 200000);
    CHECK_INT(halo_arena_total_reserved(),
              before + (int64_t)halo_arena_reserved(a));
    /* the whole first block is usable without a second one */
    char *p = halo_arena_alloc(a, 200000);
    CHECK(p != NULL);
    memset(p, 0xab, 200000);
    size_t r1 = halo_arena_reserved(a);
    CHECK(halo_arena_alloc(a, 8 << 20) != NULL); /* a larger second block */
    CHECK(halo_arena_reserved(a) >= r1 + (8u << 20));
    halo_arena_free(a);
    CHECK_INT(halo_arena_total_reserved(), before);
    /* freed blocks are reused or unmapped: many rounds stay accounted */
    for (int i = 0; i < 64; i++) {
        halo_arena *b = halo_arena_new(1 << 20);
        CHECK(b != NULL);
        CHECK(halo_arena_alloc(b, 1 << 19) != NULL);
        halo_arena_free(b);
    }
    CHECK_INT(halo_arena_total_reserved(), before);
}

/* Blocks of 2 MiB and more start on a 2 MiB boundary and are marked for
 * transparent huge pages (MADV_HUGEPAGE: "hg" in the mapping's VmFlags,
 * whether or not the kernel then finds huge pages). ASan builds take every
 * block from malloc (HALO_ARENA_MALLOC_ONLY), so there only the
 * allocations are checked. */
#ifdef HALO_ARENA_MALLOC_ONLY
#define ARENA_MAPS 0
#else
#define ARENA_MAPS 1
#endif

/* Whether the mapping holding p has VmFlags flag (/proc/self/smaps): 1 or
 * 0, -1 when no mapping holds p. */
static int mapping_has_flag(const void *p, const char *flag)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[512];
    bool in = false;
    int found = -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) /* a mapping's header */
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (in && strncmp(line, "VmFlags:", 8) == 0)
            found = strstr(line + 8, flag) != NULL;
    }
    fclose(f);
    return found;
}

TEST(arena_big_blocks_are_huge_page_aligned)
{
    for (size_t mib = 2; mib <= 16; mib *= 2) {
        halo_arena *a = halo_arena_new(mib << 20);
        char *p = halo_arena_alloc(a, mib << 20);
        CHECK(p != NULL);
        memset(p, 1, mib << 20);
        if (ARENA_MAPS) {
            /* the block header, then the data */
            CHECK((uintptr_t)p % ((uintptr_t)2 << 20) < 4096);
            CHECK_INT(mapping_has_flag(p, " hg"), 1);
        }
        halo_arena_free(a);
    }
    halo_arena *small = halo_arena_new(512 << 10); /* a 1 MiB block */
    char *q = halo_arena_alloc(small, 1000);
    CHECK(q != NULL);
    if (ARENA_MAPS) {
        CHECK_INT(mapping_has_flag(q, " hg"), 0);
    }
    halo_arena_free(small);
}

/* Arenas double their blocks up to HALO_ARENA_BLOCK_MAX, then go on in
 * blocks of that size; a larger allocation gets a block of its own, and
 * room says what fits without a new block. */
TEST(arena_growth_stops_at_2mib_blocks)
{
    halo_arena *a = halo_arena_new(0);
    CHECK(a != NULL);
    size_t prev = halo_arena_reserved(a), step = 0, used = 0;
    while (used < ((size_t)24 << 20)) {
        CHECK(halo_arena_alloc(a, 1000) != NULL);
        used += 1008;
        size_t r = halo_arena_reserved(a);
        if (r != prev)
            step = r - prev;
        prev = r;
    }
    CHECK(step >= HALO_ARENA_BLOCK_MAX && step <= ((size_t)2 << 20));
    /* doubling to 64 MiB left up to a whole block unused */
    CHECK(prev < used + ((size_t)4 << 20));
    size_t room = halo_arena_room(a);
    CHECK(room < ((size_t)2 << 20));
    if (room) {
        CHECK(halo_arena_alloc(a, room) != NULL);
        CHECK_INT(halo_arena_reserved(a), prev);
    }
    CHECK_INT(halo_arena_room(a), 0);
    CHECK(halo_arena_alloc(a, (size_t)5 << 20) != NULL);
    CHECK(halo_arena_reserved(a) >= prev + ((size_t)5 << 20));
    CHECK(halo_arena_room(a) < ((size_t)4 << 20));
    CHECK(halo_arena_alloc(a, 1) != NULL);
    halo_arena_free(a);
}

/* The pool of freed mapped blocks: a block of the class asked for or of
 * the next one is reused; a miss first takes as many bytes out of the pool
 * as it maps. ASan builds pool nothing. */
TEST(arena_pool_reuses_and_a_miss_does_not_grow_it)
{
    /* 40 MiB: a 64 MiB block, above the pool's 32 MiB; its miss empties
     * the pool, whatever earlier tests left there */
    halo_arena *big = halo_arena_new(40 << 20);
    CHECK(big != NULL);
    CHECK_INT(halo_arena_pooled_bytes(), 0);
    halo_arena_free(big);
    CHECK_INT(halo_arena_pooled_bytes(), 0); /* too large to keep */

    halo_arena *a = halo_arena_new(3 << 20); /* a 4 MiB block */
    CHECK(a != NULL);
    halo_arena_free(a);
    CHECK_INT(halo_arena_pooled_bytes(), ARENA_MAPS ? 4 << 20 : 0);
    halo_arena *b = halo_arena_new(1536 << 10); /* asks for a 2 MiB one */
    CHECK(b != NULL);
    if (ARENA_MAPS) { /* got the pooled 4 MiB block */
        CHECK_INT(halo_arena_pooled_bytes(), 0);
        CHECK(halo_arena_reserved(b) > (3u << 20));
    }
    halo_arena_free(b);
    CHECK_INT(halo_arena_pooled_bytes(), ARENA_MAPS ? 4 << 20 : 0);
    halo_arena *c = halo_arena_new(9 << 20); /* 16 MiB: a miss */
    CHECK(c != NULL);
    CHECK_INT(halo_arena_pooled_bytes(), 0);
    halo_arena_free(c);
    CHECK_INT(halo_arena_pooled_bytes(), ARENA_MAPS ? 16 << 20 : 0);
}

TEST(buf_json_escapes_and_repairs_utf8)
{
    halo_buf b = HALO_BUF_INIT;
    const char in[] = "a\"b\\c\n\x01 \xC3\xA9 \xFF end";
    halo_buf_json_str(&b, in, sizeof in - 1);
    CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001 \xC3\xA9 \xEF\xBF\xBD end\"");
    halo_buf_reset(&b);
    halo_buf_json_double(&b, 3.0);
    halo_buf_putc(&b, ' ');
    halo_buf_json_double(&b, 0.1);
    halo_buf_putc(&b, ' ');
    halo_buf_json_double(&b, 1e300);
    CHECK_STR(b.data, "3.0 0.1 1e+300");
    halo_buf_free(&b);
}

/* ---- reference JSON string encoder: one byte at a time, the obvious way,
 * for checking halo_buf_json_str's 8-bytes-at-a-time fast paths. */

static size_t ref_utf8_len(const unsigned char *s, size_t n)
{
    unsigned cp;
    size_t len;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0)
        len = 2, cp = s[0] & 0x1Fu;
    else if ((s[0] & 0xF0) == 0xE0)
        len = 3, cp = s[0] & 0x0Fu;
    else if ((s[0] & 0xF8) == 0xF0)
        len = 4, cp = s[0] & 0x07u;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    static const unsigned min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static void ref_json_str(halo_buf *b, const unsigned char *p, size_t n)
{
    halo_buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t l = ref_utf8_len(p + i, n - i);
        if (c == '"' || c == '\\')
            halo_buf_printf(b, "\\%c", c);
        else if (c == '\n')
            halo_buf_puts(b, "\\n");
        else if (c == '\r')
            halo_buf_puts(b, "\\r");
        else if (c == '\t')
            halo_buf_puts(b, "\\t");
        else if (c < 0x20)
            halo_buf_printf(b, "\\u%04x", c);
        else if (l == 0)
            halo_buf_puts(b, "\xEF\xBF\xBD");
        else {
            halo_buf_append(b, p + i, l);
            i += l;
            continue;
        }
        i++;
    }
    halo_buf_putc(b, '"');
}

TEST(buf_json_str_matches_reference)
{
    uint64_t seed = 7;
    halo_buf got = HALO_BUF_INIT, want = HALO_BUF_INIT, in = HALO_BUF_INIT;
    for (int iter = 0; iter < 20000; iter++) {
        halo_buf_reset(&in);
        fx_tricky_string(&in, &seed, 16);
        const char *p = in.data ? in.data : "";
        halo_buf_reset(&got);
        halo_buf_reset(&want);
        halo_buf_json_str(&got, p, in.len);
        ref_json_str(&want, (const unsigned char *)p, in.len);
        CHECK(!got.oom && !want.oom);
        CHECK_STR(got.data, want.data);
    }
    halo_buf_free(&got);
    halo_buf_free(&want);
    halo_buf_free(&in);
}

/* One double encoder for every JSON writer: integral values keep ".0",
 * exponents only where %.15g-%.17g use them, non-finite as strings. */
TEST(buf_json_numbers)
{
    halo_buf b = HALO_BUF_INIT;
    const double in[] = {2500.0, -2500.0, -0.0,     1e15,     0.1 + 0.2,
                         1.5e10, NAN,     INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        halo_buf_json_double(&b, in[i]);
        halo_buf_putc(&b, ' ');
    }
    halo_buf_json_int(&b, INT64_MIN);
    halo_buf_putc(&b, ' ');
    halo_buf_json_int(&b, 0);
    CHECK_STR(b.data, "2500.0 -2500.0 -0.0 1e+15 0.30000000000000004 "
                      "15000000000.0 \"NaN\" \"Infinity\" \"-Infinity\" "
                      "-9223372036854775808 0");
    halo_buf_free(&b);
}

TEST(base64_round_trips_both_alphabets)
{
    halo_buf b = HALO_BUF_INIT;
    const unsigned char bytes[] = {0xfb, 0xff, 0x00, 0x41, 0x42};
    halo_base64_encode(&b, bytes, sizeof bytes);
    CHECK_STR(b.data, "+/8AQUI=");
    uint8_t out[16];
    size_t n = 0;
    CHECK(halo_base64_decode(b.data, b.len, out, &n));
    CHECK(n == sizeof bytes && memcmp(out, bytes, n) == 0);
    CHECK(halo_base64_decode("-_8AQUI", 7, out, &n)); /* URL-safe, no pad */
    CHECK(n == sizeof bytes && memcmp(out, bytes, n) == 0);
    CHECK(!halo_base64_decode("QUJD*", 5, out, &n));
    CHECK(!halo_base64_decode("QUJDR", 5, out, &n)); /* impossible length */
    halo_buf_free(&b);
}

/* Nesting past HALO_JSON_MAX_DEPTH is written as null, counted from a lone
 * value at 0 and an attribute list's values at 1. */
TEST(json_encoding_limits_depth)
{
    enum { LEVELS = HALO_JSON_MAX_DEPTH + 2 };
    halo_value v[LEVELS];
    for (int i = 0; i < LEVELS; i++) {
        v[i].type = HALO_VAL_ARRAY;
        v[i].u.arr.items = i + 1 < LEVELS ? &v[i + 1] : NULL;
        v[i].u.arr.n = i + 1 < LEVELS ? 1 : 0;
    }
    halo_buf b = HALO_BUF_INIT, want = HALO_BUF_INIT;
    halo_json_encode_value(&b, &v[0]);
    for (int i = 0; i <= HALO_JSON_MAX_DEPTH; i++)
        halo_buf_putc(&want, '[');
    halo_buf_puts(&want, "null");
    for (int i = 0; i <= HALO_JSON_MAX_DEPTH; i++)
        halo_buf_putc(&want, ']');
    CHECK_STR(b.data, want.data);

    halo_kv kv = {.key = "k", .value = v[0]};
    halo_attrs attrs = {&kv, 1};
    halo_buf_reset(&b);
    halo_buf_reset(&want);
    halo_json_encode_attrs(&b, &attrs);
    halo_buf_puts(&want, "{\"k\":");
    for (int i = 0; i < HALO_JSON_MAX_DEPTH; i++)
        halo_buf_putc(&want, '[');
    halo_buf_puts(&want, "null");
    for (int i = 0; i < HALO_JSON_MAX_DEPTH; i++)
        halo_buf_putc(&want, ']');
    halo_buf_putc(&want, '}');
    CHECK_STR(b.data, want.data);
    halo_buf_free(&b);
    halo_buf_free(&want);
}

/* A cut's position counts characters, not bytes, over whatever precedes
 * it: two-, three- and four-byte characters in runs longer than a word,
 * escapes, and a second cut counted on from the first. */
TEST(json_attrs_cut_counts_characters)
{
    static const char in[] = "the input text, long enough to be cut";
    static const char out_txt[] = "the output text, long enough as well";
    halo_kv kv[4] = {
        {"pre",
         {.type = HALO_VAL_STRING,
          .u.s = {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 "
                  "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac "
                  "\xf0\x9f\x98\x80\xf0\x9f\x98\x80 tab\t",
                  34}}},
        {"input.value", {.type = HALO_VAL_STRING, .u.s = {in, sizeof in - 1}}},
        {"mid\xc3\xa9", {.type = HALO_VAL_STRING, .u.s = {"\xe2\x82\xac", 3}}},
        {"output.value",
         {.type = HALO_VAL_STRING, .u.s = {out_txt, sizeof out_txt - 1}}},
    };
    halo_attrs a = {kv, 4};
    halo_json_cut cut[2] = {{in, sizeof in - 1, 0},
                            {out_txt, sizeof out_txt - 1, 0}};
    halo_buf b = HALO_BUF_INIT;
    halo_json_encode_attrs_cut(&b, &a, cut, 2);
    CHECK(!b.oom);
    const char *marks[2] = {"\"input.value\":null", "\"output.value\":null"};
    for (int k = 0; k < 2; k++) {
        const char *at = strstr(b.data, marks[k]);
        CHECK(at != NULL);
        at += strlen(marks[k]) - 4; /* the null */
        int64_t chars = 0;
        for (const char *q = b.data; q < at; q++)
            chars += ((unsigned char)*q & 0xC0) != 0x80;
        CHECK_INT(cut[k].at, chars + 1);
    }
    halo_buf_free(&b);
}

/* BYTES and non-finite DOUBLE values, wherever they sit (span, resource,
 * scope, event and link attributes, inside arrays and kvlists), are marked
 * by the value_types sidecar and get their types back from it; a span
 * without such values has no sidecar; marks that do not fit are errors. */
TEST(json_value_types_round_trip)
{
    halo_value inner[2] = {
        {.type = HALO_VAL_STRING, .u.s = {"x", 1}},
        {.type = HALO_VAL_DOUBLE, .u.d = -INFINITY},
    };
    halo_kv nested = {"raw", {.type = HALO_VAL_BYTES, .u.s = {"\0\1\2", 3}}};
    halo_kv span_kv[3] = {
        {"b", {.type = HALO_VAL_BYTES, .u.s = {"hi", 2}}},
        {"arr", {.type = HALO_VAL_ARRAY, .u.arr = {inner, 2}}},
        {"kv", {.type = HALO_VAL_KVLIST, .u.kv = {&nested, 1}}},
    };
    halo_kv res_kv = {"nan", {.type = HALO_VAL_DOUBLE, .u.d = NAN}};
    halo_kv ev_kv = {"inf", {.type = HALO_VAL_DOUBLE, .u.d = INFINITY}};
    halo_kv plain = {"s", {.type = HALO_VAL_STRING, .u.s = {"AAEC", 4}}};
    halo_resource res = {.attrs = {&res_kv, 1}, .schema_url = ""};
    halo_scope scope = {.name = "", .version = "", .attrs = {&plain, 1}};
    halo_event ev[2] = {{.name = "e0", .attrs = {&plain, 1}},
                        {.name = "e1", .attrs = {&ev_kv, 1}}};
    halo_span sp = {.attrs = {span_kv, 3},
                    .events = ev,
                    .n_events = 2,
                    .resource = &res,
                    .scope = &scope};

    halo_buf types = HALO_BUF_INIT, a = HALO_BUF_INIT, r = HALO_BUF_INIT,
             e = HALO_BUF_INIT;
    CHECK(halo_json_encode_value_types(&types, &sp));
    CHECK_STR(types.data, "[[\"b\",\"a\",\"b\"],[\"d\",\"a\",\"arr\",1],"
                          "[\"b\",\"a\",\"kv\",\"raw\"],[\"d\",\"r\",\"nan\"],"
                          "[\"d\",\"e\",1,\"inf\"]]");
    halo_json_encode_attrs(&a, &sp.attrs);
    halo_json_encode_attrs(&r, &res.attrs);
    halo_json_encode_events(&e, ev, 2);

    /* decode the columns alone: the marked values come back as strings */
    halo_arena *arena = halo_arena_new(0);
    halo_span back = {0};
    halo_attrs rattrs, sattrs = {0};
    halo_err err = {{0}};
    CHECK(halo_json_decode_attrs(a.data, a.len, arena, &back.attrs, "a",
                                 &err) == HALO_OK);
    CHECK(halo_json_decode_attrs(r.data, r.len, arena, &rattrs, "r", &err) ==
          HALO_OK);
    CHECK(halo_json_decode_events(e.data, e.len, arena, &back.events,
                                  &back.n_events, &err) == HALO_OK);
    CHECK_INT(back.attrs.items[0].value.type, HALO_VAL_STRING);
    CHECK(halo_json_apply_value_types(types.data, types.len, arena, &back,
                                      &rattrs, &sattrs, &err) == HALO_OK);
    /* applying twice (a resource shared by spans) changes nothing more */
    CHECK(halo_json_apply_value_types(types.data, types.len, arena, &back,
                                      &rattrs, &sattrs, &err) == HALO_OK);
    const halo_value *v = &back.attrs.items[0].value;
    CHECK(v->type == HALO_VAL_BYTES && v->u.s.len == 2 &&
          memcmp(v->u.s.ptr, "hi", 2) == 0);
    v = &back.attrs.items[1].value.u.arr.items[1];
    CHECK(v->type == HALO_VAL_DOUBLE && isinf(v->u.d) && v->u.d < 0);
    CHECK_INT(back.attrs.items[1].value.u.arr.items[0].type, HALO_VAL_STRING);
    v = &back.attrs.items[2].value.u.kv.items[0].value;
    CHECK(v->type == HALO_VAL_BYTES && v->u.s.len == 3 &&
          memcmp(v->u.s.ptr, "\0\1\2", 3) == 0);
    CHECK(rattrs.items[0].value.type == HALO_VAL_DOUBLE &&
          isnan(rattrs.items[0].value.u.d));
    CHECK_INT(back.events[0].attrs.items[0].value.type, HALO_VAL_STRING);
    v = &back.events[1].attrs.items[0].value;
    CHECK(v->type == HALO_VAL_DOUBLE && isinf(v->u.d) && v->u.d > 0);

    /* plain spans: no sidecar */
    halo_span simple = {.attrs = {&plain, 1}, .resource = &res};
    res.attrs.n = 0;
    halo_buf_reset(&types);
    CHECK(!halo_json_encode_value_types(&types, &simple));
    CHECK_INT(types.len, 0);

    /* marks that do not fit the span are named */
    static const char *const bad[] = {
        "{}",                          /* not an array */
        "[[\"x\",\"a\",\"b\"]]",       /* unknown kind */
        "[[\"b\",\"a\",\"missing\"]]", /* no such key */
        "[[\"b\",\"e\",9,\"inf\"]]",   /* no such event */
        "[[\"d\",\"a\",\"arr\",0]]",   /* "x" is not NaN/Infinity */
        "[[\"b\",\"a\",\"arr\",5]]",   /* index out of range */
        "[[\"b\",\"q\"]]",             /* unknown list */
        "[[\"b\",\"a\",\"kv\"]]",      /* a kvlist, not a string */
        "[1",                          /* not JSON */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        halo_err e2 = {{0}};
        CHECK(halo_json_apply_value_types(bad[i], strlen(bad[i]), arena, &back,
                                          &rattrs, &sattrs,
                                          &e2) == HALO_EINVAL);
        CHECK(strstr(e2.msg, "value_types") != NULL);
    }
    halo_arena_free(arena);
    halo_buf_free(&types);
    halo_buf_free(&a);
    halo_buf_free(&r);
    halo_buf_free(&e);
}

TEST(metrics_render_prometheus_text)
{
    halo_metric *c =
        halo_counter("halo_test_total", "a test counter", "component=\"x\"");
    halo_metric_add(c, 2);
    halo_metric_add(c, 3);
    CHECK(halo_counter("halo_test_total", "again", "component=\"x\"") == c);
    halo_metric *h =
        halo_histogram("halo_test_seconds", "a histogram", NULL,
                       halo_latency_buckets, halo_latency_buckets_n);
    halo_metric_observe(h, 0.003);
    halo_metric_observe(h, 20);
    halo_buf out = HALO_BUF_INIT;
    halo_metrics_render(&out);
    CHECK_CONTAINS(out.data, "# TYPE halo_test_total counter\n");
    CHECK_CONTAINS(out.data, "halo_test_total{component=\"x\"} 5\n");
    CHECK_CONTAINS(out.data, "halo_test_seconds_bucket{le=\"0.005\"} 1\n");
    CHECK_CONTAINS(out.data, "halo_test_seconds_bucket{le=\"+Inf\"} 2\n");
    CHECK_CONTAINS(out.data, "halo_test_seconds_count 2\n");
    halo_buf_free(&out);
    halo_metrics_reset();
}

TEST(hex_round_trip)
{
    uint8_t id[8] = {0, 1, 0xab, 0xcd, 0xef, 0x10, 0x7f, 0xff}, back[8];
    char hex[17];
    halo_hex_encode(id, 8, hex);
    CHECK_STR(hex, "0001abcdef107fff");
    CHECK(halo_hex_decode("0001ABCDEF107FFF", 16, back, 8));
    CHECK(memcmp(id, back, 8) == 0);
    CHECK(!halo_hex_decode("0001abcdef107ff", 15, back, 8));
    CHECK(!halo_hex_decode("0001abcdef107fgf", 16, back, 8));
}

TEST(dir_of_a_path)
{
    char d[16];
    CHECK(halo_dir_of("data/halo.db", d, sizeof d));
    CHECK_STR(d, "data");
    CHECK(halo_dir_of("/a/b/c.db", d, sizeof d));
    CHECK_STR(d, "/a/b");
    CHECK(halo_dir_of("/halo.db", d, sizeof d));
    CHECK_STR(d, "/");
    CHECK(halo_dir_of("halo.db", d, sizeof d));
    CHECK_STR(d, ".");
    CHECK(halo_dir_of("0123456789abcde/x", d, sizeof d)); /* 15 + NUL */
    CHECK_STR(d, "0123456789abcde");
    strcpy(d, "kept");
    CHECK(!halo_dir_of("0123456789abcdef/x", d, sizeof d));
    CHECK_STR(d, "kept");
}
