/*
 * otlp_codec_pb.c -- OTLP trace requests in protobuf, in and out.
 *
 * halo_otlp_decode_pb runs the direct wire decoder of otlp_codec_pbwire.c
 * (about half the time and 40% of the memory). The protobuf-c decoder below
 * is kept as otlp_decode_pb_reference, the oracle of the differential test
 * and fuzzer; pass 1 (otlp_pb_precheck) is shared by both. The reference
 * decoding is two passes over the request:
 *
 *  1. A scan of the wire bytes, guided by a table of the OTLP message tree,
 *     that checks the framing, bounds the nesting of attribute values
 *     (AnyValue inside arrays / kvlists, at most OTLP_MAX_VALUE_DEPTH) and
 *     estimates how much memory decoding will take. protobuf-c itself
 *     recurses without a limit and allocates a struct for every (even
 *     empty) sub-message, so a few bytes of hostile input could otherwise
 *     overflow the stack or claim gigabytes; the scan refuses both before
 *     anything is allocated.
 *  2. protobuf-c unpacks the request into the caller's arena
 *     (halo_arena_pb_allocator, with protobuf-c's scratch slabs recycled:
 *     no malloc per field), and the halo_span array is built in the same
 *     arena, pointing at protobuf-c's strings (which are NUL-terminated)
 *     instead of copying them. A typical request takes about 6 times its
 *     wire size in the arena (2.8 KiB for a span with 10 attributes).
 *
 * Spans with invalid ids are left out and counted (otlp_codec_common.c).
 *
 * halo_otlp_encode_pb runs the direct wire encoder of otlp_codec_pbenc.c
 * (about 4 times faster). The protobuf-c encoder below is kept as
 * otlp_encode_pb_reference, the oracle of the differential test and fuzzer:
 * it builds protobuf-c structs in a temporary arena, pointing at the spans'
 * own strings and ids, and packs them into the caller's buffer.
 */
#include "otlp_codec_enc.h"
#include "otlp_codec_internal.h"
#include "otlp_codec_pbwire.h"

#include "google/rpc/status.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Common__V1__AnyValue pb_any;
typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;
typedef Opentelemetry__Proto__Common__V1__ArrayValue pb_array;
typedef Opentelemetry__Proto__Common__V1__KeyValueList pb_kvlist;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope pb_scope;
typedef Opentelemetry__Proto__Resource__V1__Resource pb_resource;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans pb_rspans;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans pb_sspans;
typedef Opentelemetry__Proto__Trace__V1__Span pb_span;
typedef Opentelemetry__Proto__Trace__V1__Span__Event pb_event;
typedef Opentelemetry__Proto__Trace__V1__Span__Link pb_link;
typedef Opentelemetry__Proto__Trace__V1__Status pb_status;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest
    pb_request;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse
    pb_response;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess
    pb_partial;

#define DESC(x) (&opentelemetry__proto__##x##__descriptor)

#define DECODE_ERROR OTLP_PB_DECODE_ERROR

/* Sub-messages nested deeper than this are refused whatever they are (the
 * OTLP structure itself is 7 deep, plus up to three per attribute value
 * level: AnyValue, KeyValueList, KeyValue), so the value depth is what
 * refuses deep values, as in the JSON decoder. */
#define PB_MAX_MSG_DEPTH (8 + 3 * OTLP_MAX_VALUE_DEPTH)

/* Decoding may take at most this much memory (estimate): 64 MiB plus 32
 * times the request. Real requests need 2-12 times their size; requests of
 * empty sub-messages need hundreds of times. */
#define PB_MAX_EXPANSION 32
#define PB_BASE_ALLOWANCE ((size_t)64 << 20)

/* --- pass 1: scan --------------------------------------------------------- */

/* Where a limit was hit, outermost first up to the attribute value, for
 * the message: "resourceSpans[0].scopeSpans[0].spans[3].attributes[1].value"
 * (OTLP/JSON names, as the JSON decoder's paths). */
#define PB_PATH_MAX 12

typedef struct pb_seg {
    const ProtobufCFieldDescriptor *field;
    size_t index; /* among the field's occurrences (repeated fields) */
} pb_seg;

typedef struct pb_scan {
    size_t est;      /* bytes protobuf-c and the span builder will allocate */
    size_t spans;    /* Span messages seen */
    const char *why; /* set when a limit (not the framing) was the problem */
    pb_seg path[PB_PATH_MAX]; /* innermost first, filled while unwinding */
    int n_path;
} pb_scan;

