/*
 * otlp_codec_pbwire.c -- ExportTraceServiceRequest straight from the wire.
 *
 * The protobuf-c decoder (otlp_decode_pb_reference) builds a struct for
 * every message, copies every string and then converts the lot into
 * halo_span: about 6 times the wire size in the arena. This decoder walks
 * the bytes and fills halo_span / halo_kv / halo_value / halo_event /
 * halo_link / halo_resource / halo_scope in the arena directly:
 *
 *  - the shared pass 1 (otlp_pb_precheck: framing, value nesting, memory
 *    estimate) runs first, so the errors and limits are the reference's;
 *  - every message is read twice: a first walk over its own fields counts
 *    the elements of its repeated fields (skipping sub-messages by their
 *    length) and reads its scalars, then the arrays are allocated at their
 *    exact size and a second walk decodes the elements;
 *  - strings are copied once (the caller frees the request after decoding)
 *    into a bump pool carved from the arena in 4 KiB chunks, NUL-terminated
 *    and cut at the first NUL as protobuf-c's C strings are.
 *
 * It gives exactly what protobuf-c 1.4 gives, including its corners: a tag
 * or length prefix longer than 5 bytes, or a known field with the wrong wire
 * type, fails the whole request (except bool, which protobuf-c reads from
 * any wire type: true when any byte of the field has a nonzero low 7 bits);
 * the last of repeated scalars and strings wins; a singular sub-message that
 * occurs more than once is merged as protobuf-c merges (repeated fields
 * concatenated, strings kept from an earlier occurrence when the later one
 * lacks them, other scalars taken from the last occurrence even when absent
 * there, AnyValue taken from the last occurrence that has a value, and two
 * leading occurrences without a value fail the request; see merge_any).
 */
#include "otlp_codec_pbwire.h"
#include "otlp_codec_internal.h"

#include <string.h>

enum { W_OK = 0, W_BAD = 1, W_NOMEM = 2 };

#define TRY(x)                                                                 \
    do {                                                                       \
        int rc_ = (x);                                                         \
        if (rc_ != W_OK)                                                       \
            return rc_;                                                        \
    } while (0)

#define POOL_CHUNK 4096
#define POOL_BIG 512

typedef struct wctx {
    halo_arena *a;
    char *pool;
    size_t pool_left;
} wctx;

/* --- reading fields ------------------------------------------------------- */

typedef struct wfield {
    uint32_t num;
    unsigned wt;
    const uint8_t *raw;  /* first byte after the tag */
    const uint8_t *end;  /* first byte after the field */
    const uint8_t *data; /* payload of a length-delimited field */
    size_t len;
    uint64_t v; /* varint or fixed value */
} wfield;

/* A varint of at most max bytes. */
static inline bool rd_varint(const uint8_t **pp, const uint8_t *end,
                             unsigned max, uint64_t *v)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) {
        *v = *p;
        *pp = p + 1;
        return true;
    }
    uint64_t r = 0;
    unsigned shift = 0;
    for (unsigned i = 0; i < max && p < end; i++, shift += 7) {
        uint8_t b = *p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *v = r;
            return true;
        }
    }
    return false;
}

static inline uint64_t rd_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

/* 1: a field in *f; 0: end of the message; -1: what protobuf-c refuses. */
static inline int next_field(const uint8_t **pp, const uint8_t *end, wfield *f)
{
    const uint8_t *p = *pp;
    uint64_t key, n;
    if (p >= end)
        return 0;
    if (!rd_varint(&p, end, 5, &key))
        return -1;
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return -1;
    f->num = (uint32_t)(key >> 3);
    f->wt = (unsigned)(key & 7);
    f->raw = p;
    /* Every member set on every path: callers read data/len only for
     * wire type 2 and v only for the others, which gcc -O3 cannot see
     * through the inlined switch (-Wmaybe-uninitialized under Release). */
    f->data = NULL;
    f->len = 0;
    f->v = 0;
    switch (f->wt) {
    case 0:
        if (!rd_varint(&p, end, 10, &f->v))
            return -1;
        break;
    case 1:
        if (end - p < 8)
            return -1;
        f->v = rd_le(p, 8);
        p += 8;
        break;
    case 5:
        if (end - p < 4)
            return -1;
        f->v = rd_le(p, 4);
        p += 4;
        break;
    case 2:
        if (!rd_varint(&p, end, 5, &n) || n > (uint64_t)(end - p))
            return -1;
        f->data = p;
        f->len = (size_t)n;
        p += n;
        break;
    default:
        return -1;
    }
    f->end = p;
    *pp = p;
    return 1;
}

