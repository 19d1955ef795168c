/*
 * test_otlp_codec.c -- the OTLP codecs: protobuf and OTLP/JSON round trips
 * of a span set that uses every field and value type, the specification's
 * JSON example, malformed input (truncated / garbage protobuf, bad hex,
 * wrong JSON types, nesting and expansion limits), per-span rejects, the
 * tolerated JSON spellings, HALO-style JSONL in its three shapes, and the
 * response encoders. Ends with a decode throughput figure (printed, not
 * asserted).
 */
#include "fixtures.h"
#include "harness.h"

#include "core/arena.h"
#include "core/buf.h"
#include "core/json_budget.h"
#include "core/span.h"
#include "receivers/otlp/otlp_codec.h"

#include "google/rpc/status.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* --- a rich span set ------------------------------------------------------ */

static void fill_id(uint8_t *id, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        id[i] = (uint8_t)(seed + i * 17 + 1);
}

/* Storage for the rich set (static: tests run one at a time). */
static halo_value inner_arr[3], nested_arr[2], deep_arr[1];
static halo_kv inner_kv[2], res_a_attrs[3], res_b_attrs[1], scope_attrs[1];
static halo_kv span_attrs[16], ev_attrs[2], link_attrs[1];
static halo_event events[2];
static halo_link links[2];
static halo_resource res_a, res_b, res_b_copy;
static halo_scope scope_a1, scope_a2;
static const char raw_bytes[] = {0, 1, 2, (char)0xfe, (char)0xff, 'x'};

#define N_RICH 6

static void make_rich(halo_span *s)
{
    memset(s, 0, N_RICH * sizeof *s);
    inner_arr[0] = v_int(1);
    inner_arr[1] = v_str("two");
    inner_arr[2] = v_bool(false);
    deep_arr[0] = v_dbl(2.5);
    nested_arr[0] = v_arr(inner_arr, 3);
    nested_arr[1] = v_arr(deep_arr, 1);
    inner_kv[0] = (halo_kv){"inner.key", v_str("inner value")};
    inner_kv[1] = (halo_kv){"inner.list", v_arr(inner_arr, 3)};

    res_a_attrs[0] = (halo_kv){"service.name", v_str("support-agent")};
    res_a_attrs[1] = (halo_kv){"host.cpus", v_int(8)};
    res_a_attrs[2] = (halo_kv){"weights", v_arr(deep_arr, 1)};
    res_a = (halo_resource){{res_a_attrs, 3}, 2, "https://schema/res/1.2"};
    res_b_attrs[0] = (halo_kv){"service.name", v_str("other")};
    res_b = (halo_resource){{res_b_attrs, 1}, 0, ""};
    res_b_copy = res_b; /* equal content, other pointer */
    scope_attrs[0] = (halo_kv){"scope.attr", v_bool(true)};
    scope_a1 = (halo_scope){
        "lib.one", "1.0.0", {scope_attrs, 1}, 1, "https://schema/scope"};
    scope_a2 = (halo_scope){"lib.two", "", {NULL, 0}, 0, ""};

    int k = 0;
    span_attrs[k++] = (halo_kv){"str", v_str("h\xc3\xa9llo \"q\" \\ \n\t")};
    span_attrs[k++] = (halo_kv){"empty.str", v_str("")};
    span_attrs[k++] = (halo_kv){"int.max", v_int(INT64_MAX)};
    span_attrs[k++] = (halo_kv){"int.min", v_int(INT64_MIN)};
    span_attrs[k++] = (halo_kv){"int.neg", v_int(-42)};
    span_attrs[k++] = (halo_kv){"dbl", v_dbl(0.1)};
    span_attrs[k++] = (halo_kv){"dbl.negzero", v_dbl(-0.0)};
    span_attrs[k++] = (halo_kv){"dbl.big", v_dbl(1e300)};
    span_attrs[k++] = (halo_kv){"dbl.nan", v_dbl(NAN)};
    span_attrs[k++] = (halo_kv){"dbl.inf", v_dbl(-INFINITY)};
    span_attrs[k++] = (halo_kv){"bool", v_bool(true)};
    span_attrs[k++] = (halo_kv){"bytes", v_bytes(raw_bytes, sizeof raw_bytes)};
    span_attrs[k++] = (halo_kv){"empty.value", (halo_value){0}};
    span_attrs[k++] = (halo_kv){"nested", v_arr(nested_arr, 2)};
    span_attrs[k++] = (halo_kv){"kv", v_kvl(inner_kv, 2)};
    span_attrs[k++] = (halo_kv){"empty.arr", v_arr(NULL, 0)};

    ev_attrs[0] = (halo_kv){"exception.message", v_str("boom")};
    ev_attrs[1] = (halo_kv){"attempt", v_int(3)};
    events[0] =
        (halo_event){1700000000123456789ULL, "exception", {ev_attrs, 2}, 1};
    events[1] = (halo_event){1700000000200000000ULL, "", {NULL, 0}, 0};
    link_attrs[0] = (halo_kv){"link.kind", v_str("follows")};
    fill_id(links[0].trace_id, 16, 90);
    fill_id(links[0].span_id, 8, 91);
    links[0].trace_state = "vendor=1";
    links[0].attrs = (halo_attrs){link_attrs, 1};
    links[0].dropped_attrs = 4;
    links[0].flags = 0x301;
    fill_id(links[1].trace_id, 16, 92);
    fill_id(links[1].span_id, 8, 93);
    links[1].trace_state = "";

    for (int i = 0; i < N_RICH; i++) {
        fill_id(s[i].trace_id, 16, (uint8_t)(i < 3 ? 10 : 20));
        fill_id(s[i].span_id, 8, (uint8_t)(30 + i));
        if (i != 0 && i != 3)
            fill_id(s[i].parent_span_id, 8, (uint8_t)(30 + i - 1));
        s[i].trace_state = "";
        s[i].name = "span";
        s[i].status_message = "";
        s[i].kind = i % 6;
        s[i].start_ns = 1700000000000000000ULL + (uint64_t)i * 1000;
        s[i].end_ns = s[i].start_ns + 999;
    }
    /* 0, 1: resource A / scope A1; 2: resource A / scope A2;
     * 3: resource B; 4: copy of B (equal content); 5: no resource/scope */
    s[0].resource = s[1].resource = s[2].resource = &res_a;
    s[0].scope = s[1].scope = &scope_a1;
    s[2].scope = &scope_a2;
    s[3].resource = &res_b;
    s[4].resource = &res_b_copy;
    s[3].scope = s[4].scope = &scope_a2;

    s[0].name = "agent.run \xe2\x9c\x93";
    s[0].trace_state = "rojo=00f067aa0ba902b7";
    s[0].flags = 0x101;
    s[0].attrs = (halo_attrs){span_attrs, 16};
    s[0].dropped_attrs = 7;
    s[0].events = events;
    s[0].n_events = 2;
    s[0].dropped_events = 8;
    s[0].links = links;
    s[0].n_links = 2;
    s[0].dropped_links = 9;
    s[0].status_code = HALO_STATUS_ERROR;
    s[0].status_message = "tool failed: \"timeout\"";
    s[1].status_code = HALO_STATUS_OK;
    s[1].attrs = (halo_attrs){span_attrs + 13, 2};
    s[5].start_ns = 0;
    s[5].end_ns = UINT64_MAX;
}

/* --- deep comparison (independent of the codec's own) --------------------- */

static bool value_eq(const halo_value *a, const halo_value *b);

static bool attrs_eq(const halo_kv *a, size_t an, const halo_kv *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (!a[i].key || !b[i].key || strcmp(a[i].key, b[i].key) ||
            !value_eq(&a[i].value, &b[i].value))
            return false;
    return true;
}

static bool value_eq(const halo_value *a, const halo_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case HALO_VAL_EMPTY:
        return true;
    case HALO_VAL_STRING:
        if (a->u.s.ptr[a->u.s.len] != '\0' || b->u.s.ptr[b->u.s.len] != '\0')
            return false; /* strings must be NUL-terminated */
        /* fall through */
    case HALO_VAL_BYTES:
        return a->u.s.len == b->u.s.len &&
               memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
    case HALO_VAL_BOOL:
        return a->u.b == b->u.b;
    case HALO_VAL_INT:
        return a->u.i == b->u.i;
    case HALO_VAL_DOUBLE:
        if (isnan(a->u.d))
            return isnan(b->u.d);
        return memcmp(&a->u.d, &b->u.d, sizeof(double)) == 0;
    case HALO_VAL_ARRAY:
        if (a->u.arr.n != b->u.arr.n)
            return false;
        for (size_t i = 0; i < a->u.arr.n; i++)
            if (!value_eq(&a->u.arr.items[i], &b->u.arr.items[i]))
                return false;
        return true;
    case HALO_VAL_KVLIST:
        return attrs_eq(a->u.kv.items, a->u.kv.n, b->u.kv.items, b->u.kv.n);
    }
    return false;
}

static bool streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static const char *span_diff(const halo_span *a, const halo_span *b)
{
    if (memcmp(a->trace_id, b->trace_id, 16))
        return "trace_id";
    if (memcmp(a->span_id, b->span_id, 8))
        return "span_id";
    if (memcmp(a->parent_span_id, b->parent_span_id, 8))
        return "parent_span_id";
    if (!streq(a->trace_state, b->trace_state))
        return "trace_state";
    if (a->flags != b->flags)
        return "flags";
    if (!streq(a->name, b->name))
        return "name";
    if (a->kind != b->kind)
        return "kind";
    if (a->start_ns != b->start_ns || a->end_ns != b->end_ns)
        return "times";
    if (a->status_code != b->status_code ||
        !streq(a->status_message, b->status_message))
        return "status";
    if (!attrs_eq(a->attrs.items, a->attrs.n, b->attrs.items, b->attrs.n))
        return "attributes";
    if (a->dropped_attrs != b->dropped_attrs ||
        a->dropped_events != b->dropped_events ||
        a->dropped_links != b->dropped_links)
        return "dropped counts";
    if (a->n_events != b->n_events)
        return "n_events";
    for (size_t i = 0; i < a->n_events; i++) {
        const halo_event *x = &a->events[i], *y = &b->events[i];
        if (x->time_ns != y->time_ns || !streq(x->name, y->name) ||
            x->dropped_attrs != y->dropped_attrs ||
            !attrs_eq(x->attrs.items, x->attrs.n, y->attrs.items, y->attrs.n))
            return "events";
    }
    if (a->n_links != b->n_links)
        return "n_links";
    for (size_t i = 0; i < a->n_links; i++) {
        const halo_link *x = &a->links[i], *y = &b->links[i];
        if (memcmp(x->trace_id, y->trace_id, 16) ||
            memcmp(x->span_id, y->span_id, 8) ||
            !streq(x->trace_state, y->trace_state) || x->flags != y->flags ||
            x->dropped_attrs != y->dropped_attrs ||
            !attrs_eq(x->attrs.items, x->attrs.n, y->attrs.items, y->attrs.n))
            return "links";
    }
    if (!a->resource || !b->resource || !a->scope || !b->scope)
        return "NULL resource or scope";
    const halo_resource *r1 = a->resource, *r2 = b->resource;
    if (!streq(r1->schema_url, r2->schema_url) ||
        r1->dropped_attrs != r2->dropped_attrs ||
        !attrs_eq(r1->attrs.items, r1->attrs.n, r2->attrs.items, r2->attrs.n))
        return "resource";
    const halo_scope *s1 = a->scope, *s2 = b->scope;
    if (!streq(s1->name, s2->name) || !streq(s1->version, s2->version) ||
        !streq(s1->schema_url, s2->schema_url) ||
        s1->dropped_attrs != s2->dropped_attrs ||
        !attrs_eq(s1->attrs.items, s1->attrs.n, s2->attrs.items, s2->attrs.n))
        return "scope";
    return NULL;
}