static inline __attribute__((always_inline)) bool
read_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t r = 0;
    if (p < end && *p < 0x80) { /* the common case: one byte */
        *v = *p;
        *pp = p + 1;
        return true;
    }
    for (unsigned shift = 0; shift < 64 && p < end; shift += 7) {
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

/* The OTLP message tree as the scan sees it: for each message type, the
 * message type of each length-delimited field that holds one (by field
 * number; the largest is Span.status = 15), what decoding one costs besides
 * protobuf-c's struct, and whether it is an AnyValue. A hand-made table
 * instead of protobuf_c_message_descriptor_get_field() per field: the scan
 * runs on every request and this halves its cost. */
#define PB_MAX_FIELD 15

typedef struct pb_node {
    const ProtobufCMessageDescriptor *desc;
    size_t extra; /* halo structs built from one message of this type */
    bool any_value;
    const struct pb_node *child[PB_MAX_FIELD + 1];
} pb_node;

static const pb_node n_request, n_rspans, n_resource, n_sspans, n_scope, n_span,
    n_event, n_link, n_status, n_kv, n_any, n_array, n_kvlist;

static const pb_node n_request = {
    DESC(collector__trace__v1__export_trace_service_request),
    0,
    false,
    {[1] = &n_rspans}};
static const pb_node n_rspans = {DESC(trace__v1__resource_spans),
                                 sizeof(halo_resource),
                                 false,
                                 {[1] = &n_resource, [2] = &n_sspans}};
static const pb_node n_resource = {
    DESC(resource__v1__resource), 0, false, {[1] = &n_kv}};
static const pb_node n_sspans = {DESC(trace__v1__scope_spans),
                                 sizeof(halo_scope),
                                 false,
                                 {[1] = &n_scope, [2] = &n_span}};
static const pb_node n_scope = {
    DESC(common__v1__instrumentation_scope), 0, false, {[3] = &n_kv}};
static const pb_node n_span = {
    DESC(trace__v1__span),
    sizeof(halo_span),
    false,
    {[9] = &n_kv, [11] = &n_event, [13] = &n_link, [15] = &n_status}};
static const pb_node n_event = {
    DESC(trace__v1__span__event), sizeof(halo_event), false, {[3] = &n_kv}};
static const pb_node n_link = {
    DESC(trace__v1__span__link), sizeof(halo_link), false, {[4] = &n_kv}};
static const pb_node n_status = {DESC(trace__v1__status), 0, false, {0}};
static const pb_node n_kv = {
    DESC(common__v1__key_value), sizeof(halo_kv), false, {[2] = &n_any}};
static const pb_node n_any = {DESC(common__v1__any_value),
                              sizeof(halo_value),
                              true,
                              {[5] = &n_array, [6] = &n_kvlist}};
static const pb_node n_array = {
    DESC(common__v1__array_value), 0, false, {[1] = &n_any}};
static const pb_node n_kvlist = {
    DESC(common__v1__key_value_list), 0, false, {[1] = &n_kv}};

/* How many length-delimited fields `num` come before `at` in a message
 * whose framing up to there was checked already. */
static size_t field_index(const uint8_t *p, const uint8_t *at, uint64_t num)
{
    size_t n = 0;
    while (p < at) {
        uint64_t key, v = 0;
        if (!read_varint(&p, at, &key))
            break;
        switch (key & 7) {
        case 0:
            (void)read_varint(&p, at, &v);
            break;
        case 1:
            p += 8;
            break;
        case 5:
            p += 4;
            break;
        default:
            if (!read_varint(&p, at, &v) || v > (uint64_t)(at - p))
                return n;
            if (key >> 3 == num && p + v < at)
                n++;
            p += v;
            break;
        }
    }
    return n;
}

/* Record the field `num` of message t (in msg[..]) whose value starting at
 * `at` (after its length) broke a limit. */
static void path_push(pb_scan *s, const pb_node *t, uint32_t num,
                      const uint8_t *msg, const uint8_t *at)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(t->desc, num);
    if (!f || s->n_path >= PB_PATH_MAX)
        return;
    s->path[s->n_path].field = f;
    s->path[s->n_path].index =
        f->label == PROTOBUF_C_LABEL_REPEATED ? field_index(msg, at, num) : 0;
    s->n_path++;
}

/* s->path as "resourceSpans[0].scopeSpans[0].spans[0]...", in buf. */
static void path_text(const pb_scan *s, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = s->n_path - 1; i >= 0 && n + 1 < size; i--) {
        const pb_seg *g = &s->path[i];
        if (i != s->n_path - 1)
            buf[n++] = '.';
        bool up = false;
        for (const char *c = g->field->name; *c && n + 1 < size; c++) {
            if (*c == '_') {
                up = true;
                continue;
            }
            buf[n++] = up && *c >= 'a' && *c <= 'z' ? (char)(*c - 32) : *c;
            up = false;
        }
        buf[n] = '\0';
        if (g->field->label == PROTOBUF_C_LABEL_REPEATED && n + 1 < size) {
            int w = snprintf(buf + n, size - n, "[%zu]", g->index);
            n = w > 0 && (size_t)w < size - n ? n + (size_t)w : size - 1;
        }
    }
    buf[n < size ? n : size - 1] = '\0';
}

/* Checks the framing of a message of type t in p[0..len), the nesting of
 * attribute values, and adds what decoding it will allocate to s->est. */
static bool scan_message(const uint8_t *p, size_t len, const pb_node *t,
                         int depth, int vdepth, pb_scan *s)
{
    if (depth > PB_MAX_MSG_DEPTH) {
        s->why = "messages nested too deeply";
        return false;
    }
    if (t->any_value && ++vdepth > OTLP_MAX_VALUE_DEPTH) {
        s->why = "attribute values nested deeper than 32 levels";
        return false;
    }
    s->est += t->desc->sizeof_message + t->extra;
    s->spans += t == &n_span;
    const uint8_t *start = p;
    const uint8_t *end = p + len;
    size_t fields = 0;
    while (p < end) {
        uint64_t key, v;
        if (!read_varint(&p, end, &key))
            return false;
        uint64_t num = key >> 3;
        if (num == 0 || num > 0x1fffffff)
            return false;
        fields++;
        switch (key & 7) {
        case 0: /* varint */
            if (!read_varint(&p, end, &v))
                return false;
            break;
        case 1: /* 64-bit */
            if (end - p < 8)
                return false;
            p += 8;
            break;
        case 5: /* 32-bit */
            if (end - p < 4)
                return false;
            p += 4;
            break;
        case 2: { /* length-delimited */
            if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return false;
            const pb_node *child = num <= PB_MAX_FIELD ? t->child[num] : NULL;
            if (child) {
                s->est += sizeof(void *);
                if (!scan_message(p, (size_t)v, child, depth + 1, vdepth, s)) {
                    /* outside attribute values, name where it happened */
                    if (s->why && vdepth == 0)
                        path_push(s, t, (uint32_t)num, start, p);
                    return false;
                }
            } else {
                /* strings and bytes are copied with a NUL; unknown fields
                 * are kept as copies with a header */
                s->est += (size_t)v + sizeof(ProtobufCMessageUnknownField);
            }
            p += v;
            break;
        }
        default: /* groups: not in OTLP, and protobuf-c refuses them */
            return false;
        }
    }
    /* protobuf-c keeps 16 fields on the stack, then allocates slabs of
     * 32-byte entries that double (and are never freed in an arena) */
    if (fields > 16)
        s->est += fields * 64;
    return true;
}

