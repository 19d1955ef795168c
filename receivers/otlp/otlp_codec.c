/*
 * otlp_codec.c -- HALO-style span JSONL: one span per line, as one flat JSON
 * object (halo_span_decode_jsonl).
 *
 * The OTLP codecs proper live beside this file (otlp_codec_internal.h has
 * the map); this one reads the span files people already have: `halo import`
 * of exports from halo's own `spans` table, of the files the HALO engine
 * reads, and of what the OpenTelemetry Python SDK's span.to_json() prints.
 * Keys not listed are ignored. The derived columns of a `spans` row
 * (agent_id, agent_name, session_id, user_id, service_name, span_type,
 * model, tool_name, input, output, input_tokens, output_tokens, cost) are
 * kept as given (jl_columns); agent_identity derives the ones a line does
 * not give from its attributes (unless its `override` is on, which derives
 * them all). They live on the decoded span only: a pipeline that sends the
 * spans on through Kafka carries the attributes, not these columns.
 *
 * Accepted keys (first match wins; null counts as absent):
 *
 *   trace_id | traceId | context.trace_id       32 hex digits, "0x" allowed
 *   span_id | spanId | context.span_id          16 hex digits, "0x" allowed
 *   parent_span_id | parentSpanId | parent_id   16 hex digits; absent, null or
 *                                               "" for a root span
 *   trace_state | context.trace_state           string ("[]", Python's empty
 *                                               TraceState, is "")
 *   name                                        string
 *   kind            2, "SPAN_KIND_SERVER", "SpanKind.SERVER", "SERVER",
 * "server" start_unix_nano | start_time_unix_nano | startTimeUnixNano integer
 * or digit string, ns start_time      ISO-8601
 * ("2026-11-16T09:00:00.123456789Z", an offset like "-06:00", a space for "T";
 * no zone means UTC) or a number of epoch seconds / ms / us / ns, told apart by
 *                   magnitude; used when no *_unix_nano key is present
 *   end_*           likewise
 *   status_code     "UNSET" | "OK" | "ERROR" (also "STATUS_CODE_ERROR",
 *                   "StatusCode.ERROR", any case) or 0 / 1 / 2
 *   status_message  string
 *   status          an object {"code" | "status_code": ...,
 *                   "message" | "description": ...} (HALO SpanRecord and
 *                   the Python SDK) or a bare code string
 *   attributes      object of key -> JSON value (string, true/false, integer,
 *                   real, array, object, null map to STRING, BOOL, INT,
 *                   DOUBLE, ARRAY, KVLIST, EMPTY), or an OTLP/JSON
 *                   [{"key", "value": AnyValue}] array
 *   events          [{"name", "time_unix_nano" | "timeUnixNano" (ns) |
 *                   "timestamp" | "time" (as start_time), "attributes",
 *                   "dropped_attributes_count"}]
 *   links           [{"context": {"trace_id", "span_id", "trace_state"}
 *                   or "trace_id" / "span_id" / "trace_state" at the top,
 *                   "attributes", "flags"}]
 *   resource        {"attributes": {...}, "schema_url"} (HALO SpanRecord,
 *                   Python SDK) or directly an object of key -> value
 *                   (halo's `spans.resource` column)
 *   scope | instrumentation_scope   {"name", "version", "attributes",
 *                   "schema_url"}
 *   flags, dropped_attributes_count, dropped_events_count,
 *   dropped_links_count                          integers
 *
 * Shapes, for example:
 *   halo spans row:  {"trace_id":"5b8e...","span_id":"eee1...",
 *                     "parent_span_id":null,"name":"chat","kind":"CLIENT",
 *                     "start_time":"2026-11-16T09:00:00.1Z",
 *                     "end_time":"...","status_code":"ERROR",
 *                     "status_message":"timeout","attributes":{...},
 *                     "events":[...],"resource":{"service.name":"agent"}}
 *   HALO SpanRecord: {"trace_id","span_id","parent_span_id":"",
 *                     "trace_state":"","name","kind":"SPAN_KIND_INTERNAL",
 *                     "start_time","end_time",
 *                     "status":{"code":"STATUS_CODE_OK","message":""},
 *                     "resource":{"attributes":{...}},
 *                     "scope":{"name","version"},"attributes":{...}}
 *   Python SDK:      {"name","context":{"trace_id":"0x...","span_id":"0x...",
 *                     "trace_state":"[]"},"kind":"SpanKind.INTERNAL",
 *                     "parent_id":"0x..." | null,"start_time","end_time",
 *                     "status":{"status_code":"UNSET"},"attributes":{...},
 *                     "events":[{"name","timestamp","attributes"}],
 *                     "links":[...],"resource":{"attributes":{...},
 *                     "schema_url":""}}
 *
 * A line whose ids are missing, of the wrong length or all zero yields no
 * span and counts one reject (out->rejected = 1, reason in reject_msg), like
 * the OTLP decoders; malformed JSON or a value of the wrong type is
 * HALO_EINVAL naming the key ("start_time: expected an ISO-8601 time").
 */