/* Length-delimited fields numbered num in a message (framing errors stop
 * the count; the decoding walk meets them too). */
static size_t count_field(const uint8_t *p, size_t len, uint32_t num)
{
    const uint8_t *end = p + len;
    wfield f;
    size_t n = 0;
    while (next_field(&p, end, &f) > 0)
        if (f.num == num && f.wt == 2)
            n++;
    return n;
}

/* --- memory --------------------------------------------------------------- */

static char *pool_alloc(wctx *c, size_t n)
{
    if (n > POOL_BIG)
        return halo_arena_alloc(c->a, n);
    if (c->pool_left < n) {
        c->pool = halo_arena_alloc(c->a, POOL_CHUNK);
        if (!c->pool)
            return NULL;
        c->pool_left = POOL_CHUNK;
    }
    char *r = c->pool;
    c->pool += n;
    c->pool_left -= n;
    return r;
}

/* A C string: the bytes up to the first NUL, copied with a NUL. */
static int copy_str(wctx *c, const wfield *f, const char **out, size_t *outlen)
{
    size_t n = f->len;
    const uint8_t *z = n ? memchr(f->data, 0, n) : NULL;
    if (z)
        n = (size_t)(z - f->data);
    if (outlen)
        *outlen = n;
    if (n == 0) {
        *out = "";
        return W_OK;
    }
    char *d = pool_alloc(c, n + 1);
    if (!d)
        return W_NOMEM;
    memcpy(d, f->data, n);
    d[n] = '\0';
    *out = d;
    return W_OK;
}

static int copy_bytes(wctx *c, const wfield *f, halo_value *out)
{
    out->u.s.len = f->len;
    out->u.s.ptr = "";
    if (f->len == 0)
        return W_OK;
    char *d = pool_alloc(c, f->len + 1);
    if (!d)
        return W_NOMEM;
    memcpy(d, f->data, f->len);
    d[f->len] = '\0';
    out->u.s.ptr = d;
    return W_OK;
}

static int alloc_kvs(wctx *c, size_t n, halo_attrs *out)
{
    out->items = NULL;
    out->n = 0;
    if (n == 0)
        return W_OK;
    if (n > SIZE_MAX / sizeof(halo_kv))
        return W_NOMEM;
    out->items = halo_arena_alloc(c->a, n * sizeof(halo_kv));
    return out->items ? W_OK : W_NOMEM;
}

/* --- attribute values ----------------------------------------------------- */

static int add_kv(wctx *c, const wfield *f, halo_attrs *a, size_t cap);

