/*
 * fuzz_otlp_pb_diff.c -- differential libFuzzer target: the direct wire
 * decoder (otlp_decode_pbwire) against the protobuf-c reference
 * (otlp_decode_pb_reference).
 *
 * Both decode the input into arenas of their own; they must return the same
 * status and error message, the same span count, rejected count and reject
 * message, and spans equal field by field (ids, strings, scalars, status,
 * attributes compared deeply with otlp_attrs_equal, events, links, resource
 * and scope, including whether each is the shared empty one). Any
 * difference aborts with what differed.
 *
 *   cmake -S . -B build-fuzz -DHALO_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *   build-fuzz/fuzz_otlp_pb_diff tests/fuzz/corpus/fuzz_otlp_pb \
 *       -max_total_time=60
 */
#include "core/arena.h"
#include "receivers/otlp/otlp_codec_internal.h"
#include "receivers/otlp/otlp_codec_pbwire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool str_same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* Attribute lists must match and agree on "no items" (NULL when empty). */
static bool attrs_same(const halo_attrs *a, const halo_attrs *b)
{
    if ((a->items == NULL) != (b->items == NULL))
        return false;
    for (size_t i = 0; i < a->n && i < b->n; i++)
        if (!a->items[i].key || !b->items[i].key)
            return false;
    return otlp_attrs_equal(a, b);
}

static const char *span_differs(const halo_span *a, const halo_span *b)
{
    if (memcmp(a->trace_id, b->trace_id, 16) ||
        memcmp(a->span_id, b->span_id, 8) ||
        memcmp(a->parent_span_id, b->parent_span_id, 8))
        return "ids";
    if (!str_same(a->trace_state, b->trace_state) ||
        !str_same(a->name, b->name) ||
        !str_same(a->status_message, b->status_message))
        return "strings";
    if (a->flags != b->flags || a->kind != b->kind ||
        a->start_ns != b->start_ns || a->end_ns != b->end_ns ||
        a->status_code != b->status_code ||
        a->dropped_attrs != b->dropped_attrs ||
        a->dropped_events != b->dropped_events ||
        a->dropped_links != b->dropped_links)
        return "scalars";
    if (!attrs_same(&a->attrs, &b->attrs))
        return "attributes";
    if (a->n_events != b->n_events || a->n_links != b->n_links ||
        (a->events == NULL) != (b->events == NULL) ||
        (a->links == NULL) != (b->links == NULL))
        return "event or link counts";
    for (size_t i = 0; i < a->n_events; i++) {
        const halo_event *x = &a->events[i], *y = &b->events[i];
        if (x->time_ns != y->time_ns || !str_same(x->name, y->name) ||
            x->dropped_attrs != y->dropped_attrs ||
            !attrs_same(&x->attrs, &y->attrs))
            return "events";
    }
    for (size_t i = 0; i < a->n_links; i++) {
        const halo_link *x = &a->links[i], *y = &b->links[i];
        if (memcmp(x->trace_id, y->trace_id, 16) ||
            memcmp(x->span_id, y->span_id, 8) ||
            !str_same(x->trace_state, y->trace_state) || x->flags != y->flags ||
            x->dropped_attrs != y->dropped_attrs ||
            !attrs_same(&x->attrs, &y->attrs))
            return "links";
    }
    if ((a->resource == &otlp_empty_resource) !=
            (b->resource == &otlp_empty_resource) ||
        (a->scope == &otlp_empty_scope) != (b->scope == &otlp_empty_scope))
        return "empty resource or scope";
    const halo_resource *r1 = a->resource, *r2 = b->resource;
    if (!str_same(r1->schema_url, r2->schema_url) ||
        r1->dropped_attrs != r2->dropped_attrs ||
        !attrs_same(&r1->attrs, &r2->attrs))
        return "resource";
    const halo_scope *s1 = a->scope, *s2 = b->scope;
    if (!str_same(s1->name, s2->name) || !str_same(s1->version, s2->version) ||
        !str_same(s1->schema_url, s2->schema_url) ||
        s1->dropped_attrs != s2->dropped_attrs ||
        !attrs_same(&s1->attrs, &s2->attrs))
        return "scope";
    return NULL;
}

static void differ(const char *what, const halo_err *e1, const halo_err *e2)
{
    fprintf(stderr, "decoders differ: %s (reference \"%s\", wire \"%s\")\n",
            what, e1->msg, e2->msg);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    halo_arena *a1 = halo_arena_new(0), *a2 = halo_arena_new(0);
    halo_otlp_result r1, r2;
    halo_err e1 = {{0}}, e2 = {{0}};
    if (!a1 || !a2)
        abort();
    halo_status s1 = otlp_decode_pb_reference(data, size, a1, &r1, &e1);
    halo_status s2 = otlp_decode_pbwire(data, size, 0, a2, &r2, &e2);
    if (s1 != s2)
        differ("status", &e1, &e2);
    if (s1 != HALO_OK && strcmp(e1.msg, e2.msg) != 0)
        differ("error message", &e1, &e2);
    if (r1.n != r2.n || r1.rejected != r2.rejected ||
        strcmp(r1.reject_msg, r2.reject_msg) != 0 ||
        (r1.spans == NULL) != (r2.spans == NULL))
        differ("counts or reject message", &e1, &e2);
    for (size_t i = 0; i < r1.n; i++) {
        const char *why = span_differs(&r1.spans[i], &r2.spans[i]);
        if (!why && i > 0 &&
            ((r1.spans[i].resource == r1.spans[i - 1].resource) !=
                 (r2.spans[i].resource == r2.spans[i - 1].resource) ||
             (r1.spans[i].scope == r1.spans[i - 1].scope) !=
                 (r2.spans[i].scope == r2.spans[i - 1].scope)))
            why = "resource or scope sharing";
        if (why)
            differ(why, &e1, &e2);
    }
    halo_arena_free(a1);
    halo_arena_free(a2);
    return 0;
}