#include "otlp_codec_internal.h"

#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- enums ---------------------------------------------------------------- */

/* Index of s in names[] after an optional prefix ("SPAN_KIND_",
 * "SpanKind."), without regard to case; -1 when none matches. */
static int enum_index(const char *s, const char *const *prefixes,
                      const char *const *names, int n)
{
    for (int p = 0; prefixes[p]; p++) {
        size_t pl = strlen(prefixes[p]);
        if (strncasecmp(s, prefixes[p], pl) == 0) {
            s += pl;
            break;
        }
    }
    for (int i = 0; i < n; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    return -1;
}

static halo_status jl_enum(otlp_jctx *c, json_t *v, const char *const *prefixes,
                           const char *const *names, int n, const char *what,
                           int *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i >= INT32_MIN && i <= INT32_MAX) {
            *out = (int)i;
            return HALO_OK;
        }
    } else if (json_is_string(v)) {
        int i = enum_index(json_string_value(v), prefixes, names, n);
        if (i >= 0) {
            *out = i;
            return HALO_OK;
        }
    }
    return otlp_jfail(c, "expected %s", what);
}

static const char *const kind_prefixes[] = {"SPAN_KIND_", "SpanKind.", NULL};
static const char *const kind_bare[] = {"UNSPECIFIED", "INTERNAL", "SERVER",
                                        "CLIENT",      "PRODUCER", "CONSUMER"};
static const char *const status_prefixes[] = {"STATUS_CODE_", "StatusCode.",
                                              NULL};
static const char *const status_bare[] = {"UNSET", "OK", "ERROR"};

static halo_status jl_kind(otlp_jctx *c, json_t *v, int *out)
{
    return jl_enum(c, v, kind_prefixes, kind_bare, 6,
                   "a span kind (0-5 or a name like \"SERVER\")", out);
}

static halo_status jl_status_code(otlp_jctx *c, json_t *v, int *out)
{
    return jl_enum(c, v, status_prefixes, status_bare, 3,
                   "a status code (\"UNSET\", \"OK\", \"ERROR\" or 0-2)", out);
}

/* --- times ---------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned dm[] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* n decimal digits at *p (advancing it), or -1. */
static int digits(const char **p, const char *end, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (*p >= end || !isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (*(*p)++ - '0');
    }
    return v;
}

/* "+HH:MM", "+HHMM", "+HH", "Z" (or nothing: UTC) into seconds east. */
static bool parse_zone(const char *p, const char *end, int64_t *off)
{
    *off = 0;
    if (p == end)
        return true;
    if ((*p == 'Z' || *p == 'z') && p + 1 == end)
        return true;
    if (*p != '+' && *p != '-')
        return false;
    int sign = *p++ == '-' ? -1 : 1;
    int hh = digits(&p, end, 2), mm = 0;
    if (hh < 0 || hh > 23)
        return false;
    if (p < end && *p == ':')
        p++;
    if (p < end && (mm = digits(&p, end, 2)) < 0)
        return false;
    if (p != end || mm > 59)
        return false;
    *off = sign * (hh * 3600 + mm * 60);
    return true;
}