static int dec_any(wctx *c, const uint8_t *p, size_t len, halo_value *out)
{
    const uint8_t *end = p + len;
    wfield f;
    int r;
    memset(out, 0, sizeof *out);
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num > 7) /* unknown */
            continue;
        if (f.num == 2) { /* bool: protobuf-c ignores the wire type */
            memset(out, 0, sizeof *out);
            out->type = HALO_VAL_BOOL;
            for (const uint8_t *q = f.raw; q < f.end; q++)
                if (*q & 0x7f)
                    out->u.b = true;
            continue;
        }
        unsigned want = f.num == 3 ? 0u : f.num == 4 ? 1u : 2u;
        if (f.wt != want)
            return W_BAD;
        memset(out, 0, sizeof *out);
        switch (f.num) {
        case 1:
            out->type = HALO_VAL_STRING;
            TRY(copy_str(c, &f, &out->u.s.ptr, &out->u.s.len));
            break;
        case 3:
            out->type = HALO_VAL_INT;
            out->u.i = (int64_t)f.v;
            break;
        case 4:
            out->type = HALO_VAL_DOUBLE;
            memcpy(&out->u.d, &f.v, sizeof out->u.d);
            break;
        case 5: {
            size_t n = count_field(f.data, f.len, 1), k = 0;
            halo_value *items = NULL;
            if (n > SIZE_MAX / sizeof(halo_value))
                return W_NOMEM;
            if (n && !(items = halo_arena_alloc(c->a, n * sizeof *items)))
                return W_NOMEM;
            const uint8_t *q = f.data, *qe = f.data + f.len;
            wfield g;
            while ((r = next_field(&q, qe, &g)) > 0) {
                if (g.num != 1)
                    continue;
                if (g.wt != 2 || k >= n)
                    return W_BAD;
                TRY(dec_any(c, g.data, g.len, &items[k]));
                k++;
            }
            if (r < 0)
                return W_BAD;
            out->type = HALO_VAL_ARRAY;
            out->u.arr.items = items;
            out->u.arr.n = k;
            break;
        }
        case 6: {
            size_t cap = count_field(f.data, f.len, 1);
            halo_attrs at;
            TRY(alloc_kvs(c, cap, &at));
            const uint8_t *q = f.data, *qe = f.data + f.len;
            wfield g;
            while ((r = next_field(&q, qe, &g)) > 0)
                if (g.num == 1)
                    TRY(add_kv(c, &g, &at, cap));
            if (r < 0)
                return W_BAD;
            out->type = HALO_VAL_KVLIST;
            out->u.kv.items = at.items;
            out->u.kv.n = at.n;
            break;
        }
        case 7:
            out->type = HALO_VAL_BYTES;
            TRY(copy_bytes(c, &f, out));
            break;
        }
    }
    return r < 0 ? W_BAD : W_OK;
}

/* protobuf-c merges the occurrences of a singular message field. For an
 * AnyValue (a oneof) a later value replaces the earlier; a later empty one
 * keeps the earlier, except a string or an empty bytes value, which it
 * does not move (merge_messages compares them with the field default), so
 * the result is empty; an empty one after an empty one fails the request
 * (the oneof case 0 is not a field). */
static int merge_any(halo_value *acc, const halo_value *v, bool first)
{
    if (first || v->type != HALO_VAL_EMPTY) {
        *acc = *v;
        return W_OK;
    }
    if (acc->type == HALO_VAL_EMPTY)
        return W_BAD;
    if (acc->type == HALO_VAL_STRING ||
        (acc->type == HALO_VAL_BYTES && acc->u.s.len == 0))
        memset(acc, 0, sizeof *acc);
    return W_OK;
}

static int dec_kv(wctx *c, const uint8_t *p, size_t len, halo_kv *out)
{
    const uint8_t *end = p + len;
    wfield f;
    int r;
    size_t nval = 0;
    out->key = "";
    memset(&out->value, 0, sizeof out->value);
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num == 1) {
            if (f.wt != 2)
                return W_BAD;
            TRY(copy_str(c, &f, &out->key, NULL));
        } else if (f.num == 2) {
            halo_value v;
            if (f.wt != 2)
                return W_BAD;
            TRY(dec_any(c, f.data, f.len, &v));
            TRY(merge_any(&out->value, &v, nval++ == 0));
        }
    }
    return r < 0 ? W_BAD : W_OK;
}

/* Appends the KeyValue in field f to a (sized by count_field). */
static int add_kv(wctx *c, const wfield *f, halo_attrs *a, size_t cap)
{
    if (f->wt != 2 || a->n >= cap)
        return W_BAD;
    TRY(dec_kv(c, f->data, f->len, &a->items[a->n]));
    a->n++;
    return W_OK;
}

/* --- resource and scope --------------------------------------------------- */

