/*
 * otlp_codec_json.c -- OTLP/JSON trace requests, in and out.
 *
 * Decoding parses the body with jansson, then walks the tree into halo spans
 * whose strings are copied into the caller's arena (the jansson tree is
 * released before returning). The OTLP/JSON rules it follows:
 *
 *   - field names in lowerCamelCase; snake_case (the proto names) is
 *     accepted too, and so are the pre-1.0 names instrumentationLibrarySpans
 *     / instrumentationLibrary; unknown fields are ignored; null is absent;
 *   - traceId / spanId / parentSpanId are hex strings, either case (an
 *     optional "0x" is tolerated); an empty parentSpanId is a root span;
 *   - 64-bit integers (times, intValue) are JSON strings of digits or JSON
 *     numbers; uint32 counts and flags likewise;
 *   - enums (kind, status.code) are integers or their proto names
 *     ("SPAN_KIND_SERVER", "STATUS_CODE_ERROR");
 *   - doubleValue is a number or one of "NaN", "Infinity", "-Infinity" (or a
 *     numeric string); bytesValue is base64 (standard or URL-safe).
 *
 * A value of the wrong type is HALO_EINVAL naming its path
 * ("resourceSpans[0].scopeSpans[0].spans[3].startTimeUnixNano: expected an
 * integer or a string of digits"). Spans with invalid ids are left out and
 * counted, as in protobuf.
 *
 * The generic readers (otlp_j*) also serve the JSONL decoder (otlp_codec.c).
 *
 * Encoding writes compact OTLP/JSON that the decoder reads back to equal
 * spans; default values (empty strings, zero counts) are omitted as proto3
 * JSON does, except name, kind and the times which are always written.
 */
#include "otlp_codec_enc.h"
#include "otlp_codec_internal.h"

#include "../../core/json_budget.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- context and paths ---------------------------------------------------- */

/* Appends s[0..n) to the path (truncating at its size); returns the
 * previous length. Paths are built for every member read, so no printf. */
static size_t path_append(otlp_jctx *c, const char *s, size_t n)
{
    size_t old = c->plen;
    size_t room = sizeof c->path - 1 - c->plen;
    if (n > room)
        n = room;
    memcpy(c->path + c->plen, s, n);
    c->plen += n;
    c->path[c->plen] = '\0';
    return old;
}

size_t otlp_jpath_field(otlp_jctx *c, const char *name)
{
    size_t old = c->plen;
    if (c->plen)
        path_append(c, ".", 1);
    path_append(c, name, strlen(name));
    return old;
}

size_t otlp_jpath_index(otlp_jctx *c, size_t i)
{
    char tmp[24];
    size_t k = sizeof tmp;
    tmp[--k] = ']';
    do {
        tmp[--k] = (char)('0' + i % 10);
        i /= 10;
    } while (i);
    tmp[--k] = '[';
    return path_append(c, tmp + k, sizeof tmp - k);
}

void otlp_jpath_pop(otlp_jctx *c, size_t len)
{
    if (len < sizeof c->path) {
        c->plen = len;
        c->path[len] = '\0';
    }
}

halo_status otlp_jfail(otlp_jctx *c, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (c->plen)
        return halo_fail(c->err, HALO_EINVAL, "%s: %s", c->path, what);
    return halo_fail(c->err, HALO_EINVAL, "%s", what);
}

halo_status otlp_jnomem(otlp_jctx *c)
{
    return halo_fail(c->err, HALO_ENOMEM, "could not allocate memory for %s",
                     c->plen ? c->path : "a decoded request");
}

json_t *otlp_jget(json_t *obj, const char *camel, const char *snake,
                  const char **used)
{
    json_t *v = camel ? json_object_get(obj, camel) : NULL;
    const char *name = camel;
    if ((!v || json_is_null(v)) && snake) {
        v = json_object_get(obj, snake);
        name = snake;
    }
    if (!v || json_is_null(v))
        return NULL;
    if (used)
        *used = name;
    return v;
}

/* --- scalar readers ------------------------------------------------------- */

#define EXPECT_INT "expected an integer or a string of digits"

/* Digits of s[0..n) as a uint64; false when empty, not digits, or over
 * max. */
static bool parse_digits(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

halo_status otlp_jval_u64(otlp_jctx *c, json_t *v, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return otlp_jfail(c, "expected a non-negative integer");
        *out = (uint64_t)i;
        return HALO_OK;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= 0 && d < 18446744073709551616.0 && d == floor(d)) {
            *out = (uint64_t)d;
            return HALO_OK;
        }
        return otlp_jfail(c, EXPECT_INT);
    }
    if (json_is_string(v) &&
        parse_digits(json_string_value(v), json_string_length(v), UINT64_MAX,
                     out))
        return HALO_OK;
    return otlp_jfail(c, EXPECT_INT);
}

halo_status otlp_jval_i64(otlp_jctx *c, json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return HALO_OK;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
            d == floor(d)) {
            *out = (int64_t)d;
            return HALO_OK;
        }
        return otlp_jfail(c, EXPECT_INT);
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        bool neg = n > 0 && s[0] == '-';
        uint64_t u;
        uint64_t max = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        if (parse_digits(s + neg, n - neg, max, &u)) {
            *out = neg ? (int64_t)(0 - u) : (int64_t)u;
            return HALO_OK;
        }
    }
    return otlp_jfail(c, EXPECT_INT);
}

halo_status otlp_jval_double(otlp_jctx *c, json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return HALO_OK;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (strcmp(s, "NaN") == 0) {
            *out = NAN;
            return HALO_OK;
        }
        if (strcmp(s, "Infinity") == 0 || strcmp(s, "-Infinity") == 0) {
            *out = s[0] == '-' ? -INFINITY : INFINITY;
            return HALO_OK;
        }
        char *end;
        errno = 0;
        double d = n ? strtod(s, &end) : 0;
        if (n && end == s + n && errno != ERANGE && isfinite(d) &&
            strchr("+-.0123456789", s[0])) {
            *out = d;
            return HALO_OK;
        }
    }
    return otlp_jfail(c, "expected a number");
}