/* ISO-8601 / RFC 3339 date-time into ns since the epoch. */
static bool parse_iso8601(const char *s, size_t n, uint64_t *out)
{
    const char *p = s, *end = s + n;
    int y = digits(&p, end, 4);
    if (y < 1970 || p >= end || *p++ != '-')
        return false;
    int mo = digits(&p, end, 2);
    if (mo < 1 || mo > 12 || p >= end || *p++ != '-')
        return false;
    int d = digits(&p, end, 2);
    if (d < 1 || (unsigned)d > days_in_month((unsigned)y, (unsigned)mo))
        return false;
    int h = 0, mi = 0, sec = 0;
    uint64_t frac = 0;
    if (p < end && (*p == 'T' || *p == 't' || *p == ' ')) {
        p++;
        h = digits(&p, end, 2);
        if (h < 0 || h > 23 || p >= end || *p++ != ':')
            return false;
        mi = digits(&p, end, 2);
        if (mi < 0 || mi > 59)
            return false;
        if (p < end && *p == ':') {
            p++;
            sec = digits(&p, end, 2);
            if (sec < 0 || sec > 60)
                return false;
            if (p < end && (*p == '.' || *p == ',')) {
                p++;
                int nd = 0;
                if (p >= end || !isdigit((unsigned char)*p))
                    return false;
                for (; p < end && isdigit((unsigned char)*p); p++, nd++)
                    if (nd < 9)
                        frac = frac * 10 + (uint64_t)(*p - '0');
                for (; nd < 9; nd++)
                    frac *= 10;
            }
        }
    }
    int64_t off;
    if (!parse_zone(p, end, &off))
        return false;
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
                   h * 3600 + mi * 60 + sec - off;
    if (secs < 0 || (uint64_t)secs > UINT64_MAX / 1000000000u - 1)
        return false;
    *out = (uint64_t)secs * 1000000000u + frac;
    return true;
}

/* An epoch number in s, ms, us or ns, told apart by magnitude. */
static bool epoch_to_ns(double v, uint64_t *out)
{
    if (!(v >= 0) || v >= 1.8e19)
        return false;
    double scale = v < 1e11 ? 1e9 : v < 1e14 ? 1e6 : v < 1e17 ? 1e3 : 1;
    double ns = v * scale;
    if (ns >= 1.8e19)
        return false;
    *out = (uint64_t)ns;
    return true;
}

/* A time value: ISO-8601 string, digit string or number (by magnitude),
 * or "" for unknown (0). */
static halo_status jl_time(otlp_jctx *c, json_t *v, uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        json_int_t i = json_integer_value(v);
        uint64_t u = (uint64_t)i;
        if (i < (json_int_t)100000000000000000LL)
            return epoch_to_ns((double)i, out) ? HALO_OK
                                               : otlp_jfail(c, "bad time");
        *out = u;
        return HALO_OK;
    }
    if (json_is_real(v) && epoch_to_ns(json_real_value(v), out))
        return HALO_OK;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        uint64_t u;
        if (n == 0) {
            *out = 0;
            return HALO_OK;
        }
        if (strspn(s, "0123456789") == n &&
            otlp_jval_u64(c, v, &u) == HALO_OK) {
            if (u < 100000000000000000ULL && !epoch_to_ns((double)u, &u))
                return otlp_jfail(c, "bad time");
            *out = u;
            return HALO_OK;
        }
        if (parse_iso8601(s, n, out))
            return HALO_OK;
    }
    return otlp_jfail(c, "expected an ISO-8601 time (like "
                         "\"2026-11-16T09:00:00.123Z\") or epoch number");
}

/* --- members -------------------------------------------------------------- */

/* Member `name` of obj (null is absent) with its name pushed on the path;
 * pop with otlp_jpath_pop(c, *mark). */
static json_t *member(otlp_jctx *c, json_t *obj, const char *name, size_t *mark)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, name) : NULL;
    if (!v || json_is_null(v))
        return NULL;
    *mark = otlp_jpath_field(c, name);
    return v;
}

/* The first of names[] present in obj. */
static json_t *first_member(otlp_jctx *c, json_t *obj, const char *const *names,
                            size_t *mark)
{
    for (int i = 0; names[i]; i++) {
        json_t *v = member(c, obj, names[i], mark);
        if (v)
            return v;
    }
    return NULL;
}

static halo_status jl_str(otlp_jctx *c, json_t *obj, const char *name,
                          const char **out)
{
    size_t mark;
    json_t *v = member(c, obj, name, &mark);
    if (!v)
        return HALO_OK;
    halo_status st = otlp_jval_str(c, v, out, NULL);
    otlp_jpath_pop(c, mark);
    return st;
}

