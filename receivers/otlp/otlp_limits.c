/*
 * otlp_limits.c -- the limits section of the OTLP receiver and their
 * enforcement over a decoded request (otlp_limits.h).
 *
 * Cost: the span count is one comparison. The attribute limits compare the
 * size of every list (span, events, links, each distinct resource and
 * scope) with max_attributes_per_span; values are only visited when the
 * request's body is longer than max_attribute_value_length (a decoded value
 * is never longer than the bytes it came from), which the default 1 MiB
 * makes rare. Nothing is allocated unless a value is cut: the cut copy
 * (at most max_attribute_value_length + 1 bytes) comes from the request's
 * arena, the original stays there until the request is freed.
 */
#include "otlp_limits.h"

#include "otlp_codec.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const halo_field otlp_limits_schema[] = {
    {.key = "max_spans_per_request",
     .type = HALO_F_INT,
     .offset = offsetof(otlp_limits_cfg, max_spans_per_request),
     .def = "100000",
     .min = 1,
     .max = 10000000,
     .description = "spans one Export may carry (more: the request is "
                    "refused with RESOURCE_EXHAUSTED / 413)"},
    {.key = "max_attributes_per_span",
     .type = HALO_F_INT,
     .offset = offsetof(otlp_limits_cfg, max_attributes_per_span),
     .def = "1024",
     .min = 1,
     .max = 1000000,
     .description = "attributes kept per span, event, link, resource and "
                    "scope (the rest are dropped and counted)"},
    {.key = "max_attribute_value_length",
     .type = HALO_F_SIZE,
     .offset = offsetof(otlp_limits_cfg, max_attribute_value_length),
     .def = "1MiB",
     .min = 64,
     .max = 1024.0 * 1024.0 * 1024.0,
     .description = "longest string or bytes attribute value kept (longer: "
                    "cut, a marker appended, counted)"},
    {.key = NULL},
};

/* Values nested deeper than this are not visited (the decoders stop at
 * OTLP_MAX_VALUE_DEPTH = 32; this only bounds the recursion for spans
 * built some other way). */
#define MAX_WALK_DEPTH 64

halo_status otlp_limits_check_spans(const otlp_limits_cfg *cfg, size_t n_spans,
                                    halo_err *err)
{
    int64_t max = cfg->max_spans_per_request;
    if (max <= 0 || n_spans <= (uint64_t)max)
        return HALO_OK;
    return halo_fail(err, HALO_ETOOBIG, HALO_OTLP_TOO_MANY_SPANS, n_spans,
                     (size_t)max);
}

size_t otlp_limits_utf8_prefix(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t cut = max;
    /* s[cut] is the first byte left out: while it continues a sequence,
     * the character it belongs to is left out as a whole */
    for (int back = 0; back < 3 && cut > 0; back++) {
        if (((unsigned char)s[cut] & 0xc0) != 0x80)
            break;
        cut--;
    }
    return cut;
}

size_t otlp_limits_marker(char *buf, size_t size, size_t original_len)
{
    int n = snprintf(buf, size, "%s%zu%s", OTLP_LIMITS_MARKER_HEAD,
                     original_len, OTLP_LIMITS_MARKER_TAIL);
    return n < 0 ? 0 : (size_t)n;
}

typedef struct lctx {
    halo_arena *arena;
    size_t max_attrs; /* 0: no limit */
    size_t max_len;   /* 0: values are not visited */
    otlp_limits_stats *st;
} lctx;

/* Replace v's string/bytes with its cut copy plus the marker. */
static halo_status cut_value(lctx *c, halo_value *v)
{
    char marker[OTLP_LIMITS_MARKER_MAX + 1];
    size_t mlen = otlp_limits_marker(marker, sizeof marker, v->u.s.len);
    size_t room = c->max_len > mlen ? c->max_len - mlen : 0;
    size_t keep = v->type == HALO_VAL_STRING
                      ? otlp_limits_utf8_prefix(v->u.s.ptr, v->u.s.len, room)
                      : room;
    char *p = halo_arena_alloc(c->arena, keep + mlen + 1);
    if (!p)
        return HALO_ENOMEM;
    memcpy(p, v->u.s.ptr, keep);
    memcpy(p + keep, marker, mlen);
    p[keep + mlen] = '\0';
    v->u.s.ptr = p;
    v->u.s.len = keep + mlen;
    c->st->values_truncated++;
    return HALO_OK;
}