halo_status otlp_jval_str(otlp_jctx *c, json_t *v, const char **out,
                          size_t *len)
{
    if (!json_is_string(v))
        return otlp_jfail(c, "expected a string");
    size_t n = json_string_length(v);
    char *s = halo_arena_strndup(c->arena, json_string_value(v), n);
    if (!s)
        return otlp_jnomem(c);
    *out = s;
    if (len)
        *len = n;
    return HALO_OK;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

halo_status otlp_jval_hex(otlp_jctx *c, json_t *v, size_t expect, uint8_t *id,
                          size_t max, size_t *len)
{
    if (!json_is_string(v))
        return otlp_jfail(c, "expected a string of %zu hex digits", expect * 2);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        n -= 2;
    }
    if (n % 2)
        return otlp_jfail(c, "expected %zu hex digits, got %zu", expect * 2, n);
    for (size_t i = 0; i < n; i++)
        if (hexval(s[i]) < 0)
            return otlp_jfail(c, "invalid hex digit at position %zu", i);
    *len = n / 2;
    if (*len <= max)
        for (size_t i = 0; i < *len; i++)
            id[i] = (uint8_t)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
    return HALO_OK;
}

static halo_status jval_bytes(otlp_jctx *c, json_t *v, halo_value *out)
{
    if (!json_is_string(v))
        return otlp_jfail(c, "expected a base64 string");
    size_t n = json_string_length(v);
    uint8_t *buf = halo_arena_alloc(c->arena, n / 4 * 3 + 4);
    size_t len = 0;
    if (!buf)
        return otlp_jnomem(c);
    if (!halo_base64_decode(json_string_value(v), n, buf, &len))
        return otlp_jfail(c, "invalid base64");
    out->type = HALO_VAL_BYTES;
    out->u.s.ptr = (const char *)buf;
    out->u.s.len = len;
    return HALO_OK;
}

/* The member camel/snake of obj with its name pushed on the path (pop with
 * leave()); NULL, nothing pushed, when absent. */
static json_t *enter(otlp_jctx *c, json_t *obj, const char *camel,
                     const char *snake, size_t *mark)
{
    const char *used = NULL;
    json_t *v = otlp_jget(obj, camel, snake, &used);
    if (v)
        *mark = otlp_jpath_field(c, used);
    return v;
}

/* Pops the path back to mark and passes st on (an error message, if any,
 * was written when it happened). */
static halo_status leave(otlp_jctx *c, size_t mark, halo_status st)
{
    otlp_jpath_pop(c, mark);
    return st;
}

halo_status otlp_jstr(otlp_jctx *c, json_t *obj, const char *camel,
                      const char *snake, const char **out)
{
    size_t mark;
    json_t *v = enter(c, obj, camel, snake, &mark);
    return v ? leave(c, mark, otlp_jval_str(c, v, out, NULL)) : HALO_OK;
}

halo_status otlp_ju64(otlp_jctx *c, json_t *obj, const char *camel,
                      const char *snake, uint64_t *out)
{
    size_t mark;
    json_t *v = enter(c, obj, camel, snake, &mark);
    return v ? leave(c, mark, otlp_jval_u64(c, v, out)) : HALO_OK;
}

static halo_status jval_u32(otlp_jctx *c, json_t *v, uint32_t *out)
{
    uint64_t u;
    halo_status st = otlp_jval_u64(c, v, &u);
    if (st != HALO_OK)
        return st;
    if (u > UINT32_MAX)
        return otlp_jfail(c, "integer out of range (at most 4294967295)");
    *out = (uint32_t)u;
    return HALO_OK;
}

halo_status otlp_ju32(otlp_jctx *c, json_t *obj, const char *camel,
                      const char *snake, uint32_t *out)
{
    size_t mark;
    json_t *v = enter(c, obj, camel, snake, &mark);
    return v ? leave(c, mark, jval_u32(c, v, out)) : HALO_OK;
}

/* An enum: an integer, a string of digits, or one of names[] (the value is
 * the index), compared without regard to case. */
static halo_status jval_enum(otlp_jctx *c, json_t *v, const char *const *names,
                             int n_names, int *out)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        for (int i = 0; i < n_names; i++) {
            if (strcasecmp(s, names[i]) == 0) {
                *out = i;
                return HALO_OK;
            }
        }
    }
    int64_t i;
    if ((json_is_integer(v) || json_is_string(v)) &&
        otlp_jval_i64(c, v, &i) == HALO_OK && i >= INT32_MIN &&
        i <= INT32_MAX) {
        *out = (int)i;
        return HALO_OK;
    }
    return otlp_jfail(c, "expected an enum number or one of %s..%s", names[0],
                      names[n_names - 1]);
}

static const char *const kind_names[] = {
    "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",      "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"};
static const char *const status_names[] = {
    "STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"};

/* --- attribute values ----------------------------------------------------- */

static halo_status jany(otlp_jctx *c, json_t *v, halo_value *out, int depth);

static halo_status depth_check(otlp_jctx *c, int depth)
{
    if (depth > OTLP_MAX_VALUE_DEPTH)
        return otlp_jfail(c, "attribute values nested deeper than %d levels",
                          OTLP_MAX_VALUE_DEPTH);
    return HALO_OK;
}

/* The "values" array of an arrayValue / kvlistValue object. */
static json_t *values_of(otlp_jctx *c, json_t *v, halo_status *st)
{
    *st = HALO_OK;
    if (!json_is_object(v)) {
        *st = otlp_jfail(c, "expected an object with \"values\"");
        return NULL;
    }
    json_t *vals = otlp_jget(v, "values", NULL, NULL);
    if (vals && !json_is_array(vals)) {
        size_t p = otlp_jpath_field(c, "values");
        *st = otlp_jfail(c, "expected an array");
        otlp_jpath_pop(c, p);
        return NULL;
    }
    return vals;
}

static halo_status jarray_value(otlp_jctx *c, json_t *v, halo_value *out,
                                int depth)
{
    halo_status st;
    json_t *vals = values_of(c, v, &st);
    out->type = HALO_VAL_ARRAY;
    if (st != HALO_OK || !vals || json_array_size(vals) == 0)
        return st;
    size_t n = json_array_size(vals);
    halo_value *items = halo_arena_calloc(c->arena, n, sizeof *items);
    if (!items)
        return otlp_jnomem(c);
    size_t p0 = otlp_jpath_field(c, "values");
    for (size_t i = 0; i < n; i++) {
        size_t p = otlp_jpath_index(c, i);
        st = jany(c, json_array_get(vals, i), &items[i], depth + 1);
        if (st != HALO_OK)
            return st;
        otlp_jpath_pop(c, p);
    }
    otlp_jpath_pop(c, p0);
    out->u.arr.items = items;
    out->u.arr.n = n;
    return HALO_OK;
}