static halo_status jl_u32(otlp_jctx *c, json_t *obj, const char *name,
                          uint32_t *out)
{
    size_t mark;
    json_t *v = member(c, obj, name, &mark);
    uint64_t u;
    if (!v)
        return HALO_OK;
    halo_status st = otlp_jval_u64(c, v, &u);
    if (st == HALO_OK && u > UINT32_MAX)
        st = otlp_jfail(c, "integer out of range (at most 4294967295)");
    if (st == HALO_OK)
        *out = (uint32_t)u;
    otlp_jpath_pop(c, mark);
    return st;
}

/* An id from the first of names[] in obj; *len 0 when absent. */
static halo_status jl_id(otlp_jctx *c, json_t *obj, const char *const *names,
                         size_t expect, uint8_t *id, size_t *len)
{
    size_t mark;
    *len = 0;
    json_t *v = first_member(c, obj, names, &mark);
    if (!v)
        return HALO_OK;
    halo_status st = otlp_jval_hex(c, v, expect, id, expect, len);
    otlp_jpath_pop(c, mark);
    return st;
}

static halo_status jl_attrs(otlp_jctx *c, json_t *obj, const char *name,
                            halo_attrs *out)
{
    size_t mark;
    json_t *v = member(c, obj, name, &mark);
    if (!v)
        return HALO_OK;
    halo_status st = otlp_jattrs_any(c, v, out);
    otlp_jpath_pop(c, mark);
    return st;
}

/* A time from the exact-ns keys, else from the loose keys. */
static halo_status jl_time_member(otlp_jctx *c, json_t *obj,
                                  const char *const *ns_names,
                                  const char *const *loose_names, uint64_t *out)
{
    size_t mark;
    halo_status st;
    json_t *v = first_member(c, obj, ns_names, &mark);
    if (v) {
        st = otlp_jval_u64(c, v, out);
    } else {
        v = first_member(c, obj, loose_names, &mark);
        if (!v)
            return HALO_OK;
        st = jl_time(c, v, out);
    }
    otlp_jpath_pop(c, mark);
    return st;
}

/* --- parts of a span ------------------------------------------------------ */

static const char *const trace_id_keys[] = {"trace_id", "traceId", NULL};
static const char *const span_id_keys[] = {"span_id", "spanId", NULL};
static const char *const parent_keys[] = {"parent_span_id", "parentSpanId",
                                          "parent_id", NULL};

/* trace_state, ignoring Python's repr of an empty TraceState. */
static halo_status jl_trace_state(otlp_jctx *c, json_t *obj, const char **out)
{
    halo_status st = jl_str(c, obj, "trace_state", out);
    if (st == HALO_OK && strcmp(*out, "[]") == 0)
        *out = "";
    return st;
}

static halo_status jl_status(otlp_jctx *c, json_t *line, halo_span *hs)
{
    static const char *const code_keys[] = {"code", "status_code", NULL};
    static const char *const msg_keys[] = {"message", "description", NULL};
    size_t mark, m2;
    halo_status st = HALO_OK;
    json_t *v = member(c, line, "status_code", &mark);
    if (v) {
        st = jl_status_code(c, v, &hs->status_code);
        otlp_jpath_pop(c, mark);
    }
    if (st == HALO_OK)
        st = jl_str(c, line, "status_message", &hs->status_message);
    if (st != HALO_OK || !(v = member(c, line, "status", &mark)))
        return st;
    if (json_is_string(v) || json_is_integer(v)) {
        st = jl_status_code(c, v, &hs->status_code);
    } else if (json_is_object(v)) {
        json_t *code = first_member(c, v, code_keys, &m2);
        if (code) {
            st = jl_status_code(c, code, &hs->status_code);
            otlp_jpath_pop(c, m2);
        }
        json_t *msg = st == HALO_OK ? first_member(c, v, msg_keys, &m2) : NULL;
        if (msg) {
            st = otlp_jval_str(c, msg, &hs->status_message, NULL);
            otlp_jpath_pop(c, m2);
        }
    } else {
        st = otlp_jfail(c, "expected an object or a status code");
    }
    otlp_jpath_pop(c, mark);
    return st;
}

