/*
 * kafka_encode.c -- grouping a batch's spans by trace id and encoding each
 * group into messages under the size limit (see kafka_encode.h).
 */
#include "kafka_encode.h"

#include "receivers/otlp/otlp_codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- grouping ------------------------------------------------------------ */

void kx_groups_free(kx_groups *g)
{
    free(g->refs);
    free(g->starts);
    memset(g, 0, sizeof *g);
}

/* Trace ids are random in practice but sequential in tests: mix both
 * halves. */
static size_t trace_hash(const uint8_t id[16])
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    return (size_t)(h ^ (h >> 32));
}

/* Every span pointer in batch order; returns the count. */
static size_t collect(const halo_batch *b, const halo_span **refs, size_t cap)
{
    size_t n = 0;
    HALO_BATCH_FOREACH(b, c, sp)
    {
        if (n == cap)
            return n;
        refs[n++] = sp;
    }
    return n;
}

static size_t count_spans(const halo_batch *b)
{
    size_t n = 0;
    for (const halo_chunk *c = b->head; c; c = c->next)
        n += c->n;
    return n;
}

/* Scratch of the trace grouping. */
typedef struct group_scratch {
    uint32_t *slots; /* hash table: group index + 1, 0 = empty */
    size_t mask;
    uint32_t *gid;           /* group of span i */
    const halo_span **first; /* first span of each group */
    size_t *count;           /* spans per group, then placement cursor */
} group_scratch;

/* The group of span s, adding a new one when its trace is new. */
static uint32_t group_of(group_scratch *s, size_t *n_groups,
                         const halo_span *sp)
{
    size_t h = trace_hash(sp->trace_id) & s->mask;
    for (;;) {
        uint32_t slot = s->slots[h];
        if (slot == 0) {
            uint32_t g = (uint32_t)(*n_groups)++;
            s->slots[h] = g + 1;
            s->first[g] = sp;
            s->count[g] = 0;
            return g;
        }
        if (memcmp(s->first[slot - 1]->trace_id, sp->trace_id, 16) == 0)
            return slot - 1;
        h = (h + 1) & s->mask;
    }
}

/* Reorder g->refs group after group (stable), filling g->starts. */
static halo_status by_trace(kx_groups *g, group_scratch *s)
{
    size_t n = g->n, n_groups = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t gi = group_of(s, &n_groups, g->refs[i]);
        s->gid[i] = gi;
        s->count[gi]++;
    }
    g->starts = malloc((n_groups + 1) * sizeof *g->starts);
    const halo_span **out = malloc(n * sizeof *out);
    if (!g->starts || !out) {
        free(out);
        return HALO_ENOMEM;
    }
    size_t pos = 0;
    for (size_t k = 0; k < n_groups; k++) {
        g->starts[k] = pos;
        pos += s->count[k];
        s->count[k] = g->starts[k]; /* now the placement cursor */
    }
    g->starts[n_groups] = n;
    for (size_t i = 0; i < n; i++)
        out[s->count[s->gid[i]]++] = g->refs[i];
    free(g->refs);
    g->refs = out;
    g->n_groups = n_groups;
    return HALO_OK;
}

halo_status kx_group(const halo_batch *b, bool by_trace_id, kx_groups *g)
{
    memset(g, 0, sizeof *g);
    size_t n = count_spans(b);
    if (n == 0)
        return HALO_OK;
    if (n >= UINT32_MAX / 4)
        return HALO_EINVAL;
    g->refs = malloc(n * sizeof *g->refs);
    if (!g->refs)
        return HALO_ENOMEM;
    g->n = collect(b, g->refs, n);
    if (!by_trace_id) {
        g->starts = malloc(2 * sizeof *g->starts);
        if (!g->starts)
            return HALO_ENOMEM;
        g->starts[0] = 0;
        g->starts[1] = g->n;
        g->n_groups = 1;
        return HALO_OK;
    }
    size_t cap = 16;
    while (cap < 2 * g->n)
        cap *= 2;
    group_scratch s = {.mask = cap - 1};
    s.slots = calloc(cap, sizeof *s.slots);
    s.gid = malloc(g->n * sizeof *s.gid);
    s.first = malloc(g->n * sizeof *s.first);
    s.count = malloc(g->n * sizeof *s.count);
    halo_status st = HALO_ENOMEM;
    if (s.slots && s.gid && s.first && s.count)
        st = by_trace(g, &s);
    free(s.slots);
    free(s.gid);
    free(s.first);
    free(s.count);
    return st;
}