static halo_status jkvs(otlp_jctx *c, json_t *arr, halo_attrs *out, int depth);

static halo_status jkvlist_value(otlp_jctx *c, json_t *v, halo_value *out,
                                 int depth)
{
    halo_status st;
    json_t *vals = values_of(c, v, &st);
    out->type = HALO_VAL_KVLIST;
    if (st != HALO_OK || !vals)
        return st;
    halo_attrs attrs;
    size_t p = otlp_jpath_field(c, "values");
    st = jkvs(c, vals, &attrs, depth + 1);
    if (st != HALO_OK)
        return st;
    otlp_jpath_pop(c, p);
    out->u.kv.items = attrs.items;
    out->u.kv.n = attrs.n;
    return HALO_OK;
}

static halo_status jany_member(otlp_jctx *c, json_t *v, const char *name,
                               halo_value *out, int depth)
{
    halo_status st = HALO_OK;
    switch (name[0]) {
    case 's':
        st = otlp_jval_str(c, v, &out->u.s.ptr, &out->u.s.len);
        out->type = HALO_VAL_STRING;
        break;
    case 'b':
        if (name[1] == 'y') {
            st = jval_bytes(c, v, out);
        } else if (json_is_boolean(v)) {
            out->type = HALO_VAL_BOOL;
            out->u.b = json_is_true(v);
        } else {
            st = otlp_jfail(c, "expected true or false");
        }
        break;
    case 'i':
        out->type = HALO_VAL_INT;
        st = otlp_jval_i64(c, v, &out->u.i);
        break;
    case 'd':
        out->type = HALO_VAL_DOUBLE;
        st = otlp_jval_double(c, v, &out->u.d);
        break;
    case 'a':
        st = jarray_value(c, v, out, depth);
        break;
    case 'k':
        st = jkvlist_value(c, v, out, depth);
        break;
    }
    return st;
}

/* An OTLP AnyValue object; no known member (or null) is an empty value. */
static halo_status jany(otlp_jctx *c, json_t *v, halo_value *out, int depth)
{
    static const char *const members[][2] = {
        {"stringValue", "string_value"}, {"boolValue", "bool_value"},
        {"intValue", "int_value"},       {"doubleValue", "double_value"},
        {"arrayValue", "array_value"},   {"kvlistValue", "kvlist_value"},
        {"bytesValue", "bytes_value"},
    };
    memset(out, 0, sizeof *out);
    if (!v || json_is_null(v))
        return HALO_OK;
    halo_status st = depth_check(c, depth);
    if (st != HALO_OK)
        return st;
    if (!json_is_object(v))
        return otlp_jfail(c, "expected an AnyValue object");
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        const char *used = NULL;
        json_t *m = otlp_jget(v, members[i][0], members[i][1], &used);
        if (!m)
            continue;
        size_t p = otlp_jpath_field(c, used);
        st = jany_member(c, m, members[i][0], out, depth);
        if (st != HALO_OK)
            return st;
        otlp_jpath_pop(c, p);
        return HALO_OK;
    }
    return HALO_OK;
}

/* An array of OTLP KeyValue objects. */
static halo_status jkvs(otlp_jctx *c, json_t *arr, halo_attrs *out, int depth)
{
    out->items = NULL;
    out->n = 0;
    if (!json_is_array(arr))
        return otlp_jfail(c, "expected an array of key/value objects");
    size_t n = json_array_size(arr);
    if (n == 0)
        return HALO_OK;
    halo_kv *items = halo_arena_calloc(c->arena, n, sizeof *items);
    if (!items)
        return otlp_jnomem(c);
    for (size_t i = 0; i < n; i++) {
        json_t *kv = json_array_get(arr, i);
        size_t p = otlp_jpath_index(c, i);
        if (!json_is_object(kv))
            return otlp_jfail(c, "expected a key/value object");
        items[i].key = "";
        halo_status st = otlp_jstr(c, kv, "key", NULL, &items[i].key);
        if (st != HALO_OK)
            return st;
        const char *used = NULL;
        json_t *val = otlp_jget(kv, "value", NULL, &used);
        if (val) {
            size_t p2 = otlp_jpath_field(c, used);
            st = jany(c, val, &items[i].value, depth);
            if (st != HALO_OK)
                return st;
            otlp_jpath_pop(c, p2);
        }
        otlp_jpath_pop(c, p);
    }
    out->items = items;
    out->n = n;
    return HALO_OK;
}

halo_status otlp_jattrs_otlp(otlp_jctx *c, json_t *arr, halo_attrs *out,
                             int depth)
{
    return jkvs(c, arr, out, depth);
}

/* A plain JSON value as an attribute value (JSONL attributes). */
static halo_status jplain(otlp_jctx *c, json_t *v, halo_value *out, int depth)
{
    memset(out, 0, sizeof *out);
    halo_status st = depth_check(c, depth);
    if (st != HALO_OK)
        return st;
    switch (json_typeof(v)) {
    case JSON_STRING:
        out->type = HALO_VAL_STRING;
        return otlp_jval_str(c, v, &out->u.s.ptr, &out->u.s.len);
    case JSON_TRUE:
    case JSON_FALSE:
        out->type = HALO_VAL_BOOL;
        out->u.b = json_is_true(v);
        return HALO_OK;
    case JSON_INTEGER:
        out->type = HALO_VAL_INT;
        out->u.i = (int64_t)json_integer_value(v);
        return HALO_OK;
    case JSON_REAL:
        out->type = HALO_VAL_DOUBLE;
        out->u.d = json_real_value(v);
        return HALO_OK;
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        out->type = HALO_VAL_ARRAY;
        if (n == 0)
            return HALO_OK;
        halo_value *items = halo_arena_calloc(c->arena, n, sizeof *items);
        if (!items)
            return otlp_jnomem(c);
        for (size_t i = 0; i < n; i++) {
            size_t p = otlp_jpath_index(c, i);
            st = jplain(c, json_array_get(v, i), &items[i], depth + 1);
            if (st != HALO_OK)
                return st;
            otlp_jpath_pop(c, p);
        }
        out->u.arr.items = items;
        out->u.arr.n = n;
        return HALO_OK;
    }
    case JSON_OBJECT: {
        halo_attrs attrs;
        out->type = HALO_VAL_KVLIST;
        st = otlp_jattrs_map(c, v, &attrs, depth + 1);
        out->u.kv.items = attrs.items;
        out->u.kv.n = attrs.n;
        return st;
    }
    case JSON_NULL:
        return HALO_OK;
    }
    return HALO_OK;
}