/* One occurrence of ResourceSpans.resource, merged into r. */
static int dec_resource(wctx *c, const uint8_t *p, size_t len, halo_resource *r,
                        size_t cap)
{
    const uint8_t *end = p + len;
    wfield f;
    int rc;
    r->dropped_attrs = 0;
    while ((rc = next_field(&p, end, &f)) > 0) {
        if (f.num == 1) {
            TRY(add_kv(c, &f, &r->attrs, cap));
        } else if (f.num == 2) {
            if (f.wt != 0)
                return W_BAD;
            r->dropped_attrs = (uint32_t)f.v;
        }
    }
    return rc < 0 ? W_BAD : W_OK;
}

/* One occurrence of ScopeSpans.scope, merged into sc. */
static int dec_scope(wctx *c, const uint8_t *p, size_t len, halo_scope *sc,
                     size_t cap)
{
    const uint8_t *end = p + len;
    wfield f;
    int rc;
    sc->dropped_attrs = 0;
    while ((rc = next_field(&p, end, &f)) > 0) {
        switch (f.num) {
        case 1:
        case 2:
            if (f.wt != 2)
                return W_BAD;
            TRY(copy_str(c, &f, f.num == 1 ? &sc->name : &sc->version, NULL));
            break;
        case 3:
            TRY(add_kv(c, &f, &sc->attrs, cap));
            break;
        case 4:
            if (f.wt != 0)
                return W_BAD;
            sc->dropped_attrs = (uint32_t)f.v;
            break;
        default:
            break;
        }
    }
    return rc < 0 ? W_BAD : W_OK;
}

/* --- spans ---------------------------------------------------------------- */

/* What the first walk over a span finds. */
typedef struct span_scan {
    const uint8_t *tid, *sid;
    size_t tid_n, sid_n, parent_n;
    const uint8_t *parent;
    size_t n_attrs, n_events, n_links;
    bool link_bad;
    char link_why[160];
} span_scan;

/* The id lengths of a link (last occurrence wins), for the reject check. */
static void link_id_lens(const wfield *lf, size_t *tn, size_t *sn)
{
    const uint8_t *p = lf->data, *end = lf->data + lf->len;
    wfield f;
    *tn = *sn = 0;
    while (next_field(&p, end, &f) > 0) {
        if (f.num == 1 && f.wt == 2)
            *tn = f.len;
        else if (f.num == 2 && f.wt == 2)
            *sn = f.len;
    }
}

/* One occurrence of Span.status. */
static int dec_status(wctx *c, const wfield *sf, halo_span *hs)
{
    const uint8_t *p = sf->data, *end = sf->data + sf->len;
    wfield f;
    int rc;
    hs->status_code = 0;
    while ((rc = next_field(&p, end, &f)) > 0) {
        if (f.num == 2) {
            if (f.wt != 2)
                return W_BAD;
            TRY(copy_str(c, &f, &hs->status_message, NULL));
        } else if (f.num == 3) {
            if (f.wt != 0)
                return W_BAD;
            hs->status_code = (int)(int32_t)(uint32_t)f.v;
        }
    }
    return rc < 0 ? W_BAD : W_OK;
}

static const unsigned span_wt[17] = {
    [1] = 2,  [2] = 2,  [3] = 2,  [4] = 2,  [5] = 2,  [6] = 0,
    [7] = 1,  [8] = 1,  [9] = 2,  [10] = 0, [11] = 2, [12] = 0,
    [13] = 2, [14] = 0, [15] = 2, [16] = 5};