/* The span set as decoded must equal the rich set (the sixth span's missing
 * resource and scope come back as empty ones). */
static int check_rich(const halo_otlp_result *r, halo_span *orig)
{
    static const halo_resource empty_res = {{NULL, 0}, 0, ""};
    static const halo_scope empty_scope = {"", "", {NULL, 0}, 0, ""};
    orig[5].resource = &empty_res;
    orig[5].scope = &empty_scope;
    if (r->n != N_RICH || r->rejected != 0)
        return -1;
    for (int i = 0; i < N_RICH; i++) {
        const char *d = span_diff(&r->spans[i], &orig[i]);
        if (d) {
            fprintf(stderr, "  span %d differs in %s\n", i, d);
            return i + 1;
        }
    }
    return 0;
}

/* --- protobuf ------------------------------------------------------------- */

TEST(pb_roundtrip_rich)
{
    halo_span spans[N_RICH];
    make_rich(spans);
    uint8_t *pb = NULL;
    size_t len = 0;
    CHECK_INT(halo_otlp_encode_pb(spans, N_RICH, &pb, &len), HALO_OK);
    CHECK(pb && len > 100);
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    halo_status st = halo_otlp_decode_pb(pb, len, a, &r, &err);
    free(pb);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(check_rich(&r, spans), 0);
    /* grouping: 0..2 share resource A, 0..1 share scope A1; 3 and 4 (equal
     * content) share one resource entry */
    CHECK(r.spans[0].resource == r.spans[2].resource);
    CHECK(r.spans[0].scope == r.spans[1].scope);
    CHECK(r.spans[1].scope != r.spans[2].scope);
    CHECK(r.spans[3].resource == r.spans[4].resource);
    CHECK(r.spans[3].resource != r.spans[2].resource);
    CHECK(halo_span_is_root(&r.spans[0]));
    CHECK(!halo_span_is_root(&r.spans[1]));
    halo_arena_free(a);
}

TEST(pb_empty_request)
{
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK_INT(halo_otlp_decode_pb(NULL, 0, a, &r, &err), HALO_OK);
    CHECK_INT(r.n, 0);
    CHECK_INT(r.rejected, 0);
    halo_arena_free(a);
}

TEST(pb_truncated_is_einval)
{
    halo_span spans[N_RICH];
    make_rich(spans);
    uint8_t *pb;
    size_t len;
    CHECK_INT(halo_otlp_encode_pb(spans, N_RICH, &pb, &len), HALO_OK);
    /* every cut inside the first top-level field (resourceSpans[0]) breaks
     * its length prefix */
    CHECK(pb[0] == 0x0a);
    size_t cuts[] = {len - 1, 1, 2, 5, 40, len / 2};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        halo_arena *a = halo_arena_new(0);
        halo_otlp_result r;
        halo_err err = {{0}};
        halo_status st = halo_otlp_decode_pb(pb, cuts[i], a, &r, &err);
        halo_arena_free(a);
        if (cuts[i] == len / 2 && st == HALO_OK)
            continue; /* may fall on a field boundary */
        CHECK_INT(st, HALO_EINVAL);
        CHECK_STR(err.msg, "invalid protobuf: could not decode "
                           "ExportTraceServiceRequest");
        CHECK_INT(r.n, 0);
    }
    free(pb);
}

TEST(pb_garbage_is_einval)
{
    static const struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        {"\x0a\xff\xff\xff\xff\x0f", 6}, /* length past the end */
        {"\x0f", 1},                     /* wire type 7 */
        {"\x08\x01", 2},                 /* message field as varint */
        {"\x0b\x0c", 2},                 /* group */
        {"\x00\x00", 2},                 /* field number 0 */
        {"\x0a\x02\x12\x05", 4},         /* inner length too long */
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11}, /* varint */
        {"hello, I am not protobuf at all", 31},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        halo_arena *a = halo_arena_new(0);
        halo_otlp_result r;
        halo_err err = {{0}};
        halo_status st = halo_otlp_decode_pb((const uint8_t *)cases[i].bytes,
                                             cases[i].len, a, &r, &err);
        halo_arena_free(a);
        if (st != HALO_EINVAL)
            fprintf(stderr, "  case %zu: status %d\n", i, (int)st);
        CHECK_INT(st, HALO_EINVAL);
        CHECK_CONTAINS(err.msg, "invalid protobuf");
    }
}

typedef Opentelemetry__Proto__Trace__V1__Span pb_span;

/* A request of spans made directly with protobuf-c, to send ids halo's own
 * encoder cannot produce. */
static uint8_t *pack_spans(pb_span **spans, size_t n, size_t *len)
{
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss =
        OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs =
        OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp = &ss;
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rsp = &rs;
    ss.spans = spans;
    ss.n_spans = n;
    rs.scope_spans = &ssp;
    rs.n_scope_spans = 1;
    req.resource_spans = &rsp;
    req.n_resource_spans = 1;
    *len = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *buf = malloc(*len);
    protobuf_c_message_pack(&req.base, buf);
    return buf;
}

TEST(pb_invalid_ids_rejected_others_kept)
{
    static uint8_t tid[16], sid[8], zero[16];
    fill_id(tid, 16, 1);
    fill_id(sid, 8, 2);
    pb_span s[4];
    pb_span *ptrs[4];
    for (int i = 0; i < 4; i++) {
        opentelemetry__proto__trace__v1__span__init(&s[i]);
        s[i].trace_id = (ProtobufCBinaryData){16, tid};
        s[i].span_id = (ProtobufCBinaryData){8, sid};
        ptrs[i] = &s[i];
    }
    s[0].name = "kept";
    s[1].trace_id.len = 15;                              /* short */
    s[2].span_id = (ProtobufCBinaryData){8, zero};       /* all zero */
    s[3].parent_span_id = (ProtobufCBinaryData){4, sid}; /* bad parent */
    size_t len;
    uint8_t *buf = pack_spans(ptrs, 4, &len);
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK_INT(halo_otlp_decode_pb(buf, len, a, &r, &err), HALO_OK);
    free(buf);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.rejected, 3);
    CHECK_STR(r.reject_msg, "resourceSpans[0].scopeSpans[0].spans[1]: invalid "
                            "trace_id (length 15, expected 16)");
    CHECK_STR(r.spans[0].name, "kept");
    /* absent fields are "" and shared empties, never NULL */
    CHECK_STR(r.spans[0].status_message, "");
    CHECK_STR(r.spans[0].trace_state, "");
    CHECK(r.spans[0].resource && r.spans[0].scope);
    CHECK_STR(r.spans[0].scope->name, "");
    CHECK_STR(r.spans[0].resource->schema_url, "");
    CHECK_INT(r.spans[0].resource->attrs.n, 0);
    halo_arena_free(a);
}

TEST(pb_all_zero_trace_id_rejected)
{
    halo_span spans[N_RICH];
    make_rich(spans);
    memset(spans[1].trace_id, 0, 16);
    uint8_t *pb;
    size_t len;
    CHECK_INT(halo_otlp_encode_pb(spans, 3, &pb, &len), HALO_OK);
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK_INT(halo_otlp_decode_pb(pb, len, a, &r, &err), HALO_OK);
    free(pb);
    CHECK_INT(r.n, 2);
    CHECK_INT(r.rejected, 1);
    CHECK_STR(r.reject_msg, "resourceSpans[0].scopeSpans[0].spans[1]: invalid "
                            "trace_id (all zero)");
    CHECK(memcmp(r.spans[1].span_id, spans[2].span_id, 8) == 0);
    halo_arena_free(a);
}

TEST(pb_unknown_fields_ignored)
{
    halo_span spans[N_RICH];
    make_rich(spans);
    uint8_t *pb;
    size_t len;
    CHECK_INT(halo_otlp_encode_pb(spans, 2, &pb, &len), HALO_OK);
    /* field 99 (varint 7) and field 100 (bytes "abc") at the top level */
    uint8_t *ext = malloc(len + 16);
    memcpy(ext, pb, len);
    size_t n = len;
    ext[n++] = 0x98; /* 99 << 3 | 0 */
    ext[n++] = 0x06;
    ext[n++] = 0x07;
    ext[n++] = 0xa2; /* 100 << 3 | 2 */
    ext[n++] = 0x06;
    ext[n++] = 0x03;
    memcpy(ext + n, "abc", 3);
    n += 3;
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK_INT(halo_otlp_decode_pb(ext, n, a, &r, &err), HALO_OK);
    CHECK_INT(r.n, 2);
    CHECK_STR(r.spans[0].name, spans[0].name);
    free(pb);
    free(ext);
    halo_arena_free(a);
}

/* Wire bytes for a request with one span whose single attribute value is an
 * array nested `levels` deep; built from the inside out. */