static halo_status jl_event(otlp_jctx *c, json_t *e, halo_event *out)
{
    static const char *const ns_keys[] = {"time_unix_nano", "timeUnixNano",
                                          NULL};
    static const char *const loose_keys[] = {"timestamp", "time", NULL};
    out->name = "";
    if (!json_is_object(e))
        return otlp_jfail(c, "expected an event object");
    halo_status st = jl_str(c, e, "name", &out->name);
    if (st == HALO_OK)
        st = jl_time_member(c, e, ns_keys, loose_keys, &out->time_ns);
    if (st == HALO_OK)
        st = jl_attrs(c, e, "attributes", &out->attrs);
    if (st == HALO_OK)
        st = jl_u32(c, e, "dropped_attributes_count", &out->dropped_attrs);
    return st;
}

/* The array member key of line, with room for its n items (of size bytes
 * each) allocated in *items. *arr is NULL when the member is absent;
 * otherwise the path is left at key, to pop with *mark. */
static halo_status jl_array(otlp_jctx *c, json_t *line, const char *key,
                            size_t size, json_t **arr, void **items, size_t *n,
                            size_t *mark)
{
    *n = 0;
    *arr = member(c, line, key, mark);
    if (!*arr)
        return HALO_OK;
    if (!json_is_array(*arr))
        return otlp_jfail(c, "expected an array");
    *n = json_array_size(*arr);
    if (*n && !(*items = halo_arena_calloc(c->arena, *n, size)))
        return otlp_jnomem(c);
    return HALO_OK;
}

static halo_status jl_events(otlp_jctx *c, json_t *line, halo_span *hs)
{
    size_t mark, n;
    json_t *arr;
    void *items = NULL;
    halo_status st = jl_array(c, line, "events", sizeof *hs->events, &arr,
                              &items, &n, &mark);
    if (st != HALO_OK || !arr)
        return st;
    hs->events = items;
    for (size_t i = 0; i < n; i++) {
        size_t p = otlp_jpath_index(c, i);
        st = jl_event(c, json_array_get(arr, i), &hs->events[i]);
        if (st != HALO_OK)
            return st;
        otlp_jpath_pop(c, p);
    }
    hs->n_events = n;
    otlp_jpath_pop(c, mark);
    return HALO_OK;
}

/* A link; *ok false (reason in why) when its ids are unusable. */
static halo_status jl_link(otlp_jctx *c, json_t *l, halo_link *out, bool *ok,
                           char *why, size_t why_size)
{
    size_t mark = 0;
    size_t tlen, slen;
    out->trace_state = "";
    if (!json_is_object(l))
        return otlp_jfail(c, "expected a link object");
    json_t *ctx = member(c, l, "context", &mark);
    json_t *ids = ctx ? ctx : l;
    if (ctx && !json_is_object(ctx))
        return otlp_jfail(c, "expected an object");
    halo_status st = jl_id(c, ids, trace_id_keys, 16, out->trace_id, &tlen);
    if (st == HALO_OK)
        st = jl_id(c, ids, span_id_keys, 8, out->span_id, &slen);
    if (st == HALO_OK)
        st = jl_trace_state(c, ids, &out->trace_state);
    if (st != HALO_OK)
        return st;
    if (ctx)
        otlp_jpath_pop(c, mark);
    *ok = otlp_check_link_ids(tlen, slen, why, why_size);
    if (!*ok)
        return HALO_OK;
    st = jl_attrs(c, l, "attributes", &out->attrs);
    if (st == HALO_OK)
        st = jl_u32(c, l, "dropped_attributes_count", &out->dropped_attrs);
    if (st == HALO_OK)
        st = jl_u32(c, l, "flags", &out->flags);
    return st;
}

static halo_status jl_links(otlp_jctx *c, json_t *line, halo_span *hs, bool *ok,
                            char *why, size_t why_size)
{
    size_t mark, n;
    json_t *arr;
    void *items = NULL;
    halo_status st =
        jl_array(c, line, "links", sizeof *hs->links, &arr, &items, &n, &mark);
    if (st != HALO_OK || !arr)
        return st;
    hs->links = items;
    st = otlp_jlinks(c, arr, hs->links, jl_link, ok, why, why_size);
    if (st != HALO_OK)
        return st;
    hs->n_links = n;
    otlp_jpath_pop(c, mark);
    return HALO_OK;
}