halo_status otlp_jattrs_map(otlp_jctx *c, json_t *obj, halo_attrs *out,
                            int depth)
{
    out->items = NULL;
    out->n = 0;
    if (!json_is_object(obj))
        return otlp_jfail(c, "expected an object of attributes");
    size_t n = json_object_size(obj);
    if (n == 0)
        return HALO_OK;
    halo_kv *items = halo_arena_calloc(c->arena, n, sizeof *items);
    if (!items)
        return otlp_jnomem(c);
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (i == n)
            break;
        items[i].key = halo_arena_strdup(c->arena, key);
        if (!items[i].key)
            return otlp_jnomem(c);
        size_t p = otlp_jpath_field(c, key);
        halo_status st = jplain(c, v, &items[i].value, depth);
        if (st != HALO_OK)
            return st;
        otlp_jpath_pop(c, p);
        i++;
    }
    out->items = items;
    out->n = i;
    return HALO_OK;
}

halo_status otlp_jattrs_any(otlp_jctx *c, json_t *v, halo_attrs *out)
{
    if (json_is_object(v))
        return otlp_jattrs_map(c, v, out, 1);
    return jkvs(c, v, out, 1);
}

/* Attributes member camel/snake of obj, in either shape. */
static halo_status jattrs_member(otlp_jctx *c, json_t *obj, const char *camel,
                                 const char *snake, halo_attrs *out)
{
    size_t mark;
    json_t *v = enter(c, obj, camel, snake, &mark);
    return v ? leave(c, mark, otlp_jattrs_any(c, v, out)) : HALO_OK;
}

/* --- requests ------------------------------------------------------------- */

/* The array member camel/snake of obj (NULL and HALO_OK when absent). */
static halo_status jarray_member(otlp_jctx *c, json_t *obj, const char *camel,
                                 const char *snake, json_t **out,
                                 const char **used)
{
    *out = otlp_jget(obj, camel, snake, used);
    if (*out && !json_is_array(*out)) {
        size_t p = otlp_jpath_field(c, *used);
        halo_status st = otlp_jfail(c, "expected an array");
        otlp_jpath_pop(c, p);
        *out = NULL;
        return st;
    }
    return HALO_OK;
}

/* The scope spans of a resource spans object (or their pre-1.0 name). */
static json_t *scope_spans_of(json_t *rs, const char **used)
{
    json_t *v = otlp_jget(rs, "scopeSpans", "scope_spans", used);
    if (!v)
        v = otlp_jget(rs, "instrumentationLibrarySpans",
                      "instrumentation_library_spans", used);
    return v;
}

static halo_status jresource(otlp_jctx *c, json_t *rs,
                             const halo_resource **out)
{
    const char *schema = "";
    const char *used = NULL;
    halo_status st = otlp_jstr(c, rs, "schemaUrl", "schema_url", &schema);
    if (st != HALO_OK)
        return st;
    json_t *r = otlp_jget(rs, "resource", NULL, &used);
    if (!r && !*schema) {
        *out = &otlp_empty_resource;
        return HALO_OK;
    }
    halo_resource *res = halo_arena_calloc(c->arena, 1, sizeof *res);
    if (!res)
        return otlp_jnomem(c);
    res->schema_url = schema;
    if (r) {
        size_t p = otlp_jpath_field(c, used);
        if (!json_is_object(r))
            return otlp_jfail(c, "expected an object");
        st = jattrs_member(c, r, "attributes", NULL, &res->attrs);
        if (st == HALO_OK)
            st = otlp_ju32(c, r, "droppedAttributesCount",
                           "dropped_attributes_count", &res->dropped_attrs);
        if (st != HALO_OK)
            return st;
        otlp_jpath_pop(c, p);
    }
    *out = res;
    return HALO_OK;
}

static halo_status jscope(otlp_jctx *c, json_t *ss, const halo_scope **out)
{
    const char *schema = "";
    const char *used = NULL;
    halo_status st = otlp_jstr(c, ss, "schemaUrl", "schema_url", &schema);
    if (st != HALO_OK)
        return st;
    json_t *s = otlp_jget(ss, "scope", NULL, &used);
    if (!s)
        s = otlp_jget(ss, "instrumentationLibrary", "instrumentation_library",
                      &used);
    if (!s && !*schema) {
        *out = &otlp_empty_scope;
        return HALO_OK;
    }
    halo_scope *sc = halo_arena_calloc(c->arena, 1, sizeof *sc);
    if (!sc)
        return otlp_jnomem(c);
    sc->schema_url = schema;
    sc->name = "";
    sc->version = "";
    if (s) {
        size_t p = otlp_jpath_field(c, used);
        if (!json_is_object(s))
            return otlp_jfail(c, "expected an object");
        st = otlp_jstr(c, s, "name", NULL, &sc->name);
        if (st == HALO_OK)
            st = otlp_jstr(c, s, "version", NULL, &sc->version);
        if (st == HALO_OK)
            st = jattrs_member(c, s, "attributes", NULL, &sc->attrs);
        if (st == HALO_OK)
            st = otlp_ju32(c, s, "droppedAttributesCount",
                           "dropped_attributes_count", &sc->dropped_attrs);
        if (st != HALO_OK)
            return st;
        otlp_jpath_pop(c, p);
    }
    *out = sc;
    return HALO_OK;
}

/* A hex id member into id[max]; *len is the byte length (0 when absent). */
static halo_status jid(otlp_jctx *c, json_t *obj, const char *camel,
                       const char *snake, size_t expect, uint8_t *id,
                       size_t max, size_t *len)
{
    size_t mark;
    *len = 0;
    json_t *v = enter(c, obj, camel, snake, &mark);
    return v ? leave(c, mark, otlp_jval_hex(c, v, expect, id, max, len))
             : HALO_OK;
}

static halo_status jenum_member(otlp_jctx *c, json_t *obj, const char *name,
                                const char *const *names, int n, int *out)
{
    size_t mark;
    json_t *v = enter(c, obj, name, NULL, &mark);
    return v ? leave(c, mark, jval_enum(c, v, names, n, out)) : HALO_OK;
}