static uint8_t *nested_request(size_t levels, size_t *out_len)
{
    size_t cap = levels * 24 + 256, pos = cap;
    uint8_t *b = malloc(cap);
#define PUT(byte) (b[--pos] = (uint8_t)(byte))
#define PUT_LEN(n)                                                             \
    do {                                                                       \
        uint8_t tmp_[10];                                                      \
        size_t k_ = 0, v_ = (n);                                               \
        do {                                                                   \
            tmp_[k_++] = (uint8_t)((v_ & 0x7f) | (v_ > 0x7f ? 0x80 : 0));      \
            v_ >>= 7;                                                          \
        } while (v_);                                                          \
        while (k_)                                                             \
            PUT(tmp_[--k_]);                                                   \
    } while (0)
    size_t end = cap;
    PUT(0x01); /* innermost AnyValue: int_value = 1 */
    PUT(0x18);
    for (size_t i = 1; i < levels; i++) {
        size_t inner = end - pos;
        PUT_LEN(inner); /* ArrayValue.values = 1 */
        PUT(0x0a);
        inner = end - pos;
        PUT_LEN(inner); /* AnyValue.array_value = 5 */
        PUT(0x2a);
    }
    size_t v = end - pos;
    PUT_LEN(v); /* KeyValue.value = 2 */
    PUT(0x12);
    PUT('k');
    PUT(0x01);
    PUT(0x0a); /* KeyValue.key = "k" */
    size_t kv = end - pos;
    PUT_LEN(kv); /* Span.attributes = 9 */
    PUT(0x4a);
    for (int i = 7; i >= 0; i--)
        PUT(i + 1);
    PUT(0x08);
    PUT(0x12); /* span_id */
    for (int i = 15; i >= 0; i--)
        PUT(i + 1);
    PUT(0x10);
    PUT(0x0a); /* trace_id */
    size_t sp = end - pos;
    PUT_LEN(sp);
    PUT(0x12); /* ScopeSpans.spans = 2 */
    size_t ss = end - pos;
    PUT_LEN(ss);
    PUT(0x12); /* ResourceSpans.scope_spans = 2 */
    size_t rs = end - pos;
    PUT_LEN(rs);
    PUT(0x0a); /* request.resource_spans = 1 */
#undef PUT
#undef PUT_LEN
    *out_len = end - pos;
    memmove(b, b + pos, *out_len);
    return b;
}

TEST(pb_value_nesting_limit)
{
    size_t depths[] = {32, 33, 200000};
    for (int i = 0; i < 3; i++) {
        size_t len;
        uint8_t *buf = nested_request(depths[i], &len);
        halo_arena *a = halo_arena_new(0);
        halo_otlp_result r;
        halo_err err = {{0}};
        halo_status st = halo_otlp_decode_pb(buf, len, a, &r, &err);
        free(buf);
        if (depths[i] == 32) {
            CHECK_INT(st, HALO_OK);
            CHECK_INT(r.n, 1);
            const halo_value *v = &r.spans[0].attrs.items[0].value;
            for (int d = 1; d < 32; d++) {
                CHECK_INT(v->type, HALO_VAL_ARRAY);
                CHECK_INT(v->u.arr.n, 1);
                v = &v->u.arr.items[0];
            }
            CHECK_INT(v->type, HALO_VAL_INT);
            CHECK_INT(v->u.i, 1);
        } else {
            CHECK_INT(st, HALO_EINVAL);
            CHECK_CONTAINS(err.msg, "nested deeper than 32");
        }
        halo_arena_free(a);
    }
}