static halo_status jl_resource(otlp_jctx *c, json_t *line,
                               const halo_resource **out)
{
    size_t mark;
    *out = &otlp_empty_resource;
    json_t *r = member(c, line, "resource", &mark);
    if (!r)
        return HALO_OK;
    if (!json_is_object(r))
        return otlp_jfail(c, "expected an object");
    halo_resource *res = halo_arena_calloc(c->arena, 1, sizeof *res);
    if (!res)
        return otlp_jnomem(c);
    res->schema_url = "";
    halo_status st;
    json_t *attrs = json_object_get(r, "attributes");
    if (attrs && (json_is_object(attrs) || json_is_array(attrs))) {
        st = jl_attrs(c, r, "attributes", &res->attrs);
        if (st == HALO_OK)
            st = jl_str(c, r, "schema_url", &res->schema_url);
        if (st == HALO_OK)
            st = jl_u32(c, r, "dropped_attributes_count", &res->dropped_attrs);
    } else {
        st = otlp_jattrs_map(c, r, &res->attrs, 1);
    }
    if (st != HALO_OK)
        return st;
    otlp_jpath_pop(c, mark);
    *out = res;
    return HALO_OK;
}

static halo_status jl_scope(otlp_jctx *c, json_t *line, const halo_scope **out)
{
    static const char *const keys[] = {"scope", "instrumentation_scope", NULL};
    size_t mark;
    *out = &otlp_empty_scope;
    json_t *s = first_member(c, line, keys, &mark);
    if (!s)
        return HALO_OK;
    if (!json_is_object(s))
        return otlp_jfail(c, "expected an object");
    halo_scope *sc = halo_arena_calloc(c->arena, 1, sizeof *sc);
    if (!sc)
        return otlp_jnomem(c);
    sc->name = sc->version = sc->schema_url = "";
    halo_status st = jl_str(c, s, "name", &sc->name);
    if (st == HALO_OK)
        st = jl_str(c, s, "version", &sc->version);
    if (st == HALO_OK)
        st = jl_attrs(c, s, "attributes", &sc->attrs);
    if (st == HALO_OK)
        st = jl_str(c, s, "schema_url", &sc->schema_url);
    if (st != HALO_OK)
        return st;
    otlp_jpath_pop(c, mark);
    *out = sc;
    return HALO_OK;
}

/* An id from the top level of the line, else from its "context" object
 * (the Python SDK's shape). */
static halo_status jl_ctx_id(otlp_jctx *c, json_t *line, json_t *ctx,
                             const char *const *keys, size_t expect,
                             uint8_t *id, size_t *len)
{
    halo_status st = jl_id(c, line, keys, expect, id, len);
    if (st != HALO_OK || *len || !ctx)
        return st;
    size_t mark = otlp_jpath_field(c, "context");
    st = jl_id(c, ctx, keys, expect, id, len);
    otlp_jpath_pop(c, mark);
    return st;
}

/* trace id, span id, parent and trace state. */
static halo_status jl_ids(otlp_jctx *c, json_t *line, halo_span *hs,
                          size_t *tlen, size_t *slen, size_t *plen)
{
    size_t mark;
    json_t *ctx = member(c, line, "context", &mark);
    if (ctx) {
        if (!json_is_object(ctx))
            return otlp_jfail(c, "expected an object");
        otlp_jpath_pop(c, mark);
    }
    halo_status st =
        jl_ctx_id(c, line, ctx, trace_id_keys, 16, hs->trace_id, tlen);
    if (st == HALO_OK)
        st = jl_ctx_id(c, line, ctx, span_id_keys, 8, hs->span_id, slen);
    if (st == HALO_OK)
        st = jl_id(c, line, parent_keys, 8, hs->parent_span_id, plen);
    if (st == HALO_OK)
        st = jl_trace_state(c, line, &hs->trace_state);
    if (st == HALO_OK && !*hs->trace_state && ctx) {
        mark = otlp_jpath_field(c, "context");
        st = jl_trace_state(c, ctx, &hs->trace_state);
        otlp_jpath_pop(c, mark);
    }
    return st;
}

/* Text of a derived column: a string as it is, any other JSON value (an
 * object of tool arguments, say) as compact JSON; "" counts as absent. */