static halo_status jevent(otlp_jctx *c, json_t *e, halo_event *out)
{
    out->name = "";
    if (!json_is_object(e))
        return otlp_jfail(c, "expected an event object");
    halo_status st =
        otlp_ju64(c, e, "timeUnixNano", "time_unix_nano", &out->time_ns);
    if (st == HALO_OK)
        st = otlp_jstr(c, e, "name", NULL, &out->name);
    if (st == HALO_OK)
        st = jattrs_member(c, e, "attributes", NULL, &out->attrs);
    if (st == HALO_OK)
        st = otlp_ju32(c, e, "droppedAttributesCount",
                       "dropped_attributes_count", &out->dropped_attrs);
    return st;
}

static halo_status jevents(otlp_jctx *c, json_t *sp, halo_span *hs)
{
    const char *used = NULL;
    json_t *arr;
    halo_status st = jarray_member(c, sp, "events", NULL, &arr, &used);
    if (st != HALO_OK || !arr || json_array_size(arr) == 0)
        return st;
    size_t n = json_array_size(arr);
    hs->events = halo_arena_calloc(c->arena, n, sizeof *hs->events);
    if (!hs->events)
        return otlp_jnomem(c);
    size_t p0 = otlp_jpath_field(c, used);
    for (size_t i = 0; i < n; i++) {
        size_t p = otlp_jpath_index(c, i);
        st = jevent(c, json_array_get(arr, i), &hs->events[i]);
        if (st != HALO_OK)
            return st;
        otlp_jpath_pop(c, p);
    }
    otlp_jpath_pop(c, p0);
    hs->n_events = n;
    return HALO_OK;
}

/* A link; *ok false (with why) when its ids have the wrong length. */
static halo_status jlink(otlp_jctx *c, json_t *l, halo_link *out, bool *ok,
                         char *why, size_t why_size)
{
    uint8_t tid[16], sid[8];
    size_t tlen, slen;
    out->trace_state = "";
    if (!json_is_object(l))
        return otlp_jfail(c, "expected a link object");
    halo_status st = jid(c, l, "traceId", "trace_id", 16, tid, 16, &tlen);
    if (st == HALO_OK)
        st = jid(c, l, "spanId", "span_id", 8, sid, 8, &slen);
    if (st != HALO_OK)
        return st;
    *ok = otlp_check_link_ids(tlen, slen, why, why_size);
    if (!*ok)
        return HALO_OK;
    memcpy(out->trace_id, tid, 16);
    memcpy(out->span_id, sid, 8);
    st = otlp_jstr(c, l, "traceState", "trace_state", &out->trace_state);
    if (st == HALO_OK)
        st = jattrs_member(c, l, "attributes", NULL, &out->attrs);
    if (st == HALO_OK)
        st = otlp_ju32(c, l, "droppedAttributesCount",
                       "dropped_attributes_count", &out->dropped_attrs);
    if (st == HALO_OK)
        st = otlp_ju32(c, l, "flags", NULL, &out->flags);
    return st;
}

halo_status otlp_jlinks(otlp_jctx *c, json_t *arr, halo_link *links,
                        otlp_jlink_fn decode, bool *ok, char *why,
                        size_t why_size)
{
    for (size_t i = 0; i < json_array_size(arr) && *ok; i++) {
        char lwhy[128];
        size_t p = otlp_jpath_index(c, i);
        halo_status st =
            decode(c, json_array_get(arr, i), &links[i], ok, lwhy, sizeof lwhy);
        if (st != HALO_OK)
            return st;
        if (!*ok)
            snprintf(why, why_size, "links[%zu]: %s", i, lwhy);
        otlp_jpath_pop(c, p);
    }
    return HALO_OK;
}

static halo_status jlinks(otlp_jctx *c, json_t *sp, halo_span *hs, bool *ok,
                          char *why, size_t why_size)
{
    const char *used = NULL;
    json_t *arr;
    halo_status st = jarray_member(c, sp, "links", NULL, &arr, &used);
    if (st != HALO_OK || !arr || json_array_size(arr) == 0)
        return st;
    size_t n = json_array_size(arr);
    hs->links = halo_arena_calloc(c->arena, n, sizeof *hs->links);
    if (!hs->links)
        return otlp_jnomem(c);
    size_t p0 = otlp_jpath_field(c, used);
    st = otlp_jlinks(c, arr, hs->links, jlink, ok, why, why_size);
    if (st != HALO_OK)
        return st;
    otlp_jpath_pop(c, p0);
    hs->n_links = n;
    return HALO_OK;
}

static halo_status jstatus(otlp_jctx *c, json_t *sp, halo_span *hs)
{
    const char *used = NULL;
    json_t *s = otlp_jget(sp, "status", NULL, &used);
    if (!s)
        return HALO_OK;
    size_t p = otlp_jpath_field(c, used);
    if (!json_is_object(s))
        return otlp_jfail(c, "expected an object");
    halo_status st = otlp_jstr(c, s, "message", NULL, &hs->status_message);
    if (st == HALO_OK)
        st = jenum_member(c, s, "code", status_names, 3, &hs->status_code);
    if (st == HALO_OK)
        otlp_jpath_pop(c, p);
    return st;
}

/* The fields of a span after its ids. */
static halo_status jspan_body(otlp_jctx *c, json_t *sp, halo_span *hs)
{
    halo_status st =
        otlp_jstr(c, sp, "traceState", "trace_state", &hs->trace_state);
    if (st == HALO_OK)
        st = otlp_ju32(c, sp, "flags", NULL, &hs->flags);
    if (st == HALO_OK)
        st = otlp_jstr(c, sp, "name", NULL, &hs->name);
    if (st == HALO_OK)
        st = jenum_member(c, sp, "kind", kind_names, 6, &hs->kind);
    if (st == HALO_OK)
        st = otlp_ju64(c, sp, "startTimeUnixNano", "start_time_unix_nano",
                       &hs->start_ns);
    if (st == HALO_OK)
        st = otlp_ju64(c, sp, "endTimeUnixNano", "end_time_unix_nano",
                       &hs->end_ns);
    if (st == HALO_OK)
        st = jattrs_member(c, sp, "attributes", NULL, &hs->attrs);
    if (st == HALO_OK)
        st = otlp_ju32(c, sp, "droppedAttributesCount",
                       "dropped_attributes_count", &hs->dropped_attrs);
    if (st == HALO_OK)
        st = jevents(c, sp, hs);
    if (st == HALO_OK)
        st = otlp_ju32(c, sp, "droppedEventsCount", "dropped_events_count",
                       &hs->dropped_events);
    if (st == HALO_OK)
        st = otlp_ju32(c, sp, "droppedLinksCount", "dropped_links_count",
                       &hs->dropped_links);
    if (st == HALO_OK)
        st = jstatus(c, sp, hs);
    return st;
}