static halo_status walk_value(lctx *c, halo_value *v, int depth)
{
    halo_status st = HALO_OK;
    switch (v->type) {
    case HALO_VAL_STRING:
    case HALO_VAL_BYTES:
        if (v->u.s.len > c->max_len && v->u.s.ptr)
            st = cut_value(c, v);
        break;
    case HALO_VAL_ARRAY:
        for (size_t i = 0; i < v->u.arr.n && depth < MAX_WALK_DEPTH; i++) {
            st = walk_value(c, &v->u.arr.items[i], depth + 1);
            if (st != HALO_OK)
                break;
        }
        break;
    case HALO_VAL_KVLIST:
        for (size_t i = 0; i < v->u.kv.n && depth < MAX_WALK_DEPTH; i++) {
            st = walk_value(c, &v->u.kv.items[i].value, depth + 1);
            if (st != HALO_OK)
                break;
        }
        break;
    default:
        break;
    }
    return st;
}

/* One attribute list and the dropped count of its owner. Returns whether
 * anything changed through *changed. */
static halo_status limit_attrs(lctx *c, halo_attrs *a, uint32_t *dropped,
                               bool *changed)
{
    if (c->max_attrs && a->n > c->max_attrs) {
        size_t d = a->n - c->max_attrs;
        a->n = c->max_attrs;
        uint64_t sum = (uint64_t)*dropped + d;
        *dropped = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
        c->st->attrs_dropped += d;
        *changed = true;
    }
    if (!c->max_len)
        return HALO_OK;
    uint64_t before = c->st->values_truncated;
    halo_status st = HALO_OK;
    for (size_t i = 0; i < a->n && st == HALO_OK; i++)
        st = walk_value(c, &a->items[i].value, 1);
    if (c->st->values_truncated != before)
        *changed = true;
    return st;
}

/* Everything one span owns: its attributes, events and links. */
static halo_status limit_span(lctx *c, halo_span *s, bool *changed)
{
    halo_status st = limit_attrs(c, &s->attrs, &s->dropped_attrs, changed);
    for (size_t i = 0; i < s->n_events && st == HALO_OK; i++)
        st = limit_attrs(c, &s->events[i].attrs, &s->events[i].dropped_attrs,
                         changed);
    for (size_t i = 0; i < s->n_links && st == HALO_OK; i++)
        st = limit_attrs(c, &s->links[i].attrs, &s->links[i].dropped_attrs,
                         changed);
    return st;
}

/* The span's resource and scope, unless the previous span shared them.
 * They were allocated (non-const) in the request's arena by the decoder,
 * which the receiver still owns here, so changing them is allowed; doing
 * it twice changes nothing (a cut value fits the limit). */
static halo_status limit_shared(lctx *c, const halo_span *s,
                                const halo_span *prev, bool *changed)
{
    halo_status st = HALO_OK;
    if (s->resource && (!prev || prev->resource != s->resource)) {
        halo_resource *r = (halo_resource *)s->resource;
        st = limit_attrs(c, &r->attrs, &r->dropped_attrs, changed);
    }
    if (st == HALO_OK && s->scope && (!prev || prev->scope != s->scope)) {
        halo_scope *sc = (halo_scope *)s->scope;
        st = limit_attrs(c, &sc->attrs, &sc->dropped_attrs, changed);
    }
    return st;
}

halo_status otlp_limits_apply(const otlp_limits_cfg *cfg, halo_span *spans,
                              size_t n, size_t value_bound, halo_arena *arena,
                              otlp_limits_stats *st)
{
    memset(st, 0, sizeof *st);
    st->first_span = SIZE_MAX;
    lctx c = {arena, 0, 0, st};
    if (cfg->max_attributes_per_span > 0)
        c.max_attrs = (size_t)cfg->max_attributes_per_span;
    if (cfg->max_attribute_value_length > 0 &&
        value_bound > (uint64_t)cfg->max_attribute_value_length)
        c.max_len = (size_t)cfg->max_attribute_value_length;
    if (!c.max_attrs && !c.max_len)
        return HALO_OK;
    halo_status rc = HALO_OK;
    for (size_t i = 0; i < n && rc == HALO_OK; i++) {
        bool changed = false;
        rc = limit_shared(&c, &spans[i], i ? &spans[i - 1] : NULL, &changed);
        if (rc == HALO_OK)
            rc = limit_span(&c, &spans[i], &changed);
        if (changed) {
            if (!st->spans_touched)
                st->first_span = i;
            st->spans_touched++;
        }
    }
    return rc;
}
