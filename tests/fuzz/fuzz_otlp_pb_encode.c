/*
 * fuzz_otlp_pb_encode.c -- differential libFuzzer target for the protobuf
 * encoders: the direct wire encoder (otlp_encode_pbenc, what
 * halo_otlp_encode_pb runs) against the protobuf-c reference
 * (otlp_encode_pb_reference).
 *
 * The input is decoded with halo_otlp_decode_pb; when it decodes, its spans
 * are encoded by both encoders, which must return the same status and write
 * the same bytes. Those bytes must decode again into as many spans, equal
 * field by field to the first decoding (attributes, resource and scope
 * compared deeply with the codec's otlp_*_equal), and encoding those must
 * give the same bytes once more. The spans are then encoded through
 * halo_otlp_encode_pb_refs in reverse order, which must match the reversed
 * contiguous array. Any difference aborts with what differed.
 *
 *   cmake -S . -B build-fuzz -DHALO_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *   build-fuzz/fuzz_otlp_pb_encode tests/fuzz/corpus/fuzz_otlp_pb_encode \
 *       -max_total_time=60
 */
#include "core/arena.h"
#include "core/buf.h"
#include "receivers/otlp/otlp_codec_enc.h"
#include "receivers/otlp/otlp_codec_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_otlp_pb_encode: %s\n", what);
    abort();
}

static bool str_same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool events_same(const halo_span *a, const halo_span *b)
{
    for (size_t i = 0; i < a->n_events; i++) {
        const halo_event *x = &a->events[i], *y = &b->events[i];
        if (x->time_ns != y->time_ns || !str_same(x->name, y->name) ||
            x->dropped_attrs != y->dropped_attrs ||
            !otlp_attrs_equal(&x->attrs, &y->attrs))
            return false;
    }
    return true;
}

static bool links_same(const halo_span *a, const halo_span *b)
{
    for (size_t i = 0; i < a->n_links; i++) {
        const halo_link *x = &a->links[i], *y = &b->links[i];
        if (memcmp(x->trace_id, y->trace_id, 16) ||
            memcmp(x->span_id, y->span_id, 8) ||
            !str_same(x->trace_state, y->trace_state) || x->flags != y->flags ||
            x->dropped_attrs != y->dropped_attrs ||
            !otlp_attrs_equal(&x->attrs, &y->attrs))
            return false;
    }
    return true;
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
    if (!otlp_attrs_equal(&a->attrs, &b->attrs))
        return "attributes";
    if (a->n_events != b->n_events || !events_same(a, b))
        return "events";
    if (a->n_links != b->n_links || !links_same(a, b))
        return "links";
    if (!otlp_resource_equal(a->resource, b->resource))
        return "resource";
    if (!otlp_scope_equal(a->scope, b->scope))
        return "scope";
    return NULL;
}

/* Both encoders over refs: same status, same bytes (left in *out). */
static halo_status encode_both(const halo_span *const *refs, size_t n,
                               halo_buf *out)
{
    halo_buf ref = HALO_BUF_INIT;
    halo_status s1 = otlp_encode_pb_reference(refs, n, &ref);
    halo_status s2 = otlp_encode_pbenc(refs, n, out);
    if (s1 != s2)
        fail("encoders disagree on the status");
    if (s1 == HALO_OK &&
        (ref.len != out->len || memcmp(ref.data, out->data, ref.len) != 0))
        fail("encoders wrote different bytes");
    halo_buf_free(&ref);
    return s1;
}

static void check_reversed(const halo_otlp_result *r)
{
    const halo_span **refs = otlp_span_refs(r->spans, r->n);
    halo_span *rev = malloc((r->n ? r->n : 1) * sizeof *rev);
    if (!refs || !rev)
        fail("out of memory");
    for (size_t i = 0; i < r->n; i++) {
        refs[i] = &r->spans[r->n - 1 - i];
        rev[i] = r->spans[r->n - 1 - i];
    }
    halo_buf b = HALO_BUF_INIT;
    uint8_t *pb = NULL;
    size_t len = 0;
    if (halo_otlp_encode_pb_refs(refs, r->n, &b) != HALO_OK ||
        halo_otlp_encode_pb(rev, r->n, &pb, &len) != HALO_OK)
        fail("reversed spans do not encode");
    if (b.len != len || memcmp(b.data, pb, len) != 0)
        fail("_refs differs from the contiguous array");
    free(pb);
    halo_buf_free(&b);
    free(rev);
    free(refs);
}

static void check(const halo_otlp_result *r)
{
    const halo_span **refs = otlp_span_refs(r->spans, r->n);
    if (!refs)
        fail("out of memory");
    halo_buf once = HALO_BUF_INIT, twice = HALO_BUF_INIT;
    /* decoded values nest at most as deep as the encoders accept */
    if (encode_both(refs, r->n, &once) != HALO_OK)
        fail("decoded spans do not encode");
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result back;
    halo_err err;
    if (!a)
        fail("out of memory");
    if (halo_otlp_decode_pb((const uint8_t *)once.data, once.len, a, &back,
                            &err) != HALO_OK)
        fail(err.msg);
    if (back.n != r->n || back.rejected != 0)
        fail("span count changed in the round trip");
    for (size_t i = 0; i < r->n; i++) {
        const char *d = span_differs(&r->spans[i], &back.spans[i]);
        if (d)
            fail(d);
    }
    const halo_span **brefs = otlp_span_refs(back.spans, back.n);
    if (!brefs)
        fail("out of memory");
    if (encode_both(brefs, back.n, &twice) != HALO_OK ||
        twice.len != once.len || memcmp(twice.data, once.data, once.len) != 0)
        fail("encoding the round trip gave other bytes");
    free(brefs);
    halo_arena_free(a);
    halo_buf_free(&once);
    halo_buf_free(&twice);
    free(refs);
    check_reversed(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    halo_arena *arena = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err;
    if (!arena)
        return 0;
    if (halo_otlp_decode_pb(data, size, arena, &r, &err) == HALO_OK)
        check(&r);
    halo_arena_free(arena);
    return 0;
}