/* Decodes one span into hs; *kept false when it was rejected. */
static halo_status jspan(otlp_jctx *c, json_t *sp, halo_span *hs,
                         halo_otlp_result *out, bool *kept)
{
    uint8_t tid[16], sid[8], pid[8];
    size_t tlen, slen, plen;
    char why[160];
    *kept = false;
    memset(hs, 0, sizeof *hs);
    hs->trace_state = hs->name = hs->status_message = "";
    if (!json_is_object(sp))
        return otlp_jfail(c, "expected a span object");
    halo_status st = jid(c, sp, "traceId", "trace_id", 16, tid, 16, &tlen);
    if (st == HALO_OK)
        st = jid(c, sp, "spanId", "span_id", 8, sid, 8, &slen);
    if (st == HALO_OK)
        st = jid(c, sp, "parentSpanId", "parent_span_id", 8, pid, 8, &plen);
    if (st != HALO_OK)
        return st;
    if (!otlp_check_span_ids(tlen, tid, slen, sid, plen, why, sizeof why)) {
        otlp_reject(out, "%s: %s", c->path, why);
        return HALO_OK;
    }
    memcpy(hs->trace_id, tid, 16);
    memcpy(hs->span_id, sid, 8);
    if (plen == 8)
        memcpy(hs->parent_span_id, pid, 8);
    bool ok = true;
    st = jlinks(c, sp, hs, &ok, why, sizeof why);
    if (st != HALO_OK)
        return st;
    if (!ok) {
        otlp_reject(out, "%s: %s", c->path, why);
        return HALO_OK;
    }
    st = jspan_body(c, sp, hs);
    *kept = st == HALO_OK;
    return st;
}

static halo_status jscope_spans(otlp_jctx *c, json_t *ss,
                                const halo_resource *res, halo_otlp_result *out,
                                size_t cap)
{
    if (!json_is_object(ss))
        return otlp_jfail(c, "expected an object");
    const halo_scope *scope = &otlp_empty_scope;
    halo_status st = jscope(c, ss, &scope);
    if (st != HALO_OK)
        return st;
    const char *used = NULL;
    json_t *spans;
    st = jarray_member(c, ss, "spans", NULL, &spans, &used);
    if (st != HALO_OK || !spans)
        return st;
    size_t p0 = otlp_jpath_field(c, used);
    for (size_t k = 0; k < json_array_size(spans); k++) {
        size_t p = otlp_jpath_index(c, k);
        bool kept;
        halo_span hs;
        st = jspan(c, json_array_get(spans, k), &hs, out, &kept);
        if (st != HALO_OK)
            return st;
        if (kept) {
            if (out->n >= cap) /* cannot happen: count_spans counted it */
                return otlp_jfail(c, "internal error: span count");
            hs.resource = res;
            hs.scope = scope;
            out->spans[out->n++] = hs;
        }
        otlp_jpath_pop(c, p);
    }
    otlp_jpath_pop(c, p0);
    return HALO_OK;
}

static halo_status jresource_spans(otlp_jctx *c, json_t *rs,
                                   halo_otlp_result *out, size_t cap)
{
    if (!json_is_object(rs))
        return otlp_jfail(c, "expected an object");
    const halo_resource *res = &otlp_empty_resource;
    halo_status st = jresource(c, rs, &res);
    if (st != HALO_OK)
        return st;
    const char *used = NULL;
    json_t *arr = scope_spans_of(rs, &used);
    if (!arr)
        return HALO_OK;
    size_t p0 = otlp_jpath_field(c, used);
    if (!json_is_array(arr))
        return otlp_jfail(c, "expected an array");
    for (size_t s = 0; s < json_array_size(arr); s++) {
        size_t p = otlp_jpath_index(c, s);
        st = jscope_spans(c, json_array_get(arr, s), res, out, cap);
        if (st != HALO_OK)
            return st;
        otlp_jpath_pop(c, p);
    }
    otlp_jpath_pop(c, p0);
    return HALO_OK;
}

/* Upper bound of the spans the request can keep (for one allocation):
 * span objects with a trace id member. Not counting the rest keeps a body
 * of empty objects from claiming a span struct each. */
static size_t count_spans(json_t *rss)
{
    size_t total = 0;
    for (size_t r = 0; r < json_array_size(rss); r++) {
        json_t *rs = json_array_get(rss, r);
        json_t *sss = json_is_object(rs) ? scope_spans_of(rs, NULL) : NULL;
        for (size_t s = 0; s < json_array_size(sss); s++) {
            json_t *ss = json_array_get(sss, s);
            json_t *spans =
                json_is_object(ss) ? otlp_jget(ss, "spans", NULL, NULL) : NULL;
            for (size_t k = 0; k < json_array_size(spans); k++) {
                json_t *sp = json_array_get(spans, k);
                if (json_is_object(sp) &&
                    otlp_jget(sp, "traceId", "trace_id", NULL))
                    total++;
            }
        }
    }
    return total;
}

static halo_status jrequest(otlp_jctx *c, json_t *root, halo_otlp_result *out)
{
    if (!json_is_object(root))
        return otlp_jfail(c,
                          "expected a JSON object (ExportTraceServiceRequest)");
    const char *used = NULL;
    json_t *rss;
    halo_status st =
        jarray_member(c, root, "resourceSpans", "resource_spans", &rss, &used);
    if (st != HALO_OK || !rss)
        return st;
    size_t cap = count_spans(rss);
    if (cap) {
        out->spans = halo_arena_alloc(c->arena, cap * sizeof *out->spans);
        if (!out->spans)
            return otlp_jnomem(c);
    }
    size_t p0 = otlp_jpath_field(c, used);
    for (size_t r = 0; r < json_array_size(rss); r++) {
        size_t p = otlp_jpath_index(c, r);
        st = jresource_spans(c, json_array_get(rss, r), out, cap);
        if (st != HALO_OK)
            return st;
        otlp_jpath_pop(c, p);
    }
    otlp_jpath_pop(c, p0);
    return HALO_OK;
}