static halo_status jl_text(otlp_jctx *c, json_t *line, const char *name,
                           const char **out)
{
    size_t mark;
    json_t *v = member(c, line, name, &mark);
    if (!v)
        return HALO_OK;
    halo_status st = HALO_OK;
    const char *t = NULL;
    if (json_is_string(v)) {
        st = otlp_jval_str(c, v, &t, NULL);
    } else {
        char *js = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        t = js ? halo_arena_strdup(c->arena, js) : NULL;
        free(js);
        if (!t)
            st = otlp_jnomem(c);
    }
    if (st == HALO_OK && t && *t)
        *out = t;
    otlp_jpath_pop(c, mark);
    return st;
}

/* The first of keys that attrs has as a non-empty string, or NULL. */
static const char *attr_text(const halo_attrs *attrs, const char *const *keys)
{
    for (int k = 0; keys[k]; k++) {
        const halo_value *v = halo_attrs_get(attrs, keys[k]);
        if (v && v->type == HALO_VAL_STRING && v->u.s.len)
            return v->u.s.ptr;
    }
    return NULL;
}

static const char *const agent_name_attrs[] = {
    "agent.name", "gen_ai.agent.name", "inference.agent_name", NULL};

/* The derived columns of a `spans` row given at the top of the line
 * (agent_id, model, input_tokens, ...). They are set on the span as if an
 * earlier processor had derived them: agent_identity keeps them (unless its
 * `override` is on) and derives the others from the attributes. A line
 * that names its agent only this way is stored under that agent. */
static halo_status jl_columns(otlp_jctx *c, json_t *line,
                              const halo_attrs *attrs, halo_derived *d)
{
    static const struct {
        const char *key;
        size_t off;
    } text[] = {
        {"agent_id", offsetof(halo_derived, agent_id)},
        {"agent_name", offsetof(halo_derived, agent_name)},
        {"session_id", offsetof(halo_derived, session_id)},
        {"user_id", offsetof(halo_derived, user_id)},
        {"service_name", offsetof(halo_derived, service_name)},
        {"model", offsetof(halo_derived, model)},
        {"tool_name", offsetof(halo_derived, tool_name)},
        {"input", offsetof(halo_derived, input)},
        {"output", offsetof(halo_derived, output)},
    };
    halo_status st = HALO_OK;
    for (size_t i = 0; st == HALO_OK && i < sizeof text / sizeof *text; i++)
        st = jl_text(c, line, text[i].key,
                     (const char **)(void *)((char *)d + text[i].off));
    /* DESIGN §5 takes both from one level: a name the span's attributes
     * give, else the id; an id from the name when only the name is given */
    if (d->agent_id && !d->agent_name)
        d->agent_name = attr_text(attrs, agent_name_attrs);
    if (d->agent_id && !d->agent_name)
        d->agent_name = d->agent_id;
    if (d->agent_name && !d->agent_id)
        d->agent_id = d->agent_name;
    const char *type = NULL;
    if (st == HALO_OK)
        st = jl_text(c, line, "span_type", &type);
    if (st == HALO_OK && type && strcasecmp(type, "UNKNOWN") != 0) {
        char *up = halo_arena_strdup(c->arena, type);
        if (!up)
            return otlp_jnomem(c);
        for (char *q = up; *q; q++)
            *q = (char)toupper((unsigned char)*q);
        d->span_type = up;
    }
    struct {
        const char *key;
        int64_t *n;
        bool *has;
    } counts[] = {
        {"input_tokens", &d->input_tokens, &d->has_input_tokens},
        {"output_tokens", &d->output_tokens, &d->has_output_tokens},
    };
    for (size_t i = 0; st == HALO_OK && i < 2; i++) {
        size_t mark;
        json_t *v = member(c, line, counts[i].key, &mark);
        if (!v)
            continue;
        st = otlp_jval_i64(c, v, counts[i].n);
        /* the bounds agent_identity puts on a count from an attribute */
        if (st == HALO_OK &&
            (*counts[i].n < 0 || *counts[i].n > 9000000000000000LL))
            st = otlp_jfail(c, "a token count is a whole number from 0 to "
                               "9000000000000000");
        *counts[i].has = st == HALO_OK;
        otlp_jpath_pop(c, mark);
    }
    size_t mark;
    json_t *v = st == HALO_OK ? member(c, line, "cost", &mark) : NULL;
    if (v) {
        st = otlp_jval_double(c, v, &d->cost);
        if (st == HALO_OK && !(isfinite(d->cost) && d->cost >= 0))
            st = otlp_jfail(c, "a cost is a finite number of USD, 0 or more");
        d->has_cost = st == HALO_OK;
        otlp_jpath_pop(c, mark);
    }
    return st;
}