/* First walk: ids, scalars, strings and status into hs; counts into s. */
static int span_first_walk(wctx *c, const uint8_t *p, size_t len, halo_span *hs,
                           span_scan *s)
{
    const uint8_t *end = p + len;
    wfield f;
    int rc;
    while ((rc = next_field(&p, end, &f)) > 0) {
        if (f.num > 16)
            continue;
        if (f.wt != span_wt[f.num])
            return W_BAD;
        switch (f.num) {
        case 1:
            s->tid = f.data;
            s->tid_n = f.len;
            break;
        case 2:
            s->sid = f.data;
            s->sid_n = f.len;
            break;
        case 3:
            TRY(copy_str(c, &f, &hs->trace_state, NULL));
            break;
        case 4:
            s->parent = f.data;
            s->parent_n = f.len;
            break;
        case 5:
            TRY(copy_str(c, &f, &hs->name, NULL));
            break;
        case 6:
            hs->kind = (int)(int32_t)(uint32_t)f.v;
            break;
        case 7:
            hs->start_ns = f.v;
            break;
        case 8:
            hs->end_ns = f.v;
            break;
        case 9:
            s->n_attrs++;
            break;
        case 10:
            hs->dropped_attrs = (uint32_t)f.v;
            break;
        case 11:
            s->n_events++;
            break;
        case 12:
            hs->dropped_events = (uint32_t)f.v;
            break;
        case 13: {
            size_t tn, sn;
            char lwhy[128];
            s->n_links++;
            link_id_lens(&f, &tn, &sn);
            if (!s->link_bad &&
                !otlp_check_link_ids(tn, sn, lwhy, sizeof lwhy)) {
                s->link_bad = true;
                snprintf(s->link_why, sizeof s->link_why, "links[%zu]: %s",
                         s->n_links - 1, lwhy);
            }
            break;
        }
        case 14:
            hs->dropped_links = (uint32_t)f.v;
            break;
        case 15:
            TRY(dec_status(c, &f, hs));
            break;
        case 16:
            hs->flags = (uint32_t)f.v;
            break;
        }
    }
    return rc < 0 ? W_BAD : W_OK;
}

static int dec_event(wctx *c, const wfield *ef, halo_event *e)
{
    const uint8_t *p = ef->data, *end = ef->data + ef->len;
    wfield f;
    int rc;
    size_t cap = count_field(ef->data, ef->len, 3);
    e->name = "";
    TRY(alloc_kvs(c, cap, &e->attrs));
    while ((rc = next_field(&p, end, &f)) > 0) {
        switch (f.num) {
        case 1:
            if (f.wt != 1)
                return W_BAD;
            e->time_ns = f.v;
            break;
        case 2:
            if (f.wt != 2)
                return W_BAD;
            TRY(copy_str(c, &f, &e->name, NULL));
            break;
        case 3:
            TRY(add_kv(c, &f, &e->attrs, cap));
            break;
        case 4:
            if (f.wt != 0)
                return W_BAD;
            e->dropped_attrs = (uint32_t)f.v;
            break;
        default:
            break;
        }
    }
    return rc < 0 ? W_BAD : W_OK;
}

static int dec_link(wctx *c, const wfield *lf, halo_link *l)
{
    const uint8_t *p = lf->data, *end = lf->data + lf->len;
    wfield f;
    int rc;
    size_t cap = count_field(lf->data, lf->len, 4);
    l->trace_state = "";
    TRY(alloc_kvs(c, cap, &l->attrs));
    while ((rc = next_field(&p, end, &f)) > 0) {
        switch (f.num) {
        case 1:
        case 2:
        case 3:
            if (f.wt != 2)
                return W_BAD;
            if (f.num == 1 && f.len == 16)
                memcpy(l->trace_id, f.data, 16);
            else if (f.num == 2 && f.len == 8)
                memcpy(l->span_id, f.data, 8);
            else if (f.num == 3)
                TRY(copy_str(c, &f, &l->trace_state, NULL));
            break;
        case 4:
            TRY(add_kv(c, &f, &l->attrs, cap));
            break;
        case 5:
            if (f.wt != 0)
                return W_BAD;
            l->dropped_attrs = (uint32_t)f.v;
            break;
        case 6:
            if (f.wt != 5)
                return W_BAD;
            l->flags = (uint32_t)f.v;
            break;
        default:
            break;
        }
    }
    return rc < 0 ? W_BAD : W_OK;
}