/* jansson's tree of one request may take at most 64 MiB plus 8 times the
 * text (core/json_budget.h). Real OTLP/JSON needs about 4 times its text
 * (53 MiB for a 13 MiB request of 100,000 attributes); an 8 MiB body of
 * empty objects would need 650 MiB. */
#define JSON_BASE_ALLOWANCE ((size_t)64 << 20)
#define JSON_MAX_EXPANSION 8

halo_status otlp_jdecode(const char *buf, size_t len, halo_arena *arena,
                         otlp_jdecode_fn decode, halo_otlp_result *out,
                         halo_err *err)
{
    json_error_t je;
    memset(out, 0, sizeof *out);
    size_t limit = JSON_BASE_ALLOWANCE +
                   (len < SIZE_MAX / 16 ? JSON_MAX_EXPANSION * len : len);
    halo_json_budget_begin(limit);
    json_t *root = json_loadb(buf ? buf : "", len, JSON_ALLOW_NUL, &je);
    bool over = halo_json_budget_end();
    if (!root && over)
        return halo_fail(err, HALO_ETOOBIG,
                         "request of %zu bytes would need more than %zu MiB "
                         "once parsed as JSON (limit)",
                         len, limit >> 20);
    if (!root)
        return halo_fail(err, HALO_EINVAL,
                         "invalid JSON at line %d column %d: %s", je.line,
                         je.column, je.text);
    otlp_jctx c = {.arena = arena, .err = err, .plen = 0, .path = ""};
    halo_status st = decode(&c, root, out);
    json_decref(root);
    if (st != HALO_OK) {
        out->spans = NULL;
        out->n = 0;
    }
    return st;
}

halo_status halo_otlp_decode_json(const char *buf, size_t len,
                                  halo_arena *arena, halo_otlp_result *out,
                                  halo_err *err)
{
    return otlp_jdecode(buf, len, arena, jrequest, out, err);
}

/* --- encoding ------------------------------------------------------------- */

typedef struct jenc {
    halo_buf *b;
    bool too_deep;
} jenc;

static void put_str(halo_buf *b, const char *s)
{
    s = s ? s : "";
    halo_buf_json_str(b, s, strlen(s));
}

static void put_hex(halo_buf *b, const uint8_t *id, size_t n)
{
    char hex[33];
    halo_hex_encode(id, n, hex);
    halo_buf_putc(b, '"');
    halo_buf_append(b, hex, 2 * n);
    halo_buf_putc(b, '"');
}

static void put_attrs(jenc *e, const halo_attrs *a, int depth);

static void put_value(jenc *e, const halo_value *v, int depth)
{
    halo_buf *b = e->b;
    if (depth > OTLP_MAX_VALUE_DEPTH) {
        e->too_deep = true;
        halo_buf_puts(b, "{}");
        return;
    }
    switch (v->type) {
    case HALO_VAL_EMPTY:
        halo_buf_puts(b, "{}");
        break;
    case HALO_VAL_STRING:
        halo_buf_puts(b, "{\"stringValue\":");
        halo_buf_json_str(b, v->u.s.ptr ? v->u.s.ptr : "", v->u.s.len);
        halo_buf_putc(b, '}');
        break;
    case HALO_VAL_BOOL:
        halo_buf_puts(b, v->u.b ? "{\"boolValue\":true}"
                                : "{\"boolValue\":false}");
        break;
    case HALO_VAL_INT:
        halo_buf_printf(b, "{\"intValue\":\"%lld\"}", (long long)v->u.i);
        break;
    case HALO_VAL_DOUBLE:
        halo_buf_puts(b, "{\"doubleValue\":");
        halo_buf_json_double(b, v->u.d);
        halo_buf_putc(b, '}');
        break;
    case HALO_VAL_BYTES:
        halo_buf_puts(b, "{\"bytesValue\":\"");
        halo_base64_encode(b, (const uint8_t *)v->u.s.ptr, v->u.s.len);
        halo_buf_puts(b, "\"}");
        break;
    case HALO_VAL_ARRAY:
        halo_buf_puts(b, "{\"arrayValue\":{\"values\":[");
        for (size_t i = 0; i < v->u.arr.n; i++) {
            if (i)
                halo_buf_putc(b, ',');
            put_value(e, &v->u.arr.items[i], depth + 1);
        }
        halo_buf_puts(b, "]}}");
        break;
    case HALO_VAL_KVLIST: {
        halo_attrs a = {v->u.kv.items, v->u.kv.n};
        halo_buf_puts(b, "{\"kvlistValue\":{\"values\":");
        put_attrs(e, &a, depth + 1);
        halo_buf_puts(b, "}}");
        break;
    }
    }
}

static void put_attrs(jenc *e, const halo_attrs *a, int depth)
{
    halo_buf_putc(e->b, '[');
    for (size_t i = 0; i < a->n; i++) {
        if (i)
            halo_buf_putc(e->b, ',');
        halo_buf_puts(e->b, "{\"key\":");
        put_str(e->b, a->items[i].key);
        halo_buf_puts(e->b, ",\"value\":");
        put_value(e, &a->items[i].value, depth);
        halo_buf_putc(e->b, '}');
    }
    halo_buf_putc(e->b, ']');
}

/* ,"name":[...] when there are attributes, ,"name":N when n > 0 */
static void put_attrs_member(jenc *e, const halo_attrs *a, uint32_t dropped)
{
    if (a->n) {
        halo_buf_puts(e->b, ",\"attributes\":");
        put_attrs(e, a, 1);
    }
    if (dropped)
        halo_buf_printf(e->b, ",\"droppedAttributesCount\":%u", dropped);
}

static void put_str_member(halo_buf *b, const char *name, const char *s)
{
    if (s && *s) {
        halo_buf_printf(b, ",\"%s\":", name);
        put_str(b, s);
    }
}

static void put_events(jenc *e, const halo_span *s)
{
    if (s->n_events == 0)
        return;
    halo_buf_puts(e->b, ",\"events\":[");
    for (size_t k = 0; k < s->n_events; k++) {
        const halo_event *ev = &s->events[k];
        if (k)
            halo_buf_putc(e->b, ',');
        halo_buf_printf(e->b, "{\"timeUnixNano\":\"%llu\",\"name\":",
                        (unsigned long long)ev->time_ns);
        put_str(e->b, ev->name);
        put_attrs_member(e, &ev->attrs, ev->dropped_attrs);
        halo_buf_putc(e->b, '}');
    }
    halo_buf_putc(e->b, ']');
}