/* Everything but the ids. */
static halo_status jl_body(otlp_jctx *c, json_t *line, halo_span *hs)
{
    static const char *const start_ns[] = {
        "start_unix_nano", "start_time_unix_nano", "startTimeUnixNano", NULL};
    static const char *const start_loose[] = {"start_time", NULL};
    static const char *const end_ns[] = {"end_unix_nano", "end_time_unix_nano",
                                         "endTimeUnixNano", NULL};
    static const char *const end_loose[] = {"end_time", NULL};
    size_t mark;
    halo_status st = jl_str(c, line, "name", &hs->name);
    json_t *kind = st == HALO_OK ? member(c, line, "kind", &mark) : NULL;
    if (kind) {
        st = jl_kind(c, kind, &hs->kind);
        otlp_jpath_pop(c, mark);
    }
    if (st == HALO_OK)
        st = jl_time_member(c, line, start_ns, start_loose, &hs->start_ns);
    if (st == HALO_OK)
        st = jl_time_member(c, line, end_ns, end_loose, &hs->end_ns);
    if (st == HALO_OK)
        st = jl_status(c, line, hs);
    if (st == HALO_OK)
        st = jl_attrs(c, line, "attributes", &hs->attrs);
    if (st == HALO_OK)
        st = jl_events(c, line, hs);
    if (st == HALO_OK)
        st = jl_u32(c, line, "flags", &hs->flags);
    if (st == HALO_OK)
        st = jl_u32(c, line, "dropped_attributes_count", &hs->dropped_attrs);
    if (st == HALO_OK)
        st = jl_u32(c, line, "dropped_events_count", &hs->dropped_events);
    if (st == HALO_OK)
        st = jl_u32(c, line, "dropped_links_count", &hs->dropped_links);
    if (st == HALO_OK)
        st = jl_resource(c, line, &hs->resource);
    if (st == HALO_OK)
        st = jl_scope(c, line, &hs->scope);
    if (st == HALO_OK)
        st = jl_columns(c, line, &hs->attrs, &hs->d);
    return st;
}

static halo_status jl_span(otlp_jctx *c, json_t *line, halo_otlp_result *out)
{
    size_t tlen, slen, plen;
    char why[160];
    if (!json_is_object(line))
        return otlp_jfail(c, "expected a JSON object (one span per line)");
    halo_span *hs = halo_arena_calloc(c->arena, 1, sizeof *hs);
    if (!hs)
        return otlp_jnomem(c);
    hs->trace_state = hs->name = hs->status_message = "";
    hs->resource = &otlp_empty_resource;
    hs->scope = &otlp_empty_scope;
    halo_status st = jl_ids(c, line, hs, &tlen, &slen, &plen);
    if (st != HALO_OK)
        return st;
    if (!otlp_check_span_ids(tlen, hs->trace_id, slen, hs->span_id, plen, why,
                             sizeof why)) {
        otlp_reject(out, "%s", why);
        return HALO_OK;
    }
    bool ok = true;
    st = jl_links(c, line, hs, &ok, why, sizeof why);
    if (st != HALO_OK)
        return st;
    if (!ok) {
        otlp_reject(out, "%s", why);
        return HALO_OK;
    }
    st = jl_body(c, line, hs);
    if (st != HALO_OK)
        return st;
    out->spans = hs;
    out->n = 1;
    return HALO_OK;
}

halo_status halo_span_decode_jsonl(const char *line, size_t len,
                                   halo_arena *arena, halo_otlp_result *out,
                                   halo_err *err)
{
    memset(out, 0, sizeof *out);
    if (!line)
        line = "";
    size_t blank = 0;
    while (blank < len && isspace((unsigned char)line[blank]))
        blank++;
    if (blank == len)
        return halo_fail(err, HALO_EINVAL, "empty line");
    return otlp_jdecode(line, len, arena, jl_span, out, err);
}