/* --- the allocator: the arena, recycling protobuf-c's scratch slabs -------
 *
 * protobuf-c scans a message's fields into a 16-entry array on the stack
 * and, for a message with more fields (a span with 9 or more attributes),
 * allocates 1 KiB, 2 KiB... slabs that it frees when the message is done.
 * Freeing into an arena is a no-op, so each wide span would leave 1 KiB
 * behind, about a quarter of its decoded size. This allocator remembers the
 * last few large blocks and hands a freed one out again for a request of the
 * same size; everything else goes to the arena as it is. */
#define REUSE_MIN 1024
#define REUSE_SLOTS 8

typedef struct reuse_alloc {
    ProtobufCAllocator arena; /* halo_arena_pb_allocator() */
    struct {
        void *p;
        size_t size;
        bool free;
    } big[REUSE_SLOTS];
    unsigned next; /* slot to overwrite next when none is empty */
} reuse_alloc;

static void *reuse_alloc_fn(void *ud, size_t size)
{
    reuse_alloc *r = ud;
    if (size < REUSE_MIN)
        return r->arena.alloc(r->arena.allocator_data, size);
    for (unsigned i = 0; i < REUSE_SLOTS; i++) {
        if (r->big[i].free && r->big[i].size == size) {
            r->big[i].free = false;
            return r->big[i].p;
        }
    }
    void *p = r->arena.alloc(r->arena.allocator_data, size);
    if (!p)
        return NULL;
    /* remember it in a slot not holding a freed block */
    for (unsigned k = 0; k < REUSE_SLOTS; k++) {
        unsigned i = (r->next + k) % REUSE_SLOTS;
        if (!r->big[i].free) {
            r->big[i].p = p;
            r->big[i].size = size;
            r->next = i + 1;
            break;
        }
    }
    return p;
}

static void reuse_free_fn(void *ud, void *p)
{
    reuse_alloc *r = ud;
    for (unsigned i = 0; p && i < REUSE_SLOTS; i++) {
        if (r->big[i].p == p) {
            r->big[i].free = true;
            return;
        }
    }
}

/* --- pass 2: spans from the unpacked request ------------------------------ */

static halo_status conv_attrs(halo_arena *a, pb_kv *const *kvs, size_t n,
                              halo_attrs *out, int depth, halo_err *err);

static halo_status nomem(halo_err *err)
{
    return halo_fail(err, HALO_ENOMEM,
                     "could not allocate memory for a decoded request");
}

static halo_status conv_value(halo_arena *a, const pb_any *v, halo_value *out,
                              int depth, halo_err *err)
{
    memset(out, 0, sizeof *out);
    if (!v)
        return HALO_OK;
    if (depth > OTLP_MAX_VALUE_DEPTH)
        return halo_fail(err, HALO_EINVAL,
                         "invalid protobuf: attribute values nested deeper "
                         "than 32 levels");
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        out->type = HALO_VAL_STRING;
        out->u.s.ptr = v->string_value ? v->string_value : "";
        out->u.s.len = strlen(out->u.s.ptr);
        return HALO_OK;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        out->type = HALO_VAL_BOOL;
        out->u.b = v->bool_value != 0;
        return HALO_OK;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        out->type = HALO_VAL_INT;
        out->u.i = v->int_value;
        return HALO_OK;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        out->type = HALO_VAL_DOUBLE;
        out->u.d = v->double_value;
        return HALO_OK;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        out->type = HALO_VAL_BYTES;
        out->u.s.ptr =
            v->bytes_value.data ? (const char *)v->bytes_value.data : "";
        out->u.s.len = v->bytes_value.len;
        return HALO_OK;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE: {
        const pb_array *arr = v->array_value;
        size_t n = arr ? arr->n_values : 0;
        out->type = HALO_VAL_ARRAY;
        if (n == 0)
            return HALO_OK;
        halo_value *items = halo_arena_calloc(a, n, sizeof *items);
        if (!items)
            return nomem(err);
        for (size_t i = 0; i < n; i++) {
            halo_status st =
                conv_value(a, arr->values[i], &items[i], depth + 1, err);
            if (st != HALO_OK)
                return st;
        }
        out->u.arr.items = items;
        out->u.arr.n = n;
        return HALO_OK;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE: {
        const pb_kvlist *kl = v->kvlist_value;
        halo_attrs attrs = {NULL, 0};
        out->type = HALO_VAL_KVLIST;
        if (kl) {
            halo_status st =
                conv_attrs(a, kl->values, kl->n_values, &attrs, depth + 1, err);
            if (st != HALO_OK)
                return st;
        }
        out->u.kv.items = attrs.items;
        out->u.kv.n = attrs.n;
        return HALO_OK;
    }
    default:
        return HALO_OK; /* not set: an empty value */
    }
}