static void put_links(jenc *e, const halo_span *s)
{
    if (s->n_links == 0)
        return;
    halo_buf_puts(e->b, ",\"links\":[");
    for (size_t k = 0; k < s->n_links; k++) {
        const halo_link *l = &s->links[k];
        if (k)
            halo_buf_putc(e->b, ',');
        halo_buf_puts(e->b, "{\"traceId\":");
        put_hex(e->b, l->trace_id, 16);
        halo_buf_puts(e->b, ",\"spanId\":");
        put_hex(e->b, l->span_id, 8);
        put_str_member(e->b, "traceState", l->trace_state);
        put_attrs_member(e, &l->attrs, l->dropped_attrs);
        if (l->flags)
            halo_buf_printf(e->b, ",\"flags\":%u", l->flags);
        halo_buf_putc(e->b, '}');
    }
    halo_buf_putc(e->b, ']');
}

static void put_span(jenc *e, const halo_span *s)
{
    halo_buf *b = e->b;
    halo_buf_puts(b, "{\"traceId\":");
    put_hex(b, s->trace_id, 16);
    halo_buf_puts(b, ",\"spanId\":");
    put_hex(b, s->span_id, 8);
    put_str_member(b, "traceState", s->trace_state);
    if (!halo_span_is_root(s)) {
        halo_buf_puts(b, ",\"parentSpanId\":");
        put_hex(b, s->parent_span_id, 8);
    }
    if (s->flags)
        halo_buf_printf(b, ",\"flags\":%u", s->flags);
    halo_buf_puts(b, ",\"name\":");
    put_str(b, s->name);
    halo_buf_printf(b,
                    ",\"kind\":%d,\"startTimeUnixNano\":\"%llu\","
                    "\"endTimeUnixNano\":\"%llu\"",
                    s->kind, (unsigned long long)s->start_ns,
                    (unsigned long long)s->end_ns);
    put_attrs_member(e, &s->attrs, s->dropped_attrs);
    put_events(e, s);
    if (s->dropped_events)
        halo_buf_printf(b, ",\"droppedEventsCount\":%u", s->dropped_events);
    put_links(e, s);
    if (s->dropped_links)
        halo_buf_printf(b, ",\"droppedLinksCount\":%u", s->dropped_links);
    if (s->status_code || (s->status_message && *s->status_message)) {
        halo_buf_puts(b, ",\"status\":{");
        if (s->status_message && *s->status_message) {
            halo_buf_puts(b, "\"message\":");
            put_str(b, s->status_message);
            halo_buf_putc(b, ',');
        }
        halo_buf_printf(b, "\"code\":%d}", s->status_code);
    }
    halo_buf_putc(b, '}');
}

static void put_scope_spans(jenc *e, const halo_span *const *spans, size_t n)
{
    const halo_scope *sc =
        spans[0]->scope ? spans[0]->scope : &otlp_empty_scope;
    halo_buf *b = e->b;
    halo_buf_putc(b, '{');
    if (sc != &otlp_empty_scope) {
        halo_buf_puts(b, "\"scope\":{\"name\":");
        put_str(b, sc->name);
        put_str_member(b, "version", sc->version);
        put_attrs_member(e, &sc->attrs, sc->dropped_attrs);
        halo_buf_puts(b, "},");
    }
    halo_buf_puts(b, "\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            halo_buf_putc(b, ',');
        put_span(e, spans[i]);
    }
    halo_buf_putc(b, ']');
    put_str_member(b, "schemaUrl", sc->schema_url);
    halo_buf_putc(b, '}');
}

static void put_resource_spans(jenc *e, const halo_span *const *spans, size_t n)
{
    const halo_resource *r =
        spans[0]->resource ? spans[0]->resource : &otlp_empty_resource;
    halo_buf *b = e->b;
    halo_buf_putc(b, '{');
    if (r != &otlp_empty_resource) {
        /* {"resource":{ "attributes":[...] ... }} without a leading comma */
        halo_buf_puts(b, "\"resource\":{\"attributes\":");
        put_attrs(e, &r->attrs, 1);
        if (r->dropped_attrs)
            halo_buf_printf(b, ",\"droppedAttributesCount\":%u",
                            r->dropped_attrs);
        halo_buf_puts(b, "},");
    }
    halo_buf_puts(b, "\"scopeSpans\":[");
    for (size_t i = 0; i < n;) {
        size_t run = otlp_scope_run_refs(spans, n, i);
        if (i)
            halo_buf_putc(b, ',');
        put_scope_spans(e, spans + i, run);
        i += run;
    }
    halo_buf_putc(b, ']');
    put_str_member(b, "schemaUrl", r->schema_url);
    halo_buf_putc(b, '}');
}

halo_status halo_otlp_encode_json_refs(const halo_span *const *spans, size_t n,
                                       halo_buf *out)
{
    jenc e = {out, false};
    halo_buf_puts(out, "{\"resourceSpans\":[");
    for (size_t i = 0; i < n;) {
        size_t run = otlp_resource_run_refs(spans, n, i);
        if (i)
            halo_buf_putc(out, ',');
        put_resource_spans(&e, spans + i, run);
        i += run;
    }
    halo_buf_puts(out, "]}");
    if (out->oom)
        return HALO_ENOMEM;
    return e.too_deep ? HALO_EINVAL : HALO_OK;
}

halo_status halo_otlp_encode_json(const halo_span *spans, size_t n,
                                  halo_buf *out)
{
    const halo_span **refs = otlp_span_refs(spans, n);
    if (!refs)
        return HALO_ENOMEM;
    halo_status st = halo_otlp_encode_json_refs(refs, n, out);
    free(refs);
    return st;
}

/* --- responses ------------------------------------------------------------ */

void halo_otlp_response_json(int64_t rejected, const char *msg, halo_buf *out)
{
    if (rejected <= 0) {
        halo_buf_puts(out, "{}");
        return;
    }
    halo_buf_printf(out, "{\"partialSuccess\":{\"rejectedSpans\":\"%lld\"",
                    (long long)rejected);
    put_str_member(out, "errorMessage", msg);
    halo_buf_puts(out, "}}");
}

void halo_rpc_status_json(int code, const char *msg, halo_buf *out)
{
    halo_buf_printf(out, "{\"code\":%d,\"message\":", code);
    put_str(out, msg);
    halo_buf_putc(out, '}');
}