TEST(pb_expansion_limit)
{
    /* 3 MiB of empty spans would need gigabytes once decoded */
    size_t n_spans = 3u << 19, body = 2 * n_spans;
    uint8_t *b = malloc(body + 32);
    size_t pos = 0;
    b[pos++] = 0x0a; /* resource_spans, length varint of body + 5 */
    size_t rs_len = body + 5, ss_len = body;
    for (size_t v = rs_len; v; v >>= 7)
        b[pos++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    b[pos++] = 0x12; /* scope_spans */
    for (size_t v = ss_len; v; v >>= 7)
        b[pos++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    CHECK(pos == 1 + 4 + 1 + 4); /* rs_len and ss_len take 4 bytes each */
    for (size_t i = 0; i < n_spans; i++) {
        b[pos++] = 0x12;
        b[pos++] = 0x00;
    }
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    halo_status st = halo_otlp_decode_pb(b, pos, a, &r, &err);
    free(b);
    CHECK_INT(st, HALO_ETOOBIG);
    CHECK_CONTAINS(err.msg, "once decoded");
    CHECK(halo_arena_reserved(a) < (1u << 20));
    halo_arena_free(a);
}

/* --- OTLP/JSON ------------------------------------------------------------ */

static halo_status decode_json_str(const char *json, halo_arena *a,
                                   halo_otlp_result *r, halo_err *err)
{
    return halo_otlp_decode_json(json, strlen(json), a, r, err);
}

TEST(json_roundtrip_rich)
{
    halo_span spans[N_RICH];
    make_rich(spans);
    halo_buf b = HALO_BUF_INIT;
    CHECK_INT(halo_otlp_encode_json(spans, N_RICH, &b), HALO_OK);
    /* OTLP/JSON spellings */
    CHECK_CONTAINS(b.data, "\"intValue\":\"-9223372036854775808\"");
    CHECK_CONTAINS(b.data, "\"startTimeUnixNano\":\"1700000000000000000\"");
    CHECK_CONTAINS(b.data, "\"endTimeUnixNano\":\"18446744073709551615\"");
    CHECK_CONTAINS(b.data, "\"bytesValue\":\"AAEC/v94\"");
    CHECK_CONTAINS(b.data, "\"doubleValue\":0.1}");
    CHECK_CONTAINS(b.data, "\"doubleValue\":\"NaN\"");
    CHECK_CONTAINS(b.data, "\"traceId\":\"0b1c2d3e4f60718293a4b5c6d7e8f90a\"");
    CHECK_CONTAINS(b.data, "\"status\":{\"message\":\"tool failed: "
                           "\\\"timeout\\\"\",\"code\":2}");
    CHECK_CONTAINS(b.data, "\"schemaUrl\":\"https://schema/res/1.2\"");
    /* three resource entries: A, B (+ its equal copy), none */
    int n_res = 0;
    for (const char *p = b.data; (p = strstr(p, "\"scopeSpans\"")); p++)
        n_res++;
    CHECK_INT(n_res, 3);

    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    halo_status st = halo_otlp_decode_json(b.data, b.len, a, &r, &err);
    if (st != HALO_OK)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(check_rich(&r, spans), 0);
    CHECK(r.spans[0].resource == r.spans[1].resource);
    CHECK(r.spans[3].resource == r.spans[4].resource);

    /* and JSON -> spans -> protobuf -> spans keeps everything too */
    uint8_t *pb;
    size_t len;
    CHECK_INT(halo_otlp_encode_pb(r.spans, r.n, &pb, &len), HALO_OK);
    halo_otlp_result r2;
    CHECK_INT(halo_otlp_decode_pb(pb, len, a, &r2, &err), HALO_OK);
    free(pb);
    CHECK_INT(check_rich(&r2, spans), 0);
    halo_buf_free(&b);
    halo_arena_free(a);
}

/* The example request of the OTLP specification (examples/trace.json). */
static const char spec_example[] =
    "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":"
    "\"service.name\",\"value\":{\"stringValue\":\"my.service\"}}]},"
    "\"scopeSpans\":[{\"scope\":{\"name\":\"my.library\",\"version\":"
    "\"1.0.0\",\"attributes\":[{\"key\":\"my.scope.attribute\",\"value\":"
    "{\"stringValue\":\"some scope attribute\"}}]},\"spans\":[{\"traceId\":"
    "\"5B8EFFF798038103D269B633813FC60C\",\"spanId\":\"EEE19B7EC3C1B174\","
    "\"parentSpanId\":\"EEE19B7EC3C1B173\",\"name\":\"I'm a server span\","
    "\"startTimeUnixNano\":1544712660000000000,\"endTimeUnixNano\":"
    "1544712661000000000,\"kind\":2,\"attributes\":[{\"key\":"
    "\"my.span.attr\",\"value\":{\"stringValue\":\"some value\"}}]}]}]}]}";

TEST(json_spec_example)
{
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK_INT(decode_json_str(spec_example, a, &r, &err), HALO_OK);
    CHECK_INT(r.n, 1);
    const halo_span *s = &r.spans[0];
    char hex[33];
    halo_hex_encode(s->trace_id, 16, hex);
    CHECK_STR(hex, "5b8efff798038103d269b633813fc60c");
    halo_hex_encode(s->span_id, 8, hex);
    CHECK_STR(hex, "eee19b7ec3c1b174");
    halo_hex_encode(s->parent_span_id, 8, hex);
    CHECK_STR(hex, "eee19b7ec3c1b173");
    CHECK_STR(s->name, "I'm a server span");
    CHECK_INT(s->kind, 2);
    CHECK(s->start_ns == 1544712660000000000ULL);
    CHECK(s->end_ns == 1544712661000000000ULL);
    CHECK_INT(s->attrs.n, 1);
    CHECK_STR(s->attrs.items[0].key, "my.span.attr");
    CHECK_STR(halo_attrs_get(&s->attrs, "my.span.attr")->u.s.ptr, "some value");
    CHECK_STR(halo_attrs_get(&s->resource->attrs, "service.name")->u.s.ptr,
              "my.service");
    CHECK_STR(s->scope->name, "my.library");
    CHECK_STR(s->scope->version, "1.0.0");
    CHECK_STR(s->scope->attrs.items[0].value.u.s.ptr, "some scope attribute");
    CHECK_INT(s->status_code, HALO_STATUS_UNSET);
    CHECK_STR(s->status_message, "");
    halo_arena_free(a);
}

TEST(json_invalid_json)
{
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK_INT(decode_json_str("{\"resourceSpans\": [}", a, &r, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "invalid JSON at line 1 column ");
    CHECK_INT(decode_json_str("[]", a, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "expected a JSON object");
    CHECK_INT(decode_json_str("{}", a, &r, &err), HALO_OK);
    CHECK_INT(r.n, 0);
    halo_arena_free(a);
}

/* A request with one span whose members are `members` (a JSON fragment). */
static halo_status one_span(const char *members, halo_arena *a,
                            halo_otlp_result *r, halo_err *err)
{
    char json[4096];
    snprintf(json, sizeof json,
             "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{"
             "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
             "\"spanId\":\"0102030405060708\"%s%s}]}]}]}",
             *members ? "," : "", members);
    return decode_json_str(json, a, r, err);
}

TEST(json_bad_hex_names_path)
{
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    const char *json =
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
        "\"5B8EFFF798038103D269B633813FC60\",\"spanId\":\"EEE19B7EC3C1B174\"}"
        "]}]}]}";
    CHECK_INT(decode_json_str(json, a, &r, &err), HALO_EINVAL);
    CHECK_STR(err.msg, "resourceSpans[0].scopeSpans[0].spans[0].traceId: "
                       "expected 32 hex digits, got 31");
    CHECK_INT(r.n, 0);
    CHECK_INT(one_span("\"parentSpanId\":\"01020304050607zz\"", a, &r, &err),
              HALO_EINVAL);
    CHECK_STR(err.msg, "resourceSpans[0].scopeSpans[0].spans[0].parentSpanId: "
                       "invalid hex digit at position 14");
    CHECK_INT(one_span("\"links\":[{\"traceId\":7}]", a, &r, &err),
              HALO_EINVAL);
    CHECK_STR(err.msg, "resourceSpans[0].scopeSpans[0].spans[0].links[0]."
                       "traceId: expected a string of 32 hex digits");
    halo_arena_free(a);
}

TEST(json_zero_trace_id_rejected_others_kept)
{
    const char *json =
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":["
        "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
        "\"spanId\":\"0102030405060708\",\"name\":\"a\"},"
        "{\"traceId\":\"00000000000000000000000000000000\","
        "\"spanId\":\"0102030405060708\",\"name\":\"b\"},"
        "{\"traceId\":\"0102030405060708090A0B0C0D0E0F10\","
        "\"spanId\":\"0102030405060709\",\"parentSpanId\":\"\",\"name\":\"c\"},"
        "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
        "\"spanId\":\"01020304050607\",\"name\":\"d\"}"
        "]}]}]}";
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK_INT(decode_json_str(json, a, &r, &err), HALO_OK);
    CHECK_INT(r.n, 2);
    CHECK_INT(r.rejected, 2);
    CHECK_STR(r.reject_msg, "resourceSpans[0].scopeSpans[0].spans[1]: invalid "
                            "trace_id (all zero)");
    CHECK_STR(r.spans[0].name, "a");
    CHECK_STR(r.spans[1].name, "c");
    CHECK(halo_span_is_root(&r.spans[1]));
    CHECK(r.spans[1].trace_id[9] == 0x0a);
    CHECK(r.spans[0].resource && r.spans[0].scope);
    /* spans without ids are rejected too, also when none is kept */
    CHECK_INT(decode_json_str("{\"resourceSpans\":[{\"scopeSpans\":[{"
                              "\"spans\":[{\"name\":\"no ids\"},{}]}]}]}",
                              a, &r, &err),
              HALO_OK);
    CHECK_INT(r.n, 0);
    CHECK_INT(r.rejected, 2);
    CHECK_STR(r.reject_msg, "resourceSpans[0].scopeSpans[0].spans[0]: invalid "
                            "trace_id (length 0, expected 16)");
    halo_arena_free(a);
}

TEST(json_int64_as_string_and_number)
{
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK_INT(one_span("\"startTimeUnixNano\":\"1544712660000000001\","
                       "\"endTimeUnixNano\":1544712661000000002,"
                       "\"attributes\":["
                       "{\"key\":\"s\",\"value\":{\"intValue\":\"-5\"}},"
                       "{\"key\":\"n\",\"value\":{\"intValue\":123}},"
                       "{\"key\":\"d\",\"value\":{\"doubleValue\":3}},"
                       "{\"key\":\"ds\",\"value\":{\"doubleValue\":\"2.5\"}},"
                       "{\"key\":\"inf\",\"value\":"
                       "{\"doubleValue\":\"Infinity\"}}],"
                       "\"droppedAttributesCount\":\"4\"",
                       a, &r, &err),
              HALO_OK);
    CHECK_INT(r.n, 1);
    const halo_span *s = &r.spans[0];
    CHECK(s->start_ns == 1544712660000000001ULL);
    CHECK(s->end_ns == 1544712661000000002ULL);
    CHECK_INT(s->attrs.items[0].value.type, HALO_VAL_INT);
    CHECK_INT(s->attrs.items[0].value.u.i, -5);
    CHECK_INT(s->attrs.items[1].value.u.i, 123);
    CHECK_INT(s->attrs.items[2].value.type, HALO_VAL_DOUBLE);
    CHECK(s->attrs.items[2].value.u.d == 3.0);
    CHECK(s->attrs.items[3].value.u.d == 2.5);
    CHECK(isinf(s->attrs.items[4].value.u.d));
    CHECK_INT(s->dropped_attrs, 4);

    /* wrong types name the path */
    CHECK_INT(one_span("\"startTimeUnixNano\":\"12x\"", a, &r, &err),
              HALO_EINVAL);
    CHECK_STR(err.msg, "resourceSpans[0].scopeSpans[0].spans[0]."
                       "startTimeUnixNano: expected an integer or a string of "
                       "digits");
    CHECK_INT(one_span("\"attributes\":[{\"key\":\"x\",\"value\":{"
                       "\"intValue\":true}}]",
                       a, &r, &err),
              HALO_EINVAL);
    CHECK_STR(err.msg, "resourceSpans[0].scopeSpans[0].spans[0].attributes[0]."
                       "value.intValue: expected an integer or a string of "
                       "digits");
    CHECK_INT(one_span("\"attributes\":[{\"key\":\"x\",\"value\":{"
                       "\"intValue\":\"9223372036854775808\"}}]",
                       a, &r, &err),
              HALO_EINVAL);
    CHECK_INT(one_span("\"name\":5", a, &r, &err), HALO_EINVAL);
    CHECK_STR(err.msg, "resourceSpans[0].scopeSpans[0].spans[0].name: "
                       "expected a string");
    CHECK_INT(one_span("\"droppedLinksCount\":4294967296", a, &r, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "droppedLinksCount: integer out of range");
    halo_arena_free(a);
}

TEST(json_enums_as_names)
{
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK_INT(one_span("\"kind\":\"SPAN_KIND_SERVER\",\"status\":{\"code\":"
                       "\"STATUS_CODE_ERROR\",\"message\":\"bad\"}",
                       a, &r, &err),
              HALO_OK);
    CHECK_INT(r.spans[0].kind, 2);
    CHECK_INT(r.spans[0].status_code, HALO_STATUS_ERROR);
    CHECK_STR(r.spans[0].status_message, "bad");
    CHECK_INT(one_span("\"kind\":\"SPAN_KIND_SIDEWAYS\"", a, &r, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "spans[0].kind: expected an enum");
    halo_arena_free(a);
}

TEST(json_unknown_fields_ignored)
{
    const char *json =
        "{\"future\":1,\"resourceSpans\":[{\"x\":[1,2],\"resource\":"
        "{\"attributes\":[],\"entityRefs\":[{\"type\":\"service\"}]},"
        "\"scopeSpans\":[{\"spans\":[{\"traceId\":"
        "\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0102030405060708\","
        "\"name\":\"n\",\"newField\":{\"deep\":[{}]},\"attributes\":[{\"key\":"
        "\"k\",\"value\":{\"stringValue\":\"v\"},\"extra\":true}]}],"
        "\"other\":null}]}]}";
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK_INT(decode_json_str(json, a, &r, &err), HALO_OK);
    CHECK_INT(r.n, 1);
    CHECK_STR(r.spans[0].name, "n");
    CHECK_STR(r.spans[0].attrs.items[0].value.u.s.ptr, "v");
    halo_arena_free(a);
}

TEST(json_snake_case_accepted)
{
    const char *json =
        "{\"resource_spans\":[{\"resource\":{\"attributes\":[{\"key\":\"a\","
        "\"value\":{\"string_value\":\"b\"}}],\"dropped_attributes_count\":1},"
        "\"schema_url\":\"r\",\"scope_spans\":[{\"scope\":{\"name\":\"s\"},"
        "\"spans\":[{\"trace_id\":\"0102030405060708090a0b0c0d0e0f10\","
        "\"span_id\":\"0102030405060708\","
        "\"parent_span_id\":\"0807060504030201\",\"trace_state\":\"t=1\","
        "\"start_time_unix_nano\":\"5\",\"end_time_unix_nano\":6,"
        "\"attributes\":[{\"key\":\"i\",\"value\":{\"int_value\":\"7\"}},"
        "{\"key\":\"l\",\"value\":{\"kvlist_value\":{\"values\":[{\"key\":"
        "\"x\",\"value\":{\"bool_value\":true}}]}}},{\"key\":\"y\",\"value\":"
        "{\"bytes_value\":\"aGk\"}}],\"dropped_events_count\":2,"
        "\"events\":[{\"time_unix_nano\":\"9\",\"name\":\"e\"}]}]}]}]}";
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    halo_status st = decode_json_str(json, a, &r, &err);
    if (st)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(r.n, 1);
    const halo_span *s = &r.spans[0];
    CHECK_INT(s->parent_span_id[0], 8);
    CHECK_STR(s->trace_state, "t=1");
    CHECK(s->start_ns == 5 && s->end_ns == 6);
    CHECK_INT(s->attrs.items[0].value.u.i, 7);
    CHECK_INT(s->attrs.items[1].value.type, HALO_VAL_KVLIST);
    CHECK_INT(s->attrs.items[1].value.u.kv.items[0].value.u.b, 1);
    CHECK_INT(s->attrs.items[2].value.type, HALO_VAL_BYTES);
    CHECK_INT(s->attrs.items[2].value.u.s.len, 2);
    CHECK(memcmp(s->attrs.items[2].value.u.s.ptr, "hi", 2) == 0);
    CHECK_INT(s->dropped_events, 2);
    CHECK_INT(s->n_events, 1);
    CHECK(s->events[0].time_ns == 9);
    CHECK_STR(s->resource->schema_url, "r");
    CHECK_INT(s->resource->dropped_attrs, 1);
    CHECK_STR(s->scope->name, "s");
    halo_arena_free(a);
}

TEST(json_value_nesting_limit)
{
    /* attribute value nested `depth` arrays deep */
    for (int depth = 32; depth <= 33; depth++) {
        halo_buf b = HALO_BUF_INIT;
        halo_buf_puts(&b, "\"attributes\":[{\"key\":\"k\",\"value\":");
        for (int i = 1; i < depth; i++)
            halo_buf_puts(&b, "{\"arrayValue\":{\"values\":[");
        halo_buf_puts(&b, "{\"intValue\":1}");
        for (int i = 1; i < depth; i++)
            halo_buf_puts(&b, "]}}");
        halo_buf_puts(&b, "}]");
        halo_arena *a = halo_arena_new(0);
        halo_otlp_result r;
        halo_err err = {{0}};
        halo_status st = one_span(b.data, a, &r, &err);
        halo_buf_free(&b);
        halo_arena_free(a);
        if (depth == 32) {
            CHECK_INT(st, HALO_OK);
        } else {
            CHECK_INT(st, HALO_EINVAL);
            CHECK_CONTAINS(err.msg, "nested deeper than 32 levels");
        }
    }
}

TEST(json_encode_responses)
{
    halo_buf b = HALO_BUF_INIT;
    halo_otlp_response_json(0, "ignored", &b);
    CHECK_STR(b.data, "{}");
    halo_buf_reset(&b);
    halo_otlp_response_json(3, "resourceSpans[0]: invalid \"id\"", &b);
    CHECK_STR(b.data, "{\"partialSuccess\":{\"rejectedSpans\":\"3\","
                      "\"errorMessage\":\"resourceSpans[0]: invalid "
                      "\\\"id\\\"\"}}");
    halo_buf_reset(&b);
    halo_rpc_status_json(3, "invalid JSON at line 1", &b);
    CHECK_STR(b.data, "{\"code\":3,\"message\":\"invalid JSON at line 1\"}");
    halo_buf_free(&b);
}

TEST(pb_encode_responses)
{
    uint8_t *out;
    size_t len;
    CHECK_INT(halo_otlp_response_pb(0, "x", &out, &len), HALO_OK);
    CHECK(out != NULL);
    CHECK_INT(len, 0); /* empty ExportTraceServiceResponse */
    free(out);

    CHECK_INT(halo_otlp_response_pb(7, "some spans were bad", &out, &len),
              HALO_OK);
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, len, out);
    free(out);
    CHECK(resp && resp->partial_success);
    CHECK_INT(resp->partial_success->rejected_spans, 7);
    CHECK_STR(resp->partial_success->error_message, "some spans were bad");
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
        resp, NULL);

    CHECK_INT(halo_rpc_status_pb(14, "queue full", &out, &len), HALO_OK);
    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, len, out);
    free(out);
    CHECK(st != NULL);
    CHECK_INT(st->code, 14);
    CHECK_STR(st->message, "queue full");
    google__rpc__status__free_unpacked(st, NULL);
}

/* --- JSONL ---------------------------------------------------------------- */

static halo_status jsonl(const char *line, halo_arena *a, halo_otlp_result *r,
                         halo_err *err)
{
    return halo_span_decode_jsonl(line, strlen(line), a, r, err);
}

TEST(jsonl_halo_columns_shape)
{
    const char *line =
        "{\"trace_id\":\"5b8efff798038103d269b633813fc60c\","
        "\"span_id\":\"eee19b7ec3c1b174\",\"parent_span_id\":null,"
        "\"name\":\"chat gpt-4o\",\"kind\":\"CLIENT\",\"span_type\":\"LLM\","
        "\"agent_id\":\"derived, ignored\","
        "\"start_time\":\"2026-11-16T09:00:00.123456789Z\","
        "\"end_time\":\"2026-11-16T10:30:00.5+01:00\",\"duration_ms\":1,"
        "\"status_code\":\"ERROR\",\"status_message\":\"rate limited\","
        "\"attributes\":{\"llm.model_name\":\"gpt-4o\",\"tokens\":12,"
        "\"cost\":0.25,\"ok\":false,\"tags\":[\"a\",1],\"meta\":{\"x\":null}},"
        "\"events\":[{\"name\":\"retry\",\"time_unix_nano\":"
        "1794819600200000000,\"attributes\":{\"n\":2}}],"
        "\"resource\":{\"service.name\":\"support-agent\"}}\n";
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    halo_status st = jsonl(line, a, &r, &err);
    if (st)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(r.n, 1);
    const halo_span *s = r.spans;
    CHECK_INT(s->trace_id[0], 0x5b);
    CHECK_INT(s->span_id[7], 0x74);
    CHECK(halo_span_is_root(s));
    CHECK_STR(s->name, "chat gpt-4o");
    CHECK_INT(s->kind, 3);
    /* 2026-11-16T09:00:00Z is 1794819600 */
    CHECK(s->start_ns == 1794819600123456789ULL);
    CHECK(s->end_ns == 1794819600ULL * 1000000000ULL + 5400ULL * 1000000000ULL -
                           3600ULL * 1000000000ULL + 500000000ULL);
    CHECK_INT(s->status_code, HALO_STATUS_ERROR);
    CHECK_STR(s->status_message, "rate limited");
    CHECK_INT(s->attrs.n, 6);
    CHECK_STR(halo_attrs_get(&s->attrs, "llm.model_name")->u.s.ptr, "gpt-4o");
    CHECK_INT(halo_attrs_get(&s->attrs, "tokens")->type, HALO_VAL_INT);
    CHECK_INT(halo_attrs_get(&s->attrs, "tokens")->u.i, 12);
    CHECK_INT(halo_attrs_get(&s->attrs, "cost")->type, HALO_VAL_DOUBLE);
    CHECK_INT(halo_attrs_get(&s->attrs, "ok")->type, HALO_VAL_BOOL);
    const halo_value *tags = halo_attrs_get(&s->attrs, "tags");
    CHECK_INT(tags->type, HALO_VAL_ARRAY);
    CHECK_INT(tags->u.arr.n, 2);
    CHECK_INT(tags->u.arr.items[1].u.i, 1);
    const halo_value *meta = halo_attrs_get(&s->attrs, "meta");
    CHECK_INT(meta->type, HALO_VAL_KVLIST);
    CHECK_INT(meta->u.kv.items[0].value.type, HALO_VAL_EMPTY);
    CHECK_INT(s->n_events, 1);
    CHECK_STR(s->events[0].name, "retry");
    CHECK(s->events[0].time_ns == 1794819600200000000ULL);
    CHECK_INT(s->events[0].attrs.items[0].value.u.i, 2);
    CHECK_STR(halo_attrs_get(&s->resource->attrs, "service.name")->u.s.ptr,
              "support-agent");
    CHECK(s->scope != NULL);
    CHECK_STR(s->scope->name, "");
    CHECK_STR(s->trace_state, "");
    halo_arena_free(a);
}

TEST(jsonl_halo_spanrecord_shape)
{
    const char *line =
        "{\"trace_id\":\"0af7651916cd43dd8448eb211c80319c\","
        "\"span_id\":\"b7ad6b7169203331\","
        "\"parent_span_id\":\"00f067aa0ba902b7\",\"trace_state\":\"\","
        "\"name\":\"tool_Read\",\"kind\":\"SPAN_KIND_INTERNAL\","
        "\"start_time\":\"2026-08-20T12:00:01.000000000Z\","
        "\"end_time\":\"2026-08-20T12:00:01.020000000Z\","
        "\"status\":{\"code\":\"STATUS_CODE_OK\",\"message\":\"\"},"
        "\"resource\":{\"attributes\":{\"service.name\":\"claude_code\"}},"
        "\"scope\":{\"name\":\"adapter\",\"version\":\"1\"},"
        "\"attributes\":{\"openinference.span.kind\":\"TOOL\","
        "\"tool.name\":\"Read\",\"inference.llm.input_tokens\":10}}";
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK_INT(jsonl(line, a, &r, &err), HALO_OK);
    CHECK_INT(r.n, 1);
    const halo_span *s = r.spans;
    CHECK_INT(s->parent_span_id[0], 0x00);
    CHECK_INT(s->parent_span_id[1], 0xf0);
    CHECK(!halo_span_is_root(s));
    CHECK_INT(s->kind, 1);
    CHECK_INT(s->status_code, HALO_STATUS_OK);
    CHECK(s->end_ns - s->start_ns == 20000000ULL);
    CHECK_STR(halo_attrs_get(&s->resource->attrs, "service.name")->u.s.ptr,
              "claude_code");
    CHECK_STR(s->scope->name, "adapter");
    CHECK_STR(s->scope->version, "1");
    CHECK_STR(halo_attrs_get(&s->attrs, "tool.name")->u.s.ptr, "Read");
    CHECK_INT(halo_attrs_get(&s->attrs, "inference.llm.input_tokens")->u.i, 10);
    halo_arena_free(a);
}

TEST(jsonl_python_sdk_shape)
{
    const char *line =
        "{\"name\":\"hello\",\"context\":{\"trace_id\":"
        "\"0x5b8aa5a2d2c872e8321cf37308d69df2\",\"span_id\":"
        "\"0x051581bf3cb55c13\",\"trace_state\":\"[]\"},"
        "\"kind\":\"SpanKind.SERVER\",\"parent_id\":\"0x93564f51e1abe1c2\","
        "\"start_time\":\"2022-04-29T18:52:58.114492Z\","
        "\"end_time\":\"2022-04-29T18:52:58.114631Z\","
        "\"status\":{\"status_code\":\"ERROR\",\"description\":\"boom\"},"
        "\"attributes\":{\"http.route\":\"/r\"},"
        "\"events\":[{\"name\":\"hey\",\"timestamp\":"
        "\"2022-04-29T18:52:58.114561Z\",\"attributes\":{\"n\":1}}],"
        "\"links\":[{\"context\":{\"trace_id\":"
        "\"0x5b8aa5a2d2c872e8321cf37308d69df3\",\"span_id\":"
        "\"0x051581bf3cb55c14\",\"trace_state\":\"[]\"},"
        "\"attributes\":{\"why\":\"batch\"}}],"
        "\"resource\":{\"attributes\":{\"service.name\":\"svc\"},"
        "\"schema_url\":\"\"}}";
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    halo_status st = jsonl(line, a, &r, &err);
    if (st)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(r.n, 1);
    const halo_span *s = r.spans;
    char hex[33];
    halo_hex_encode(s->trace_id, 16, hex);
    CHECK_STR(hex, "5b8aa5a2d2c872e8321cf37308d69df2");
    halo_hex_encode(s->span_id, 8, hex);
    CHECK_STR(hex, "051581bf3cb55c13");
    halo_hex_encode(s->parent_span_id, 8, hex);
    CHECK_STR(hex, "93564f51e1abe1c2");
    CHECK_STR(s->trace_state, "");
    CHECK_INT(s->kind, 2);
    CHECK_INT(s->status_code, HALO_STATUS_ERROR);
    CHECK_STR(s->status_message, "boom");
    CHECK(s->start_ns == 1651258378114492000ULL);
    CHECK(s->end_ns == 1651258378114631000ULL);
    CHECK_INT(s->n_events, 1);
    CHECK(s->events[0].time_ns == 1651258378114561000ULL);
    CHECK_INT(s->n_links, 1);
    CHECK_INT(s->links[0].span_id[7], 0x14);
    CHECK_STR(s->links[0].trace_state, "");
    CHECK_STR(s->links[0].attrs.items[0].value.u.s.ptr, "batch");
    CHECK_STR(halo_attrs_get(&s->resource->attrs, "service.name")->u.s.ptr,
              "svc");
    halo_arena_free(a);
}

TEST(jsonl_errors_and_rejects)
{
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK_INT(jsonl("{\"trace_id\": ", a, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "invalid JSON at line 1 column");
    CHECK_INT(jsonl("  \r\n", a, &r, &err), HALO_EINVAL);
    CHECK_STR(err.msg, "empty line");
    CHECK_INT(jsonl("[1]", a, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "expected a JSON object");
    /* no ids: a reject, not an error */
    CHECK_INT(jsonl("{\"name\":\"x\"}", a, &r, &err), HALO_OK);
    CHECK_INT(r.n, 0);
    CHECK_INT(r.rejected, 1);
    CHECK_STR(r.reject_msg, "invalid trace_id (length 0, expected 16)");
    /* bad values name the key */
    CHECK_INT(jsonl("{\"trace_id\":\"0102030405060708090a0b0c0d0e0f10\","
                    "\"span_id\":\"0102030405060708\",\"start_time\":"
                    "\"yesterday\"}",
                    a, &r, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "start_time: expected an ISO-8601 time");
    CHECK_INT(jsonl("{\"trace_id\":\"0102030405060708090a0b0c0d0e0f10\","
                    "\"span_id\":\"0102030405060708\",\"status_code\":"
                    "\"MAYBE\"}",
                    a, &r, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "status_code: expected a status code");
    CHECK_INT(jsonl("{\"context\":{\"trace_id\":\"0xabc\"}}", a, &r, &err),
              HALO_EINVAL);
    CHECK_STR(err.msg, "context.trace_id: expected 32 hex digits, got 3");
    /* epoch numbers and unix-nano keys */
    CHECK_INT(jsonl("{\"trace_id\":\"0102030405060708090a0b0c0d0e0f10\","
                    "\"span_id\":\"0102030405060708\",\"start_time\":"
                    "1700000000.5,\"end_time\":1700000001000,"
                    "\"start_unix_nano\":1700000000000000007}",
                    a, &r, &err),
              HALO_OK);
    CHECK(r.spans[0].start_ns == 1700000000000000007ULL);
    CHECK(r.spans[0].end_ns == 1700000001000000000ULL);
    halo_arena_free(a);
}

/* --- throughput ----------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST(pb_decode_throughput)
{
    /* a typical agent request: 100 spans, 10 attributes and an event each */
    enum { N = 100, ROUNDS = 1000 };
    static halo_span spans[N];
    static halo_kv attrs[10];
    static halo_event ev;
    static const halo_kv rattrs[2] = {
        {"service.name", {.type = HALO_VAL_STRING, .u.s = {"agent", 5}}},
        {"telemetry.sdk.language",
         {.type = HALO_VAL_STRING, .u.s = {"python", 6}}}};
    static halo_resource res = {{(halo_kv *)rattrs, 2}, 0, ""};
    static halo_scope scope = {"openinference", "0.1", {NULL, 0}, 0, ""};
    attrs[0] = (halo_kv){"openinference.span.kind", v_str("LLM")};
    attrs[1] = (halo_kv){"llm.model_name", v_str("gpt-4o-mini")};
    attrs[2] = (halo_kv){"llm.token_count.prompt", v_int(1234)};
    attrs[3] = (halo_kv){"llm.token_count.completion", v_int(87)};
    attrs[4] = (halo_kv){"session.id", v_str("3f2a9c1e-session")};
    attrs[5] = (halo_kv){"input.value",
                         v_str("What is the refund policy for order 1234? "
                               "Please answer briefly.")};
    attrs[6] = (halo_kv){"output.value",
                         v_str("Refunds are accepted within 30 days.")};
    attrs[7] = (halo_kv){"llm.cost.total", v_dbl(0.00042)};
    attrs[8] = (halo_kv){"tool.name", v_str("search_orders")};
    attrs[9] = (halo_kv){"retry", v_bool(false)};
    ev = (halo_event){1700000000000000500ULL, "llm.first_token", {NULL, 0}, 0};
    for (int i = 0; i < N; i++) {
        memset(&spans[i], 0, sizeof spans[i]);
        fill_id(spans[i].trace_id, 16, (uint8_t)(i / 10 + 1));
        fill_id(spans[i].span_id, 8, (uint8_t)(i + 1));
        if (i % 10)
            fill_id(spans[i].parent_span_id, 8, (uint8_t)(i - i % 10 + 1));
        spans[i].name = "ChatCompletion";
        spans[i].trace_state = spans[i].status_message = "";
        spans[i].kind = 3;
        spans[i].start_ns = 1700000000000000000ULL + (uint64_t)i;
        spans[i].end_ns = spans[i].start_ns + 1000000;
        spans[i].attrs = (halo_attrs){attrs, 10};
        spans[i].events = &ev;
        spans[i].n_events = 1;
        spans[i].resource = &res;
        spans[i].scope = &scope;
    }
    uint8_t *pb;
    size_t len;
    CHECK_INT(halo_otlp_encode_pb(spans, N, &pb, &len), HALO_OK);
    size_t total = 0;
    double t0 = now_s();
    for (int k = 0; k < ROUNDS; k++) {
        halo_arena *a = halo_arena_new(len * 4);
        halo_otlp_result r;
        halo_err err = {{0}};
        halo_status st = halo_otlp_decode_pb(pb, len, a, &r, &err);
        total += r.n;
        halo_arena_free(a);
        CHECK_INT(st, HALO_OK);
    }
    double dt = now_s() - t0;
    CHECK_INT(total, (size_t)N * ROUNDS);
    printf("  decode_pb: %zu-byte request of %d spans: %.0f spans/s "
           "(%.1f us/request)\n",
           len, N, (double)total / dt, dt / ROUNDS * 1e6);

    halo_buf b = HALO_BUF_INIT;
    t0 = now_s();
    for (int k = 0; k < ROUNDS / 10; k++) {
        halo_buf_reset(&b);
        CHECK_INT(halo_otlp_encode_json(spans, N, &b), HALO_OK);
    }
    double dte = now_s() - t0;
    t0 = now_s();
    for (int k = 0; k < ROUNDS / 10; k++) {
        halo_arena *a = halo_arena_new(0);
        halo_otlp_result r;
        halo_err err = {{0}};
        CHECK_INT(halo_otlp_decode_json(b.data, b.len, a, &r, &err), HALO_OK);
        halo_arena_free(a);
    }
    double dtj = now_s() - t0;
    t0 = now_s();
    for (int k = 0; k < ROUNDS; k++) {
        uint8_t *o;
        size_t ol;
        CHECK_INT(halo_otlp_encode_pb(spans, N, &o, &ol), HALO_OK);
        free(o);
    }
    double dtp = now_s() - t0;
    printf("  encode_pb: %.0f spans/s; encode_json: %.0f spans/s; "
           "decode_json: %.0f spans/s\n",
           N * ROUNDS / dtp, N * (ROUNDS / 10) / dte, N * (ROUNDS / 10) / dtj);
    halo_buf_free(&b);
    free(pb);
}

/* --- the wire decoder against the protobuf-c reference -------------------
 *
 * Random requests are written field by field (so they can hold what an
 * encoder never writes: repeated singular fields and sub-messages, unknown
 * fields of every wire type, wrong wire types, over-long tags and length
 * prefixes, bad ids, NULs in strings, deep values), then truncated and
 * flipped at random; both decoders must agree on everything. */

#include "receivers/otlp/otlp_codec_internal.h"
#include "receivers/otlp/otlp_codec_pbwire.h"

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf;

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static bool wb_plain; /* no over-long tags or length prefixes */

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static unsigned rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static void wb_put(wbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void wb_varint(wbuf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            t[n] |= 0x80;
        n++;
    } while (v);
    wb_put(b, t, n);
}

/* A tag, now and then in a longer encoding than needed (up to 6 bytes). */
static void wb_tag(wbuf *b, uint32_t num, unsigned wt)
{
    uint64_t key = ((uint64_t)num << 3) | wt;
    if (!wb_plain && rn(200) == 0) {
        unsigned extra = 1 + rn(5);
        uint8_t t[16];
        size_t n = 0;
        while (key >= 0x80) {
            t[n++] = (uint8_t)(0x80 | (key & 0x7f));
            key >>= 7;
        }
        t[n++] = (uint8_t)(0x80 | key);
        for (unsigned i = 1; i < extra; i++)
            t[n++] = 0x80;
        t[n++] = 0x00;
        wb_put(b, t, n);
        return;
    }
    wb_varint(b, key);
}

static void wb_bytes(wbuf *b, uint32_t num, const void *d, size_t n)
{
    wb_tag(b, num, 2);
    if (!wb_plain && rn(300) == 0) { /* a padded length prefix, 5 or 6 bytes */
        uint8_t t[6];
        size_t v = n, k = 4 + rn(2);
        for (size_t i = 0; i < k; i++) {
            t[i] = (uint8_t)(0x80 | (v & 0x7f));
            v >>= 7;
        }
        t[k] = (uint8_t)v;
        wb_put(b, t, k + 1);
    } else {
        wb_varint(b, n);
    }
    wb_put(b, d, n);
}

static void wb_msg(wbuf *b, uint32_t num, wbuf *sub)
{
    wb_bytes(b, num, sub->p, sub->n);
    free(sub->p);
}

static void wb_u64(wbuf *b, uint32_t num, uint64_t v)
{
    wb_tag(b, num, 0);
    wb_varint(b, v);
}

static void wb_fixed(wbuf *b, uint32_t num, uint64_t v, unsigned size)
{
    uint8_t t[8];
    for (unsigned i = 0; i < size; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    wb_tag(b, num, size == 8 ? 1 : 5);
    wb_put(b, t, size);
}

static uint64_t rnd_num(void)
{
    switch (rn(5)) {
    case 0:
        return 0;
    case 1:
        return rn(10);
    case 2:
        return rnd() & 0xffffffffu;
    default:
        return rnd();
    }
}

/* Any field with number num and a random wire type (groups excepted). */
static void wb_any_field(wbuf *b, uint32_t num)
{
    static const char txt[] = "x\0yz";
    switch (rn(4)) {
    case 0:
        wb_u64(b, num, rnd_num());
        break;
    case 1:
        wb_fixed(b, num, rnd(), 8);
        break;
    case 2:
        wb_fixed(b, num, rnd(), 4);
        break;
    default:
        wb_bytes(b, num, txt, rn(5));
        break;
    }
}

static void wb_unknown(wbuf *b)
{
    if (rn(8) == 0)
        wb_any_field(b, 17 + rn(3000));
    if (rn(400) == 0) { /* a group: refused */
        wb_tag(b, 20, 3);
        wb_tag(b, 20, 4);
    }
}

static void wb_str(wbuf *b, uint32_t num)
{
    static const char *pool[] = {"",     "a",         "service.name",
                                 "x\0y", "llm.model", "\xff\xfe bytes"};
    unsigned i = rn(6);
    size_t n = i == 3 ? 3 : strlen(pool[i]);
    if (rn(100) == 0) { /* the wrong wire type */
        wb_u64(b, num, 1);
        return;
    }
    wb_bytes(b, num, pool[i], n);
}

static void gen_kv(wbuf *b, int depth);

static void gen_any(wbuf *b, int depth)
{
    unsigned nf = rn(10) == 0 ? rn(3) : 1; /* 0 or 2 oneof fields too */
    for (unsigned i = 0; i < nf; i++) {
        wb_unknown(b);
        unsigned t = depth > 4 ? 1 + rn(4) : 1 + rn(7);
        if (rn(150) == 0) { /* any wire type */
            wb_any_field(b, t == 5 || t == 6 ? 2 : t);
            continue;
        }
        switch (t) {
        case 1:
            wb_str(b, 1);
            break;
        case 2:
            if (rn(4) == 0)
                wb_any_field(b, 2); /* protobuf-c takes any wire type */
            else
                wb_u64(b, 2, rn(3) == 0 ? rnd_num() : rn(2));
            break;
        case 3:
            wb_u64(b, 3, rnd_num());
            break;
        case 4:
            wb_fixed(b, 4, rnd(), 8);
            break;
        case 5: {
            wbuf s = {0};
            unsigned n = rn(4);
            for (unsigned k = 0; k < n; k++) {
                wbuf v = {0};
                gen_any(&v, depth + 1);
                wb_msg(&s, 1, &v);
            }
            wb_unknown(&s);
            wb_msg(b, 5, &s);
            break;
        }
        case 6: {
            wbuf s = {0};
            unsigned n = rn(4);
            for (unsigned k = 0; k < n; k++) {
                wbuf v = {0};
                gen_kv(&v, depth + 1);
                wb_msg(&s, 1, &v);
            }
            wb_msg(b, 6, &s);
            break;
        }
        default: {
            uint8_t raw[6];
            for (int k = 0; k < 6; k++)
                raw[k] = (uint8_t)rnd();
            wb_bytes(b, 7, raw, rn(7));
            break;
        }
        }
    }
}

static void gen_kv(wbuf *b, int depth)
{
    if (rn(20))
        wb_str(b, 1);
    unsigned nv = rn(12) == 0 ? rn(4) : 1; /* merged values too */
    for (unsigned i = 0; i < nv; i++) {
        wbuf v = {0};
        if (rn(6))
            gen_any(&v, depth);
        wb_msg(b, 2, &v);
    }
    wb_unknown(b);
}

static void gen_attrs(wbuf *b, uint32_t num)
{
    unsigned n = rn(5) == 0 ? rn(12) : rn(4);
    for (unsigned i = 0; i < n; i++) {
        wbuf kv = {0};
        gen_kv(&kv, 1);
        wb_msg(b, num, &kv);
    }
}

static void gen_id(wbuf *b, uint32_t num, size_t want)
{
    uint8_t id[20];
    size_t n = want;
    for (size_t i = 0; i < sizeof id; i++)
        id[i] = (uint8_t)(rnd() | 1);
    switch (rn(30)) {
    case 0:
        return; /* absent */
    case 1:
        n = rn(20);
        break;
    case 2:
        memset(id, 0, sizeof id);
        break;
    case 3:
        wb_bytes(b, num, id, rn(20)); /* repeated: the last wins */
        break;
    default:
        break;
    }
    wb_bytes(b, num, id, n);
}

static void gen_scalar(wbuf *b, uint32_t num, unsigned wt)
{
    if (rn(4))
        return;
    if (rn(200) == 0) {
        wb_any_field(b, num);
        return;
    }
    if (wt == 0)
        wb_u64(b, num, rnd_num());
    else
        wb_fixed(b, num, rnd(), wt == 1 ? 8 : 4);
}

static void gen_span(wbuf *b)
{
    gen_id(b, 1, 16);
    gen_id(b, 2, 8);
    if (rn(3) == 0)
        gen_id(b, 4, 8);
    if (rn(3) == 0)
        wb_str(b, 3);
    if (rn(2))
        wb_str(b, 5);
    gen_scalar(b, 6, 0);
    gen_scalar(b, 7, 1);
    gen_scalar(b, 8, 1);
    gen_attrs(b, 9);
    gen_scalar(b, 10, 0);
    for (unsigned i = rn(3) ? 0 : rn(3); i > 0; i--) {
        wbuf e = {0};
        gen_scalar(&e, 1, 1);
        if (rn(2))
            wb_str(&e, 2);
        gen_attrs(&e, 3);
        gen_scalar(&e, 4, 0);
        wb_unknown(&e);
        wb_msg(b, 11, &e);
    }
    gen_scalar(b, 12, 0);
    for (unsigned i = rn(3) ? 0 : rn(3); i > 0; i--) {
        wbuf l = {0};
        gen_id(&l, 1, 16);
        gen_id(&l, 2, 8);
        if (rn(2))
            wb_str(&l, 3);
        gen_attrs(&l, 4);
        gen_scalar(&l, 5, 0);
        gen_scalar(&l, 6, 5);
        wb_msg(b, 13, &l);
    }
    gen_scalar(b, 14, 0);
    for (unsigned i = rn(3) ? rn(2) : rn(3); i > 0; i--) {
        wbuf s = {0};
        if (rn(2))
            wb_str(&s, 2);
        gen_scalar(&s, 3, 0);
        wb_unknown(&s);
        wb_msg(b, 15, &s);
    }
    gen_scalar(b, 16, 5);
    wb_unknown(b);
}

static uint8_t *gen_request(size_t *len)
{
    wbuf req = {0};
    for (unsigned r = rn(4); r > 0; r--) {
        wbuf rs = {0};
        for (unsigned i = rn(4) ? rn(2) : rn(3); i > 0; i--) {
            wbuf res = {0};
            gen_attrs(&res, 1);
            gen_scalar(&res, 2, 0);
            wb_unknown(&res);
            wb_msg(&rs, 1, &res);
        }
        for (unsigned s = rn(3); s > 0; s--) {
            wbuf ss = {0};
            for (unsigned i = rn(4) ? rn(2) : rn(3); i > 0; i--) {
                wbuf sc = {0};
                if (rn(2))
                    wb_str(&sc, 1);
                if (rn(2))
                    wb_str(&sc, 2);
                gen_attrs(&sc, 3);
                gen_scalar(&sc, 4, 0);
                wb_msg(&ss, 1, &sc);
            }
            for (unsigned k = rn(5); k > 0; k--) {
                wbuf sp = {0};
                gen_span(&sp);
                wb_msg(&ss, 2, &sp);
            }
            if (rn(3) == 0)
                wb_str(&ss, 3);
            wb_unknown(&ss);
            wb_msg(&rs, 2, &ss);
        }
        if (rn(3) == 0)
            wb_str(&rs, 3);
        wb_unknown(&rs);
        wb_msg(&req, 1, &rs);
    }
    wb_unknown(&req);
    *len = req.n;
    return req.p ? req.p : calloc(1, 1);
}

/* NULL when both decoders gave the same; else what differed. */
static const char *decode_diff(const uint8_t *buf, size_t len)
{
    halo_arena *a1 = halo_arena_new(0), *a2 = halo_arena_new(0);
    halo_otlp_result r1, r2;
    halo_err e1 = {{0}}, e2 = {{0}};
    const char *why = NULL;
    halo_status s1 = otlp_decode_pb_reference(buf, len, a1, &r1, &e1);
    halo_status s2 = otlp_decode_pbwire(buf, len, 0, a2, &r2, &e2);
    if (s1 != s2)
        why = "status";
    else if (s1 != HALO_OK && strcmp(e1.msg, e2.msg) != 0)
        why = "error message";
    else if (r1.n != r2.n || r1.rejected != r2.rejected ||
             strcmp(r1.reject_msg, r2.reject_msg) != 0 ||
             (r1.spans == NULL) != (r2.spans == NULL))
        why = "counts or reject message";
    for (size_t i = 0; !why && i < r1.n; i++) {
        const halo_span *x = &r1.spans[i], *y = &r2.spans[i];
        why = span_diff(x, y);
        if (!why && ((x->resource == &otlp_empty_resource) !=
                         (y->resource == &otlp_empty_resource) ||
                     (x->scope == &otlp_empty_scope) !=
                         (y->scope == &otlp_empty_scope)))
            why = "empty resource or scope";
        if (!why && i > 0 &&
            ((x->resource == x[-1].resource) !=
                 (y->resource == y[-1].resource) ||
             (x->scope == x[-1].scope) != (y->scope == y[-1].scope)))
            why = "resource or scope sharing";
        if (!why && (x->attrs.n == 0) && (x->attrs.items || y->attrs.items))
            why = "items of empty attributes";
    }
    if (why && getenv("DIFF_DUMP")) {
        FILE *f = fopen(getenv("DIFF_DUMP"), "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
    }
    if (why)
        fprintf(stderr, "  differ (%s): %d \"%s\" vs %d \"%s\"\n", why, s1,
                e1.msg, s2, e2.msg);
    halo_arena_free(a1);
    halo_arena_free(a2);
    return why;
}

TEST(pb_wire_decoder_matches_reference)
{
    size_t ok = 0, bad = 0, spans = 0;
    for (int iter = 0; iter < 4000; iter++) {
        size_t len;
        uint8_t *buf = gen_request(&len);
        {
            halo_arena *a = halo_arena_new(0);
            halo_otlp_result r;
            halo_err err;
            if (otlp_decode_pb_reference(buf, len, a, &r, &err) == HALO_OK) {
                ok++;
                spans += r.n;
            } else {
                bad++;
            }
            halo_arena_free(a);
        }
        CHECK(decode_diff(buf, len) == NULL);
        if (getenv("PB_DIFF_CORPUS") && iter % 8 == 0) {
            /* seeds for tests/fuzz/fuzz_otlp_pb_diff.c */
            char path[512];
            snprintf(path, sizeof path, "%s/gen-%04d", getenv("PB_DIFF_CORPUS"),
                     iter);
            FILE *f = fopen(path, "wb");
            if (f) {
                fwrite(buf, 1, len, f);
                fclose(f);
            }
        }
        if (len) {
            CHECK(decode_diff(buf, rn((unsigned)len)) == NULL);
            for (int f = 0; f < 3; f++) {
                uint8_t *m = malloc(len);
                memcpy(m, buf, len);
                for (unsigned k = 1 + rn(3); k > 0; k--)
                    m[rn((unsigned)len)] ^= (uint8_t)(1u << rn(8));
                const char *d = decode_diff(m, len);
                free(m);
                CHECK(d == NULL);
            }
        }
        free(buf);
    }
    printf("  differential: %zu requests decoded (%zu spans), %zu refused\n",
           ok, spans, bad);
    CHECK(ok > 1000 && bad > 100 && spans > 1000);
}

TEST(pb_wire_decoder_fixed_cases)
{
    /* nesting limit, empty input, the size guard, merges */
    size_t len;
    uint8_t *deep = nested_request(33, &len);
    CHECK(decode_diff(deep, len) == NULL);
    free(deep);
    deep = nested_request(32, &len);
    CHECK(decode_diff(deep, len) == NULL);
    free(deep);
    CHECK(decode_diff(NULL, 0) == NULL);
    static const uint8_t two_empty_values[] = {
        0x0a, 0x12, 0x12, 0x10, 0x12, 0x0e, 0x0a, 0x01, 0x01, 0x12, 0x01,
        0x01, 0x4a, 0x06, 0x0a, 0x01, 'k',  0x12, 0x00, 0x12, 0x00};
    CHECK(decode_diff(two_empty_values, sizeof two_empty_values) == NULL);
}

/* The throughput request (100 spans of 10 attributes and an event). */
static uint8_t *typical_request(size_t *len)
{
    wbuf req = {0}, rs = {0}, res = {0}, ss = {0}, sc = {0};
    static const char *keys[] = {"openinference.span.kind",
                                 "llm.model_name",
                                 "llm.token_count.prompt",
                                 "llm.token_count.completion",
                                 "session.id",
                                 "input.value",
                                 "output.value",
                                 "llm.cost.total",
                                 "tool.name",
                                 "retry"};
    static const char *strs[] = {
        "LLM",
        "gpt-4o-mini",
        NULL,
        NULL,
        "3f2a9c1e-session",
        "What is the refund policy for order 1234? Please answer briefly.",
        "Refunds are accepted within 30 days.",
        NULL,
        "search_orders",
        NULL};
    wb_plain = true;
    wbuf kv = {0}, v = {0};
    wb_bytes(&v, 1, "agent", 5);
    wb_bytes(&kv, 1, "service.name", 12);
    wb_msg(&kv, 2, &v);
    wb_msg(&res, 1, &kv);
    wb_msg(&rs, 1, &res);
    wb_bytes(&sc, 1, "openinference", 13);
    wb_bytes(&sc, 2, "0.1", 3);
    wb_msg(&ss, 1, &sc);
    for (int i = 0; i < 100; i++) {
        wbuf sp = {0};
        uint8_t id[16];
        fill_id(id, 16, (uint8_t)(i / 10 + 1));
        wb_varint(&sp, 0x0a), wb_varint(&sp, 16), wb_put(&sp, id, 16);
        fill_id(id, 8, (uint8_t)(i + 1));
        wb_varint(&sp, 0x12), wb_varint(&sp, 8), wb_put(&sp, id, 8);
        wb_varint(&sp, 0x2a), wb_varint(&sp, 14),
            wb_put(&sp, "ChatCompletion", 14);
        wb_varint(&sp, 0x30), wb_varint(&sp, 3);
        for (int k = 0; k < 10; k++) {
            wbuf a = {0}, val = {0};
            wb_varint(&a, 0x0a), wb_varint(&a, strlen(keys[k]));
            wb_put(&a, keys[k], strlen(keys[k]));
            if (strs[k]) {
                wb_varint(&val, 0x0a), wb_varint(&val, strlen(strs[k]));
                wb_put(&val, strs[k], strlen(strs[k]));
            } else {
                wb_varint(&val, k == 7 ? 0x21 : 0x18);
                if (k == 7)
                    wb_put(&val, "\x01\x02\x03\x04\x05\x06\x07\x3f", 8);
                else
                    wb_varint(&val, 1234);
            }
            wb_varint(&a, 0x12), wb_varint(&a, val.n), wb_put(&a, val.p, val.n);
            free(val.p);
            wb_varint(&sp, 0x4a), wb_varint(&sp, a.n), wb_put(&sp, a.p, a.n);
            free(a.p);
        }
        wb_varint(&sp, 0x5a), wb_varint(&sp, 17);
        wb_varint(&sp, 0x12), wb_varint(&sp, 15),
            wb_put(&sp, "llm.first_token", 15);
        wb_varint(&ss, 0x12), wb_varint(&ss, sp.n), wb_put(&ss, sp.p, sp.n);
        free(sp.p);
    }
    wb_varint(&rs, 0x12), wb_varint(&rs, ss.n), wb_put(&rs, ss.p, ss.n);
    free(ss.p);
    wb_varint(&req, 0x0a), wb_varint(&req, rs.n), wb_put(&req, rs.p, rs.n);
    free(rs.p);
    wb_plain = false;
    *len = req.n;
    return req.p;
}

typedef halo_status (*pb_decoder)(const uint8_t *, size_t, halo_arena *,
                                  halo_otlp_result *, halo_err *);

static void measure(const char *name, pb_decoder dec, const uint8_t *pb,
                    size_t len, int *halo_test_failed)
{
    enum { ROUNDS = 1000 };
    size_t total = 0, reserved = 0;
    double t0 = now_s();
    for (int k = 0; k < ROUNDS; k++) {
        halo_arena *a = halo_arena_new(len * 4);
        halo_otlp_result r;
        halo_err err = {{0}};
        halo_status st = dec(pb, len, a, &r, &err);
        total += r.n;
        halo_arena_free(a);
        CHECK_INT(st, HALO_OK);
    }
    double dt = now_s() - t0;
    /* the bytes used: the smallest first block that decoding fits in */
    size_t lo = 1, hi = len * 64;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        halo_arena *a = halo_arena_new(mid);
        halo_otlp_result r;
        halo_err err = {{0}};
        CHECK_INT(dec(pb, len, a, &r, &err), HALO_OK);
        if (halo_arena_reserved(a) == mid)
            hi = mid;
        else
            lo = mid + 1;
        halo_arena_free(a);
    }
    reserved = lo * 10;
    printf("  %s: %zu-byte request of %zu spans: %.0f spans/s (%.2f "
           "us/span), arena %zu bytes/span (%.1fx the wire)\n",
           name, len, total / ROUNDS, (double)total / dt, dt / total * 1e6,
           reserved / 10 / (total / ROUNDS), (double)reserved / 10 / len);
}

TEST(pb_wire_decoder_speed)
{
    size_t len;
    uint8_t *pb = typical_request(&len);
    CHECK(decode_diff(pb, len) == NULL);
    measure("reference (protobuf-c)", otlp_decode_pb_reference, pb, len,
            halo_test_failed);
    measure("wire decoder", halo_otlp_decode_pb, pb, len, halo_test_failed);
    free(pb);
}

/* max_spans refuses in the first pass: nothing of the request is built
 * (the arena stays as it was), and out->carried says how many it held. */
TEST(pb_max_spans_refuses_before_decoding)
{
    size_t len;
    uint8_t *pb = typical_request(&len); /* 100 spans */
    halo_arena *a = halo_arena_new(0);
    size_t before = halo_arena_reserved(a);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK(halo_otlp_decode_pb_max(pb, len, 99, a, &r, &err) == HALO_ETOOBIG);
    CHECK_STR(err.msg,
              "request of 100 spans exceeds max_spans_per_request (99)");
    CHECK_INT(r.carried, 100);
    CHECK_INT(r.n, 0);
    CHECK_INT(halo_arena_reserved(a), before);
    CHECK(halo_otlp_decode_pb_max(pb, len, 100, a, &r, &err) == HALO_OK);
    CHECK_INT(r.n, 100);
    CHECK_INT(r.carried, 100);
    halo_arena_free(a);
    free(pb);
}

/* jansson's tree is bounded (core/json_budget.h): 2 MiB of empty objects
 * would take ~130 MB parsed; it is refused as too big, not as invalid, and
 * the budget is closed again afterwards (a normal request still decodes). */
TEST(json_tree_memory_is_bounded)
{
    size_t n = (2u << 20) / 3;
    halo_buf b = HALO_BUF_INIT;
    halo_buf_puts(&b, "{\"resourceSpans\":[");
    for (size_t i = 0; i < n; i++)
        halo_buf_puts(&b, i ? ",{}" : "{}");
    halo_buf_puts(&b, "]}");
    CHECK(!b.oom);
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result r;
    halo_err err = {{0}};
    CHECK(halo_otlp_decode_json(b.data, b.len, a, &r, &err) == HALO_ETOOBIG);
    CHECK_CONTAINS(err.msg, "once parsed as JSON (limit)");
    CHECK_INT(halo_json_budget_used(), 0);
    const char *ok = "{\"resourceSpans\":[{}]}";
    CHECK(halo_otlp_decode_json(ok, strlen(ok), a, &r, &err) == HALO_OK);
    halo_arena_free(a);
    halo_buf_free(&b);
}

TEST(json_budget_counts_and_refuses)
{
    halo_json_budget_begin(1000);
    json_t *s = json_string("a string of some length");
    CHECK(s);
    size_t used = halo_json_budget_used();
    CHECK(used > 0 && used < 1000);
    json_t *arr = json_array();
    bool refused_seen = false;
    for (int i = 0; i < 100 && arr; i++)
        if (json_array_append_new(arr, json_string("xxxxxxxxxxxxxxxx")) != 0)
            refused_seen = true;
    CHECK(refused_seen);
    json_decref(arr);
    json_decref(s);
    CHECK_INT(halo_json_budget_used(), 0); /* freed: given back */
    CHECK(halo_json_budget_end());
    /* outside a budget nothing is refused */
    json_t *big = json_array();
    for (int i = 0; i < 1000; i++)
        CHECK(json_array_append_new(big, json_string("yyyyyyyyyyyyyyyy")) == 0);
    json_decref(big);
    CHECK(!halo_json_budget_end());
}