static halo_status conv_attrs(halo_arena *a, pb_kv *const *kvs, size_t n,
                              halo_attrs *out, int depth, halo_err *err)
{
    out->items = NULL;
    out->n = 0;
    if (n == 0)
        return HALO_OK;
    if (n > SIZE_MAX / sizeof(halo_kv))
        return nomem(err);
    halo_kv *items = halo_arena_alloc(a, n * sizeof *items);
    if (!items)
        return nomem(err);
    for (size_t i = 0; i < n; i++) { /* conv_value sets every field */
        const pb_kv *kv = kvs[i];
        items[i].key = kv && kv->key ? kv->key : "";
        halo_status st =
            conv_value(a, kv ? kv->value : NULL, &items[i].value, depth, err);
        if (st != HALO_OK)
            return st;
    }
    out->items = items;
    out->n = n;
    return HALO_OK;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

static halo_status conv_resource(halo_arena *a, const pb_rspans *rs,
                                 const halo_resource **out, halo_err *err)
{
    const char *schema = str_or_empty(rs->schema_url);
    if (!rs->resource && !*schema) {
        *out = &otlp_empty_resource;
        return HALO_OK;
    }
    halo_resource *r = halo_arena_calloc(a, 1, sizeof *r);
    if (!r)
        return nomem(err);
    r->schema_url = schema;
    if (rs->resource) {
        r->dropped_attrs = rs->resource->dropped_attributes_count;
        halo_status st =
            conv_attrs(a, rs->resource->attributes, rs->resource->n_attributes,
                       &r->attrs, 1, err);
        if (st != HALO_OK)
            return st;
    }
    *out = r;
    return HALO_OK;
}

static halo_status conv_scope(halo_arena *a, const pb_sspans *ss,
                              const halo_scope **out, halo_err *err)
{
    const char *schema = str_or_empty(ss->schema_url);
    if (!ss->scope && !*schema) {
        *out = &otlp_empty_scope;
        return HALO_OK;
    }
    halo_scope *sc = halo_arena_calloc(a, 1, sizeof *sc);
    if (!sc)
        return nomem(err);
    sc->schema_url = schema;
    sc->name = "";
    sc->version = "";
    if (ss->scope) {
        sc->name = str_or_empty(ss->scope->name);
        sc->version = str_or_empty(ss->scope->version);
        sc->dropped_attrs = ss->scope->dropped_attributes_count;
        halo_status st =
            conv_attrs(a, ss->scope->attributes, ss->scope->n_attributes,
                       &sc->attrs, 1, err);
        if (st != HALO_OK)
            return st;
    }
    *out = sc;
    return HALO_OK;
}

/* True when every id of the span (and of its links) is acceptable; else
 * writes the reason, prefixed by the link's position when a link is at
 * fault. */
static bool span_ids_ok(const pb_span *sp, char *why, size_t why_size)
{
    if (!otlp_check_span_ids(sp->trace_id.len, sp->trace_id.data,
                             sp->span_id.len, sp->span_id.data,
                             sp->parent_span_id.len, why, why_size))
        return false;
    for (size_t k = 0; k < sp->n_links; k++) {
        const pb_link *l = sp->links[k];
        char lwhy[128];
        if (l && !otlp_check_link_ids(l->trace_id.len, l->span_id.len, lwhy,
                                      sizeof lwhy)) {
            snprintf(why, why_size, "links[%zu]: %s", k, lwhy);
            return false;
        }
    }
    return true;
}

static halo_status conv_events(halo_arena *a, const pb_span *sp, halo_span *hs,
                               halo_err *err)
{
    if (sp->n_events == 0)
        return HALO_OK;
    halo_event *ev = halo_arena_calloc(a, sp->n_events, sizeof *ev);
    if (!ev)
        return nomem(err);
    for (size_t k = 0; k < sp->n_events; k++) {
        const pb_event *e = sp->events[k];
        ev[k].name = "";
        if (!e)
            continue;
        ev[k].time_ns = e->time_unix_nano;
        ev[k].name = str_or_empty(e->name);
        ev[k].dropped_attrs = e->dropped_attributes_count;
        halo_status st =
            conv_attrs(a, e->attributes, e->n_attributes, &ev[k].attrs, 1, err);
        if (st != HALO_OK)
            return st;
    }
    hs->events = ev;
    hs->n_events = sp->n_events;
    return HALO_OK;
}

static halo_status conv_links(halo_arena *a, const pb_span *sp, halo_span *hs,
                              halo_err *err)
{
    if (sp->n_links == 0)
        return HALO_OK;
    halo_link *ln = halo_arena_calloc(a, sp->n_links, sizeof *ln);
    if (!ln)
        return nomem(err);
    for (size_t k = 0; k < sp->n_links; k++) {
        const pb_link *l = sp->links[k];
        ln[k].trace_state = "";
        if (!l)
            continue;
        memcpy(ln[k].trace_id, l->trace_id.data, 16); /* lengths checked */
        memcpy(ln[k].span_id, l->span_id.data, 8);
        ln[k].trace_state = str_or_empty(l->trace_state);
        ln[k].dropped_attrs = l->dropped_attributes_count;
        ln[k].flags = l->flags;
        halo_status st =
            conv_attrs(a, l->attributes, l->n_attributes, &ln[k].attrs, 1, err);
        if (st != HALO_OK)
            return st;
    }
    hs->links = ln;
    hs->n_links = sp->n_links;
    return HALO_OK;
}

/* Fills hs (zeroed) from sp, whose ids were checked. */
static halo_status conv_span(halo_arena *a, const pb_span *sp, halo_span *hs,
                             halo_err *err)
{
    memcpy(hs->trace_id, sp->trace_id.data, 16);
    memcpy(hs->span_id, sp->span_id.data, 8);
    if (sp->parent_span_id.len == 8)
        memcpy(hs->parent_span_id, sp->parent_span_id.data, 8);
    hs->trace_state = str_or_empty(sp->trace_state);
    hs->flags = sp->flags;
    hs->name = str_or_empty(sp->name);
    hs->kind = (int)sp->kind;
    hs->start_ns = sp->start_time_unix_nano;
    hs->end_ns = sp->end_time_unix_nano;
    hs->status_code = sp->status ? (int)sp->status->code : HALO_STATUS_UNSET;
    hs->status_message = sp->status ? str_or_empty(sp->status->message) : "";
    hs->dropped_attrs = sp->dropped_attributes_count;
    hs->dropped_events = sp->dropped_events_count;
    hs->dropped_links = sp->dropped_links_count;
    halo_status st =
        conv_attrs(a, sp->attributes, sp->n_attributes, &hs->attrs, 1, err);
    if (st == HALO_OK)
        st = conv_events(a, sp, hs, err);
    if (st == HALO_OK)
        st = conv_links(a, sp, hs, err);
    return st;
}

static halo_status conv_scope_spans(halo_arena *a, const pb_sspans *ss,
                                    const halo_resource *res, size_t ri,
                                    size_t si, halo_otlp_result *out,
                                    halo_err *err)
{
    const halo_scope *scope = &otlp_empty_scope;
    halo_status st = conv_scope(a, ss, &scope, err);
    if (st != HALO_OK)
        return st;
    for (size_t k = 0; k < ss->n_spans; k++) {
        const pb_span *sp = ss->spans[k];
        char why[160];
        if (!sp)
            continue;
        if (!span_ids_ok(sp, why, sizeof why)) {
            otlp_reject(out,
                        "resourceSpans[%zu].scopeSpans[%zu].spans[%zu]: %s", ri,
                        si, k, why);
            continue;
        }
        halo_span *hs = &out->spans[out->n];
        st = conv_span(a, sp, hs, err);
        if (st != HALO_OK)
            return st;
        hs->resource = res;
        hs->scope = scope;
        out->n++;
    }
    return HALO_OK;
}

static halo_status conv_request(halo_arena *a, const pb_request *req,
                                halo_otlp_result *out, halo_err *err)
{
    size_t total = 0;
    for (size_t r = 0; r < req->n_resource_spans; r++) {
        const pb_rspans *rs = req->resource_spans[r];
        for (size_t s = 0; rs && s < rs->n_scope_spans; s++)
            total += rs->scope_spans[s] ? rs->scope_spans[s]->n_spans : 0;
    }
    if (total == 0)
        return HALO_OK;
    out->spans = halo_arena_calloc(a, total, sizeof *out->spans);
    if (!out->spans)
        return nomem(err);
    for (size_t r = 0; r < req->n_resource_spans; r++) {
        const pb_rspans *rs = req->resource_spans[r];
        const halo_resource *res = &otlp_empty_resource;
        if (!rs || rs->n_scope_spans == 0)
            continue;
        halo_status st = conv_resource(a, rs, &res, err);
        if (st != HALO_OK)
            return st;
        for (size_t s = 0; s < rs->n_scope_spans; s++) {
            if (!rs->scope_spans[s])
                continue;
            st = conv_scope_spans(a, rs->scope_spans[s], res, r, s, out, err);
            if (st != HALO_OK)
                return st;
        }
    }
    return HALO_OK;
}

halo_status otlp_pb_precheck(const uint8_t *buf, size_t len, size_t max_spans,
                             size_t *n_spans, halo_err *err)
{
    pb_scan scan;
    scan.est = 0;
    scan.spans = 0;
    scan.why = NULL;
    scan.n_path = 0;
    bool framed = scan_message(buf, len, &n_request, 0, 0, &scan);
    if (n_spans)
        *n_spans = scan.spans;
    if (!framed) {
        if (scan.why && scan.n_path) {
            char path[256];
            path_text(&scan, path, sizeof path);
            return halo_fail(err, HALO_EINVAL, "invalid protobuf: %s: %s", path,
                             scan.why);
        }
        if (scan.why)
            return halo_fail(err, HALO_EINVAL, "invalid protobuf: %s",
                             scan.why);
        return halo_fail(err, HALO_EINVAL, DECODE_ERROR);
    }
    if (max_spans && scan.spans > max_spans)
        return halo_fail(err, HALO_ETOOBIG, HALO_OTLP_TOO_MANY_SPANS,
                         scan.spans, max_spans);
    size_t limit = PB_BASE_ALLOWANCE + PB_MAX_EXPANSION * len;
    if (scan.est > limit)
        return halo_fail(err, HALO_ETOOBIG,
                         "request of %zu bytes would need %zu MiB once "
                         "decoded (limit %zu MiB)",
                         len, scan.est >> 20, limit >> 20);
    return HALO_OK;
}

halo_status otlp_decode_pb_reference(const uint8_t *buf, size_t len,
                                     halo_arena *arena, halo_otlp_result *out,
                                     halo_err *err)
{
    memset(out, 0, sizeof *out);
    if (!buf)
        buf = (const uint8_t *)"";
    halo_status st = otlp_pb_precheck(buf, len, 0, &out->carried, err);
    if (st != HALO_OK)
        return st;
    reuse_alloc ra = {halo_arena_pb_allocator(arena), {{NULL, 0, false}}, 0};
    ProtobufCAllocator al = {reuse_alloc_fn, reuse_free_fn, &ra};
    pb_request *req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
            &al, len, buf);
    if (!req)
        return halo_fail(err, HALO_EINVAL, DECODE_ERROR);
    st = conv_request(arena, req, out, err);
    if (st != HALO_OK) {
        out->n = 0;
        out->spans = NULL;
    }
    return st;
}

