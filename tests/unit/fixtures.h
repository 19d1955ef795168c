/*
 * fixtures.h -- attribute values and key/values for hand-built test spans,
 * shared by the unit tests that build spans (codec, store, agent_identity,
 * debug exporter).
 *
 * Everything here is static inline so that each test_*.c, which CMake
 * links with harness.c only, can include it without a build change, and a
 * test that uses only some of the builders gets no unused-function
 * warning. Also the random strings the JSON string encoder tests share. Strings
 * are referenced, not copied: the caller keeps them alive (string literals in
 * practice).
 */
#ifndef HALO_TEST_FIXTURES_H
#define HALO_TEST_FIXTURES_H

#include "core/buf.h"
#include "core/span.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- values -------------------------------------------------------------- */

static inline halo_value v_str(const char *s)
{
    halo_value v = {.type = HALO_VAL_STRING};
    v.u.s.ptr = s;
    v.u.s.len = strlen(s);
    return v;
}

static inline halo_value v_int(int64_t i)
{
    halo_value v = {.type = HALO_VAL_INT};
    v.u.i = i;
    return v;
}

static inline halo_value v_dbl(double d)
{
    halo_value v = {.type = HALO_VAL_DOUBLE};
    v.u.d = d;
    return v;
}

static inline halo_value v_bool(bool b)
{
    halo_value v = {.type = HALO_VAL_BOOL};
    v.u.b = b;
    return v;
}

static inline halo_value v_bytes(const char *p, size_t n)
{
    halo_value v = {.type = HALO_VAL_BYTES};
    v.u.s.ptr = p;
    v.u.s.len = n;
    return v;
}

static inline halo_value v_arr(halo_value *items, size_t n)
{
    halo_value v = {.type = HALO_VAL_ARRAY};
    v.u.arr.items = items;
    v.u.arr.n = n;
    return v;
}

static inline halo_value v_kvl(halo_kv *items, size_t n)
{
    halo_value v = {.type = HALO_VAL_KVLIST};
    v.u.kv.items = items;
    v.u.kv.n = n;
    return v;
}

/* ---- key/values: S("gen_ai.system", "openai"), I("tokens", 3) ... -------- */

static inline halo_kv S(const char *k, const char *v)
{
    return (halo_kv){.key = k, .value = v_str(v)};
}

static inline halo_kv I(const char *k, int64_t v)
{
    return (halo_kv){.key = k, .value = v_int(v)};
}

static inline halo_kv D(const char *k, double v)
{
    return (halo_kv){.key = k, .value = v_dbl(v)};
}

static inline halo_kv B(const char *k, bool v)
{
    return (halo_kv){.key = k, .value = v_bool(v)};
}

/* ---- strings that stress a JSON string encoder --------------------------- */

/* Appends to out fewer than max pieces chosen pseudo-randomly from *seed
 * (advanced): plain runs, characters to escape, valid UTF-8 of every
 * length, and invalid UTF-8 (truncated, overlong, surrogate, past
 * U+10FFFF, stray bytes). */
static inline void fx_tricky_string(halo_buf *out, uint64_t *seed, int max)
{
    static const char *const pieces[] = {"a",
                                         "\"",
                                         "\\",
                                         "\n",
                                         "\x01",
                                         "\x1f",
                                         "\x7f",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\xc3",
                                         "\xe2\x82",
                                         "\xed\xa0\x80",
                                         "\xc0\xaf",
                                         "\xe0\x80\xaf",
                                         "\xf0\x80\x80\xaf",
                                         "\xff",
                                         "\xf5\x80\x80\x80",
                                         "plain text run ",
                                         "\t",
                                         "\r",
                                         "/",
                                         "\xf4\x90\x80\x80",
                                         "0123456789abcdef"};
    const size_t np = sizeof pieces / sizeof *pieces;
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    int k = (int)((*seed >> 40) % (uint64_t)max);
    for (int j = 0; j < k; j++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        halo_buf_puts(out, pieces[(*seed >> 33) % np]);
    }
}

#endif