/* ---- encoding and splitting ---------------------------------------------- */

void kx_encoder_free(kx_encoder *enc)
{
    halo_buf_free(&enc->buf);
}

static halo_status encode(kx_encoder *enc, const halo_span *const *spans,
                          size_t n, halo_err *err)
{
    halo_buf_reset(&enc->buf);
    halo_status st = enc->encoding == KX_OTLP_JSON
                         ? halo_otlp_encode_json_refs(spans, n, &enc->buf)
                         : halo_otlp_encode_pb_refs(spans, n, &enc->buf);
    if (st == HALO_OK && enc->buf.oom)
        st = HALO_ENOMEM;
    if (st != HALO_OK)
        return halo_fail(err, st, "could not encode %zu spans as %s: %s", n,
                         enc->encoding == KX_OTLP_JSON ? "otlp_json"
                                                       : "otlp_proto",
                         halo_status_str(st));
    if (n > 1) /* a lone span says little about the others */
        enc->bytes_per_span = enc->buf.len / n;
    return HALO_OK;
}

/* How many parts `bytes` of encoding should be cut into so each fits with
 * a margin for the per-message resource and scope: at least 2, at most n. */
static size_t parts_for(const kx_encoder *enc, size_t bytes, size_t n)
{
    size_t room = enc->max_bytes - enc->max_bytes / 8;
    size_t parts = bytes / room + 1;
    if (parts < 2)
        parts = 2;
    return parts > n ? n : parts;
}

static halo_status send_range(kx_encoder *enc, const halo_span *const *spans,
                              size_t n, const kx_msg *tmpl, kx_emit_fn emit,
                              void *ud, halo_err *err);

/* spans[0..n) as `parts` ranges of (nearly) equal span counts. */
static halo_status send_parts(kx_encoder *enc, const halo_span *const *spans,
                              size_t n, size_t parts, const kx_msg *tmpl,
                              kx_emit_fn emit, void *ud, halo_err *err)
{
    for (size_t i = 0; i < parts; i++) {
        size_t lo = n * i / parts, hi = n * (i + 1) / parts;
        halo_status st =
            send_range(enc, spans + lo, hi - lo, tmpl, emit, ud, err);
        if (st != HALO_OK)
            return st;
    }
    return HALO_OK;
}

/* Encode spans[0..n) and emit it when it fits (or is one span), else cut. */
static halo_status send_range(kx_encoder *enc, const halo_span *const *spans,
                              size_t n, const kx_msg *tmpl, kx_emit_fn emit,
                              void *ud, halo_err *err)
{
    halo_status st = encode(enc, spans, n, err);
    if (st != HALO_OK)
        return st;
    if (enc->buf.len > enc->max_bytes && n > 1)
        return send_parts(enc, spans, n, parts_for(enc, enc->buf.len, n), tmpl,
                          emit, ud, err);
    kx_msg m = *tmpl;
    m.data = enc->buf.data;
    m.len = enc->buf.len;
    m.n_spans = n;
    m.first = spans[0];
    m.oversize = enc->buf.len > enc->max_bytes;
    return emit(ud, &m);
}

halo_status kx_encode_group(kx_encoder *enc, const halo_span *const *spans,
                            size_t n, const char *key, size_t key_len,
                            kx_emit_fn emit, void *ud, halo_err *err)
{
    if (n == 0)
        return HALO_OK;
    kx_msg tmpl = {.key = key, .key_len = key ? key_len : 0};
    /* A group the learned size says is surely too big is cut before it is
     * encoded whole (which would be wasted work). */
    size_t est = enc->bytes_per_span * n;
    if (n > 1 && est > enc->max_bytes + enc->max_bytes / 2)
        return send_parts(enc, spans, n, parts_for(enc, est, n), &tmpl, emit,
                          ud, err);
    return send_range(enc, spans, n, &tmpl, emit, ud, err);
}