size_t halo_otlp_arena_first(size_t len)
{
    if (len < 2048)
        return 0;
    return len < HALO_ARENA_BLOCK_MAX / 5 * 2 ? len * 5 / 2
                                              : HALO_ARENA_BLOCK_MAX;
}

/* The wire decoder (otlp_codec_pbwire.c) gives the same result as the
 * reference for every input (differential test and fuzzer) at a fraction of
 * its time and memory. */
halo_status halo_otlp_decode_pb(const uint8_t *buf, size_t len,
                                halo_arena *arena, halo_otlp_result *out,
                                halo_err *err)
{
    return otlp_decode_pbwire(buf, len, 0, arena, out, err);
}

halo_status halo_otlp_decode_pb_max(const uint8_t *buf, size_t len,
                                    size_t max_spans, halo_arena *arena,
                                    halo_otlp_result *out, halo_err *err)
{
    return otlp_decode_pbwire(buf, len, max_spans, arena, out, err);
}

/* --- encoding ------------------------------------------------------------- */

static const pb_kv kv_init = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
static const pb_any any_init =
    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
static const pb_array array_init =
    OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
static const pb_kvlist kvlist_init =
    OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE_LIST__INIT;
static const pb_scope scope_init =
    OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
static const pb_resource resource_init =
    OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