/* Second walk: attributes, events and links. */
static int span_second_walk(wctx *c, const uint8_t *p, size_t len,
                            halo_span *hs, const span_scan *s)
{
    const uint8_t *end = p + len;
    wfield f;
    int rc;
    size_t ne = 0, nl = 0;
    TRY(alloc_kvs(c, s->n_attrs, &hs->attrs));
    if (s->n_events) {
        hs->events = halo_arena_calloc(c->a, s->n_events, sizeof(halo_event));
        if (!hs->events)
            return W_NOMEM;
    }
    if (s->n_links) {
        hs->links = halo_arena_calloc(c->a, s->n_links, sizeof(halo_link));
        if (!hs->links)
            return W_NOMEM;
    }
    while ((rc = next_field(&p, end, &f)) > 0) {
        if (f.num == 9) {
            TRY(add_kv(c, &f, &hs->attrs, s->n_attrs));
        } else if (f.num == 11) {
            if (ne >= s->n_events)
                return W_BAD;
            TRY(dec_event(c, &f, &hs->events[ne++]));
        } else if (f.num == 13) {
            if (nl >= s->n_links)
                return W_BAD;
            TRY(dec_link(c, &f, &hs->links[nl++]));
        }
    }
    hs->n_events = ne;
    hs->n_links = nl;
    return rc < 0 ? W_BAD : W_OK;
}

typedef struct span_pos {
    const halo_resource *res;
    const halo_scope *scope;
    size_t ri, si, k;
    size_t cap; /* size of out->spans */
} span_pos;

static int dec_span(wctx *c, const uint8_t *p, size_t len, const span_pos *pos,
                    halo_otlp_result *out)
{
    halo_span hs;
    span_scan s;
    char why[160];
    memset(&hs, 0, sizeof hs);
    memset(&s, 0, sizeof s);
    hs.trace_state = hs.name = hs.status_message = "";
    TRY(span_first_walk(c, p, len, &hs, &s));
    bool ok = otlp_check_span_ids(s.tid_n, s.tid, s.sid_n, s.sid, s.parent_n,
                                  why, sizeof why);
    if (ok && s.link_bad) {
        ok = false;
        snprintf(why, sizeof why, "%s", s.link_why);
    }
    /* a rejected span is decoded all the same: protobuf-c checks it all */
    TRY(span_second_walk(c, p, len, &hs, &s));
    if (!ok) {
        otlp_reject(out, "resourceSpans[%zu].scopeSpans[%zu].spans[%zu]: %s",
                    pos->ri, pos->si, pos->k, why);
        return W_OK;
    }
    if (out->n >= pos->cap)
        return W_BAD;
    memcpy(hs.trace_id, s.tid, 16);
    memcpy(hs.span_id, s.sid, 8);
    if (s.parent_n == 8)
        memcpy(hs.parent_span_id, s.parent, 8);
    hs.resource = pos->res;
    hs.scope = pos->scope;
    out->spans[out->n++] = hs;
    return W_OK;
}

/* --- request -------------------------------------------------------------- */

/* Shared empty resource / scope unless the message has one or a schema URL
 * (first walk of ResourceSpans / ScopeSpans). */
typedef struct group_scan {
    bool has_msg;
    size_t n_attrs;
    wfield schema;
    bool has_schema;
} group_scan;

static int group_first_walk(const uint8_t *p, size_t len, uint32_t attr_field,
                            group_scan *g)
{
    const uint8_t *end = p + len;
    wfield f;
    int rc;
    memset(g, 0, sizeof *g);
    while ((rc = next_field(&p, end, &f)) > 0) {
        if (f.num > 3)
            continue;
        if (f.wt != 2)
            return W_BAD;
        if (f.num == 1) {
            g->has_msg = true;
            g->n_attrs += count_field(f.data, f.len, attr_field);
        } else if (f.num == 3) {
            g->schema = f;
            g->has_schema = true;
        }
    }
    return rc < 0 ? W_BAD : W_OK;
}

static bool schema_set(const group_scan *g)
{
    return g->has_schema && g->schema.len > 0 && g->schema.data[0] != 0;
}

