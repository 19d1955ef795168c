/*
 * otlp_codec_common.c -- the pieces every OTLP codec shares.
 *
 * - the shared empty resource and scope that spans without one point to
 *   (span.h promises non-NULL resource and scope pointers);
 * - the per-span id rules of OTLP: a span whose trace id is not 16 bytes or
 *   all zero, whose span id is not 8 bytes or all zero, or whose parent id
 *   is neither empty nor 8 bytes is left out of the request and counted
 *   for partial_success, with the first reason kept for the response;
 * - deep equality of values, resources and scopes, by which the encoders
 *   put consecutive spans under one resourceSpans / scopeSpans entry.
 */
#include "otlp_codec_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const halo_resource otlp_empty_resource = {
    .attrs = {NULL, 0}, .dropped_attrs = 0, .schema_url = ""};
const halo_scope otlp_empty_scope = {.name = "",
                                     .version = "",
                                     .attrs = {NULL, 0},
                                     .dropped_attrs = 0,
                                     .schema_url = ""};

void otlp_reject(halo_otlp_result *out, const char *fmt, ...)
{
    if (out->rejected++ > 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reject_msg, sizeof out->reject_msg, fmt, ap);
    va_end(ap);
}

static bool check_id(const char *what, size_t len, size_t want,
                     const uint8_t *id, char *why, size_t why_size)
{
    if (len != want) {
        snprintf(why, why_size, "invalid %s (length %zu, expected %zu)", what,
                 len, want);
        return false;
    }
    if (id && halo_bytes_zero(id, len)) {
        snprintf(why, why_size, "invalid %s (all zero)", what);
        return false;
    }
    return true;
}

bool otlp_check_span_ids(size_t trace_len, const uint8_t *trace_id,
                         size_t span_len, const uint8_t *span_id,
                         size_t parent_len, char *why, size_t why_size)
{
    if (!check_id("trace_id", trace_len, 16, trace_id, why, why_size))
        return false;
    if (!check_id("span_id", span_len, 8, span_id, why, why_size))
        return false;
    if (parent_len != 0 && parent_len != 8) {
        snprintf(why, why_size,
                 "invalid parent_span_id (length %zu, expected 0 or 8)",
                 parent_len);
        return false;
    }
    return true;
}

bool otlp_check_link_ids(size_t trace_len, size_t span_len, char *why,
                         size_t why_size)
{
    return check_id("trace_id", trace_len, 16, NULL, why, why_size) &&
           check_id("span_id", span_len, 8, NULL, why, why_size);
}

/* --- equality ------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

bool otlp_value_equal(const halo_value *a, const halo_value *b)
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
        if (isnan(a->u.d) || isnan(b->u.d))
            return isnan(a->u.d) && isnan(b->u.d);
        return memcmp(&a->u.d, &b->u.d, sizeof a->u.d) == 0;
    case HALO_VAL_ARRAY:
        if (a->u.arr.n != b->u.arr.n)
            return false;
        for (size_t i = 0; i < a->u.arr.n; i++)
            if (!otlp_value_equal(&a->u.arr.items[i], &b->u.arr.items[i]))
                return false;
        return true;
    case HALO_VAL_KVLIST: {
        halo_attrs x = {a->u.kv.items, a->u.kv.n};
        halo_attrs y = {b->u.kv.items, b->u.kv.n};
        return otlp_attrs_equal(&x, &y);
    }
    }
    return false;
}

bool otlp_attrs_equal(const halo_attrs *a, const halo_attrs *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        if (!str_eq(a->items[i].key, b->items[i].key) ||
            !otlp_value_equal(&a->items[i].value, &b->items[i].value))
            return false;
    }
    return true;
}

bool otlp_resource_equal(const halo_resource *a, const halo_resource *b)
{
    a = a ? a : &otlp_empty_resource;
    b = b ? b : &otlp_empty_resource;
    if (a == b)
        return true;
    return a->dropped_attrs == b->dropped_attrs &&
           str_eq(a->schema_url, b->schema_url) &&
           otlp_attrs_equal(&a->attrs, &b->attrs);
}

bool otlp_scope_equal(const halo_scope *a, const halo_scope *b)
{
    a = a ? a : &otlp_empty_scope;
    b = b ? b : &otlp_empty_scope;
    if (a == b)
        return true;
    return a->dropped_attrs == b->dropped_attrs && str_eq(a->name, b->name) &&
           str_eq(a->version, b->version) &&
           str_eq(a->schema_url, b->schema_url) &&
           otlp_attrs_equal(&a->attrs, &b->attrs);
}