static const pb_rspans rspans_init =
    OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
static const pb_sspans sspans_init =
    OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
static const pb_span span_init = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
static const pb_event event_init =
    OPENTELEMETRY__PROTO__TRACE__V1__SPAN__EVENT__INIT;
static const pb_link link_init =
    OPENTELEMETRY__PROTO__TRACE__V1__SPAN__LINK__INIT;
static const pb_status status_init =
    OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;

/* A string for a oneof member that must be packed even when empty:
 * protobuf-c skips a oneof string equal to the field default. */
static char empty_oneof_string[1] = "";

static char *cstr(const char *s)
{
    return (char *)(s ? s : "");
}

static halo_status mk_attrs(halo_arena *a, const halo_attrs *in, size_t *n,
                            pb_kv ***out, int depth);

static halo_status mk_value(halo_arena *a, const halo_value *v, pb_any *o,
                            int depth)
{
    *o = any_init;
    if (depth > OTLP_MAX_VALUE_DEPTH)
        return HALO_EINVAL;
    switch (v->type) {
    case HALO_VAL_STRING:
        o->value_case =
            OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        o->string_value =
            v->u.s.len && v->u.s.ptr ? (char *)v->u.s.ptr : empty_oneof_string;
        return HALO_OK;
    case HALO_VAL_BOOL:
        o->value_case =
            OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
        o->bool_value = v->u.b;
        return HALO_OK;
    case HALO_VAL_INT:
        o->value_case =
            OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        o->int_value = v->u.i;
        return HALO_OK;
    case HALO_VAL_DOUBLE:
        o->value_case =
            OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
        o->double_value = v->u.d;
        return HALO_OK;
    case HALO_VAL_BYTES:
        o->value_case =
            OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
        o->bytes_value.len = v->u.s.len;
        o->bytes_value.data = (uint8_t *)(v->u.s.len ? v->u.s.ptr : NULL);
        return HALO_OK;
    case HALO_VAL_ARRAY: {
        pb_array *arr = halo_arena_alloc(a, sizeof *arr);
        size_t n = v->u.arr.n;
        if (!arr)
            return HALO_ENOMEM;
        *arr = array_init;
        if (n) {
            pb_any *items = halo_arena_alloc(a, n * sizeof *items);
            arr->values = halo_arena_alloc(a, n * sizeof *arr->values);
            if (!items || !arr->values)
                return HALO_ENOMEM;
            for (size_t i = 0; i < n; i++) {
                halo_status st =
                    mk_value(a, &v->u.arr.items[i], &items[i], depth + 1);
                if (st != HALO_OK)
                    return st;
                arr->values[i] = &items[i];
            }
            arr->n_values = n;
        }
        o->value_case =
            OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
        o->array_value = arr;
        return HALO_OK;
    }
    case HALO_VAL_KVLIST: {
        pb_kvlist *kl = halo_arena_alloc(a, sizeof *kl);
        if (!kl)
            return HALO_ENOMEM;
        *kl = kvlist_init;
        halo_attrs in = {v->u.kv.items, v->u.kv.n};
        halo_status st =
            mk_attrs(a, &in, &kl->n_values, &kl->values, depth + 1);
        if (st != HALO_OK)
            return st;
        o->value_case =
            OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
        o->kvlist_value = kl;
        return HALO_OK;
    }
    case HALO_VAL_EMPTY:
        return HALO_OK;
    }
    return HALO_OK;
}