static int dec_scope_spans(wctx *c, const uint8_t *p, size_t len, span_pos *pos,
                           halo_otlp_result *out)
{
    const uint8_t *end = p + len;
    group_scan g;
    wfield f;
    int rc;
    halo_scope *sc = NULL;
    TRY(group_first_walk(p, len, 3, &g));
    pos->scope = &otlp_empty_scope;
    if (g.has_msg || schema_set(&g)) {
        sc = halo_arena_calloc(c->a, 1, sizeof *sc);
        if (!sc)
            return W_NOMEM;
        sc->name = sc->version = sc->schema_url = "";
        if (g.has_schema)
            TRY(copy_str(c, &g.schema, &sc->schema_url, NULL));
        TRY(alloc_kvs(c, g.n_attrs, &sc->attrs));
        pos->scope = sc;
    }
    pos->k = 0;
    while ((rc = next_field(&p, end, &f)) > 0) {
        if (f.num == 1 && sc) {
            TRY(dec_scope(c, f.data, f.len, sc, g.n_attrs));
        } else if (f.num == 2) {
            TRY(dec_span(c, f.data, f.len, pos, out));
            pos->k++;
        }
    }
    return rc < 0 ? W_BAD : W_OK;
}

static int dec_resource_spans(wctx *c, const uint8_t *p, size_t len,
                              span_pos *pos, halo_otlp_result *out)
{
    const uint8_t *end = p + len;
    group_scan g;
    wfield f;
    int rc;
    halo_resource *r = NULL;
    TRY(group_first_walk(p, len, 1, &g));
    pos->res = &otlp_empty_resource;
    if (g.has_msg || schema_set(&g)) {
        r = halo_arena_calloc(c->a, 1, sizeof *r);
        if (!r)
            return W_NOMEM;
        r->schema_url = "";
        if (g.has_schema)
            TRY(copy_str(c, &g.schema, &r->schema_url, NULL));
        TRY(alloc_kvs(c, g.n_attrs, &r->attrs));
        pos->res = r;
    }
    pos->si = 0;
    while ((rc = next_field(&p, end, &f)) > 0) {
        if (f.num == 1 && r) {
            TRY(dec_resource(c, f.data, f.len, r, g.n_attrs));
        } else if (f.num == 2) {
            TRY(dec_scope_spans(c, f.data, f.len, pos, out));
            pos->si++;
        }
    }
    return rc < 0 ? W_BAD : W_OK;
}

static size_t count_spans(const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    wfield f, g;
    size_t total = 0;
    while (next_field(&p, end, &f) > 0) {
        if (f.num != 1 || f.wt != 2)
            continue;
        const uint8_t *q = f.data, *qe = f.data + f.len;
        while (next_field(&q, qe, &g) > 0)
            if (g.num == 2 && g.wt == 2)
                total += count_field(g.data, g.len, 2);
    }
    return total;
}

static int dec_request(wctx *c, const uint8_t *p, size_t len,
                       halo_otlp_result *out)
{
    const uint8_t *end = p + len;
    span_pos pos = {NULL, NULL, 0, 0, 0, 0};
    wfield f;
    int rc;
    pos.cap = count_spans(p, len);
    if (pos.cap) {
        out->spans = halo_arena_calloc(c->a, pos.cap, sizeof *out->spans);
        if (!out->spans)
            return W_NOMEM;
    }
    while ((rc = next_field(&p, end, &f)) > 0) {
        if (f.num != 1)
            continue;
        if (f.wt != 2)
            return W_BAD;
        TRY(dec_resource_spans(c, f.data, f.len, &pos, out));
        pos.ri++;
    }
    return rc < 0 ? W_BAD : W_OK;
}

halo_status otlp_decode_pbwire(const uint8_t *buf, size_t len, size_t max_spans,
                               halo_arena *arena, halo_otlp_result *out,
                               halo_err *err)
{
    memset(out, 0, sizeof *out);
    if (!buf)
        buf = (const uint8_t *)"";
    halo_status st = otlp_pb_precheck(buf, len, max_spans, &out->carried, err);
    if (st != HALO_OK)
        return st;
    wctx c = {arena, NULL, 0};
    int rc = dec_request(&c, buf, len, out);
    if (rc == W_OK)
        return HALO_OK;
    if (rc == W_BAD) {
        memset(out, 0, sizeof *out);
        return halo_fail(err, HALO_EINVAL, OTLP_PB_DECODE_ERROR);
    }
    out->n = 0;
    out->spans = NULL;
    return halo_fail(err, HALO_ENOMEM,
                     "could not allocate memory for a decoded request");
}