static halo_status mk_attrs(halo_arena *a, const halo_attrs *in, size_t *n,
                            pb_kv ***out, int depth)
{
    *n = 0;
    *out = NULL;
    if (in->n == 0)
        return HALO_OK;
    pb_kv *kvs = halo_arena_alloc(a, in->n * sizeof *kvs);
    pb_any *vals = halo_arena_alloc(a, in->n * sizeof *vals);
    pb_kv **ptrs = halo_arena_alloc(a, in->n * sizeof *ptrs);
    if (!kvs || !vals || !ptrs)
        return HALO_ENOMEM;
    for (size_t i = 0; i < in->n; i++) {
        kvs[i] = kv_init;
        kvs[i].key = cstr(in->items[i].key);
        halo_status st = mk_value(a, &in->items[i].value, &vals[i], depth);
        if (st != HALO_OK)
            return st;
        kvs[i].value = &vals[i];
        ptrs[i] = &kvs[i];
    }
    *n = in->n;
    *out = ptrs;
    return HALO_OK;
}

static halo_status mk_events(halo_arena *a, const halo_span *s, pb_span *o)
{
    if (s->n_events == 0)
        return HALO_OK;
    pb_event *ev = halo_arena_alloc(a, s->n_events * sizeof *ev);
    o->events = halo_arena_alloc(a, s->n_events * sizeof *o->events);
    if (!ev || !o->events)
        return HALO_ENOMEM;
    for (size_t k = 0; k < s->n_events; k++) {
        const halo_event *e = &s->events[k];
        ev[k] = event_init;
        ev[k].time_unix_nano = e->time_ns;
        ev[k].name = cstr(e->name);
        ev[k].dropped_attributes_count = e->dropped_attrs;
        halo_status st =
            mk_attrs(a, &e->attrs, &ev[k].n_attributes, &ev[k].attributes, 1);
        if (st != HALO_OK)
            return st;
        o->events[k] = &ev[k];
    }
    o->n_events = s->n_events;
    return HALO_OK;
}

static halo_status mk_links(halo_arena *a, const halo_span *s, pb_span *o)
{
    if (s->n_links == 0)
        return HALO_OK;
    pb_link *ln = halo_arena_alloc(a, s->n_links * sizeof *ln);
    o->links = halo_arena_alloc(a, s->n_links * sizeof *o->links);
    if (!ln || !o->links)
        return HALO_ENOMEM;
    for (size_t k = 0; k < s->n_links; k++) {
        const halo_link *l = &s->links[k];
        ln[k] = link_init;
        ln[k].trace_id.len = 16;
        ln[k].trace_id.data = (uint8_t *)l->trace_id;
        ln[k].span_id.len = 8;
        ln[k].span_id.data = (uint8_t *)l->span_id;
        ln[k].trace_state = cstr(l->trace_state);
        ln[k].dropped_attributes_count = l->dropped_attrs;
        ln[k].flags = l->flags;
        halo_status st =
            mk_attrs(a, &l->attrs, &ln[k].n_attributes, &ln[k].attributes, 1);
        if (st != HALO_OK)
            return st;
        o->links[k] = &ln[k];
    }
    o->n_links = s->n_links;
    return HALO_OK;
}

static halo_status mk_span(halo_arena *a, const halo_span *s, pb_span *o)
{
    *o = span_init;
    o->trace_id.len = 16;
    o->trace_id.data = (uint8_t *)s->trace_id;
    o->span_id.len = 8;
    o->span_id.data = (uint8_t *)s->span_id;
    if (!halo_span_is_root(s)) {
        o->parent_span_id.len = 8;
        o->parent_span_id.data = (uint8_t *)s->parent_span_id;
    }
    o->trace_state = cstr(s->trace_state);
    o->flags = s->flags;
    o->name = cstr(s->name);
    o->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)s->kind;
    o->start_time_unix_nano = s->start_ns;
    o->end_time_unix_nano = s->end_ns;
    o->dropped_attributes_count = s->dropped_attrs;
    o->dropped_events_count = s->dropped_events;
    o->dropped_links_count = s->dropped_links;
    if (s->status_code != 0 || (s->status_message && *s->status_message)) {
        pb_status *st = halo_arena_alloc(a, sizeof *st);
        if (!st)
            return HALO_ENOMEM;
        *st = status_init;
        st->code =
            (Opentelemetry__Proto__Trace__V1__Status__StatusCode)s->status_code;
        st->message = cstr(s->status_message);
        o->status = st;
    }
    halo_status st =
        mk_attrs(a, &s->attrs, &o->n_attributes, &o->attributes, 1);
    if (st == HALO_OK)
        st = mk_events(a, s, o);
    if (st == HALO_OK)
        st = mk_links(a, s, o);
    return st;
}

static halo_status mk_scope_spans(halo_arena *a, const halo_span *const *spans,
                                  size_t n, pb_sspans *o)
{
    const halo_scope *sc =
        spans[0]->scope ? spans[0]->scope : &otlp_empty_scope;
    *o = sspans_init;
    o->schema_url = cstr(sc->schema_url);
    if (sc != &otlp_empty_scope) {
        pb_scope *ps = halo_arena_alloc(a, sizeof *ps);
        if (!ps)
            return HALO_ENOMEM;
        *ps = scope_init;
        ps->name = cstr(sc->name);
        ps->version = cstr(sc->version);
        ps->dropped_attributes_count = sc->dropped_attrs;
        halo_status st =
            mk_attrs(a, &sc->attrs, &ps->n_attributes, &ps->attributes, 1);
        if (st != HALO_OK)
            return st;
        o->scope = ps;
    }
    pb_span *sp = halo_arena_alloc(a, n * sizeof *sp);
    o->spans = halo_arena_alloc(a, n * sizeof *o->spans);
    if (!sp || !o->spans)
        return HALO_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        halo_status st = mk_span(a, spans[i], &sp[i]);
        if (st != HALO_OK)
            return st;
        o->spans[i] = &sp[i];
    }
    o->n_spans = n;
    return HALO_OK;
}

static halo_status mk_resource_spans(halo_arena *a,
                                     const halo_span *const *spans, size_t n,
                                     pb_rspans *o)
{
    const halo_resource *r =
        spans[0]->resource ? spans[0]->resource : &otlp_empty_resource;
    *o = rspans_init;
    o->schema_url = cstr(r->schema_url);
    if (r != &otlp_empty_resource) {
        pb_resource *pr = halo_arena_alloc(a, sizeof *pr);
        if (!pr)
            return HALO_ENOMEM;
        *pr = resource_init;
        pr->dropped_attributes_count = r->dropped_attrs;
        halo_status st =
            mk_attrs(a, &r->attrs, &pr->n_attributes, &pr->attributes, 1);
        if (st != HALO_OK)
            return st;
        o->resource = pr;
    }
    size_t groups = 0;
    for (size_t i = 0; i < n; i += otlp_scope_run_refs(spans, n, i))
        groups++;
    o->scope_spans = halo_arena_alloc(a, groups * sizeof *o->scope_spans);
    pb_sspans *ss = halo_arena_alloc(a, groups * sizeof *ss);
    if (!o->scope_spans || !ss)
        return HALO_ENOMEM;
    size_t g = 0;
    for (size_t i = 0; i < n;) {
        size_t run = otlp_scope_run_refs(spans, n, i);
        halo_status st = mk_scope_spans(a, spans + i, run, &ss[g]);
        if (st != HALO_OK)
            return st;
        o->scope_spans[g] = &ss[g];
        g++;
        i += run;
    }
    o->n_scope_spans = groups;
    return HALO_OK;
}

static halo_status build_request(halo_arena *a, const halo_span *const *spans,
                                 size_t n, pb_request *req)
{
    size_t groups = 0;
    for (size_t i = 0; i < n; i += otlp_resource_run_refs(spans, n, i))
        groups++;
    if (groups == 0)
        return HALO_OK;
    req->resource_spans = halo_arena_alloc(a, groups * sizeof(pb_rspans *));
    pb_rspans *rs = halo_arena_alloc(a, groups * sizeof *rs);
    if (!req->resource_spans || !rs)
        return HALO_ENOMEM;
    size_t g = 0;
    for (size_t i = 0; i < n;) {
        size_t run = otlp_resource_run_refs(spans, n, i);
        halo_status st = mk_resource_spans(a, spans + i, run, &rs[g]);
        if (st != HALO_OK)
            return st;
        req->resource_spans[g] = &rs[g];
        g++;
        i += run;
    }
    req->n_resource_spans = groups;
    return HALO_OK;
}

/* Packs msg into a malloc'd buffer (at least 1 byte, so never NULL on
 * success even for an empty message). */
static halo_status pack(const ProtobufCMessage *msg, uint8_t **out,
                        size_t *out_len)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return HALO_ENOMEM;
    *out_len = protobuf_c_message_pack(msg, buf);
    *out = buf;
    return HALO_OK;
}

halo_status otlp_encode_pb_reference(const halo_span *const *spans, size_t n,
                                     halo_buf *out)
{
    halo_arena *a = halo_arena_new(65536);
    if (!a)
        return HALO_ENOMEM;
    pb_request req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    halo_status st = build_request(a, spans, n, &req);
    if (st == HALO_OK) {
        size_t size = protobuf_c_message_get_packed_size(&req.base);
        if (halo_buf_reserve(out, size)) {
            out->len += protobuf_c_message_pack(
                &req.base, (uint8_t *)out->data + out->len);
            out->data[out->len] = '\0';
        }
        if (out->oom)
            st = HALO_ENOMEM;
    }
    halo_arena_free(a);
    return st;
}

halo_status halo_otlp_encode_pb_refs(const halo_span *const *spans, size_t n,
                                     halo_buf *out)
{
    return otlp_encode_pbenc(spans, n, out);
}

halo_status halo_otlp_encode_pb(const halo_span *spans, size_t n, uint8_t **out,
                                size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    const halo_span **refs = otlp_span_refs(spans, n);
    if (!refs)
        return HALO_ENOMEM;
    halo_buf b = HALO_BUF_INIT;
    halo_status st = halo_otlp_encode_pb_refs(refs, n, &b);
    free(refs);
    if (st != HALO_OK) {
        halo_buf_free(&b);
        return st;
    }
    *out_len = b.len;
    *out = (uint8_t *)halo_buf_steal(&b); /* never NULL: not oom */
    return *out ? HALO_OK : HALO_ENOMEM;
}

/* --- responses ------------------------------------------------------------ */

halo_status halo_otlp_response_pb(int64_t rejected, const char *msg,
                                  uint8_t **out, size_t *out_len)
{
    pb_response resp =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
    pb_partial partial =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
    *out = NULL;
    *out_len = 0;
    if (rejected > 0) {
        partial.rejected_spans = rejected;
        partial.error_message = cstr(msg);
        resp.partial_success = &partial;
    }
    return pack(&resp.base, out, out_len);
}

halo_status halo_rpc_status_pb(int code, const char *msg, uint8_t **out,
                               size_t *out_len)
{
    Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
    status.code = code;
    status.message = cstr(msg);
    *out = NULL;
    *out_len = 0;
    return pack(&status.base, out, out_len);
}
