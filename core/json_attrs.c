/*
 * json_attrs.c -- span attributes, events, links and scopes <-> JSON text
 * (json_attrs.h).
 *
 * Encoding is on the write path of every span, so it writes straight into a
 * halo_buf with no intermediate tree, through buf.c's JSON string, integer
 * and double encoders and base64.c. Decoding is on the read path (CLI,
 * analyzer, export) and goes through jansson: the text is parsed into a
 * json_t tree, then converted into halo types carved from the caller's
 * arena, and the tree is freed. jansson keeps object keys in insertion
 * order, so attributes come back in the order they were written.
 */
#include "json_attrs.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoding ------------------------------------------------------------ */

static void put_key(halo_buf *out, const char *key)
{
    halo_buf_json_str(out, key, strlen(key));
    halo_buf_putc(out, ':');
}

static void put_cstr(halo_buf *out, const char *s)
{
    if (!s)
        s = "";
    halo_buf_json_str(out, s, strlen(s));
}

static void encode_value(halo_buf *out, const halo_value *v, int depth);

static void encode_kvs(halo_buf *out, const halo_kv *items, size_t n, int depth)
{
    halo_buf_putc(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            halo_buf_putc(out, ',');
        put_key(out, items[i].key ? items[i].key : "");
        encode_value(out, &items[i].value, depth + 1);
    }
    halo_buf_putc(out, '}');
}

static void encode_value(halo_buf *out, const halo_value *v, int depth)
{
    if (depth > HALO_JSON_MAX_DEPTH) {
        halo_buf_puts(out, "null");
        return;
    }
    switch (v->type) {
    case HALO_VAL_STRING:
        halo_buf_json_str(out, v->u.s.ptr ? v->u.s.ptr : "",
                          v->u.s.ptr ? v->u.s.len : 0);
        break;
    case HALO_VAL_BOOL:
        halo_buf_puts(out, v->u.b ? "true" : "false");
        break;
    case HALO_VAL_INT:
        halo_buf_json_int(out, v->u.i);
        break;
    case HALO_VAL_DOUBLE:
        halo_buf_json_double(out, v->u.d);
        break;
    case HALO_VAL_BYTES:
        halo_buf_putc(out, '"');
        halo_base64_encode(out, v->u.s.ptr, v->u.s.ptr ? v->u.s.len : 0);
        halo_buf_putc(out, '"');
        break;
    case HALO_VAL_ARRAY:
        halo_buf_putc(out, '[');
        for (size_t i = 0; i < v->u.arr.n; i++) {
            if (i)
                halo_buf_putc(out, ',');
            encode_value(out, &v->u.arr.items[i], depth + 1);
        }
        halo_buf_putc(out, ']');
        break;
    case HALO_VAL_KVLIST:
        encode_kvs(out, v->u.kv.items, v->u.kv.n, depth);
        break;
    case HALO_VAL_EMPTY:
    default:
        halo_buf_puts(out, "null");
        break;
    }
}

void halo_json_encode_value(halo_buf *out, const halo_value *v)
{
    encode_value(out, v, 0);
}

void halo_json_encode_attrs(halo_buf *out, const halo_attrs *a)
{
    encode_kvs(out, a ? a->items : NULL, a ? a->n : 0, 0);
}

/* The cut whose text v is, if any still open. */
static halo_json_cut *match_cut(const halo_value *v, halo_json_cut *cut,
                                size_t n)
{
    if (v->type != HALO_VAL_STRING || !v->u.s.ptr ||
        v->u.s.len < HALO_JSON_CUT_MIN)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        halo_json_cut *c = &cut[i];
        if (!c->at && c->s && c->len == v->u.s.len &&
            memcmp(c->s, v->u.s.ptr, c->len) == 0)
            return halo_utf8_valid(c->s, c->len) ? c : NULL;
    }
    return NULL;
}

/* Characters in s[0..n) (valid UTF-8: the bytes that are not continuation
 * bytes, 10xxxxxx), counted 8 bytes at a time: this runs over the JSON
 * written before each cut. */
static int64_t utf8_chars(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    int64_t k = (int64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        /* bit 7 set and bit 6 (shifted up into bit 7) clear */
        uint64_t cont = v & ~(v << 1) & 0x8080808080808080ull;
        if (cont)
            k -= __builtin_popcountll(cont);
    }
    for (; i < n; i++)
        k -= (p[i] & 0xC0) == 0x80;
    return k;
}

void halo_json_encode_attrs_cut(halo_buf *out, const halo_attrs *a,
                                halo_json_cut *cut, size_t n_cut)
{
    size_t n = a ? a->n : 0;
    size_t counted = out->len; /* characters before it are in chars */
    int64_t chars = 0;
    for (size_t i = 0; i < n_cut; i++)
        cut[i].at = 0;
    halo_buf_putc(out, '{');
    for (size_t i = 0; i < n; i++) {
        const halo_kv *kv = &a->items[i];
        if (i)
            halo_buf_putc(out, ',');
        put_key(out, kv->key ? kv->key : "");
        halo_json_cut *c = out->oom ? NULL : match_cut(&kv->value, cut, n_cut);
        if (c) {
            chars += utf8_chars(out->data + counted, out->len - counted);
            counted = out->len;
            c->at = chars + 1;
            halo_buf_puts(out, "null");
        } else {
            encode_value(out, &kv->value, 1);
        }
    }
    halo_buf_putc(out, '}');
}

void halo_json_encode_events(halo_buf *out, const halo_event *ev, size_t n)
{
    halo_buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            halo_buf_putc(out, ',');
        halo_buf_puts(out, "{\"name\":");
        put_cstr(out, ev[i].name);
        halo_buf_puts(out, ",\"time_unix_nano\":");
        halo_buf_json_int(out, (int64_t)ev[i].time_ns);
        halo_buf_puts(out, ",\"attributes\":");
        halo_json_encode_attrs(out, &ev[i].attrs);
        halo_buf_puts(out, ",\"dropped_attributes_count\":");
        halo_buf_json_int(out, ev[i].dropped_attrs);
        halo_buf_putc(out, '}');
    }
    halo_buf_putc(out, ']');
}

void halo_json_encode_links(halo_buf *out, const halo_link *l, size_t n)
{
    char hex[33];
    halo_buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            halo_buf_putc(out, ',');
        halo_hex_encode(l[i].trace_id, 16, hex);
        halo_buf_printf(out, "{\"trace_id\":\"%s\",", hex);
        halo_hex_encode(l[i].span_id, 8, hex);
        halo_buf_printf(out, "\"span_id\":\"%s\",\"trace_state\":", hex);
        put_cstr(out, l[i].trace_state);
        halo_buf_puts(out, ",\"flags\":");
        halo_buf_json_int(out, l[i].flags);
        halo_buf_puts(out, ",\"attributes\":");
        halo_json_encode_attrs(out, &l[i].attrs);
        halo_buf_puts(out, ",\"dropped_attributes_count\":");
        halo_buf_json_int(out, l[i].dropped_attrs);
        halo_buf_putc(out, '}');
    }
    halo_buf_putc(out, ']');
}

/* Members with their zero value are left out: most scopes are just a
 * name and a version, and this is stored with every span. */
void halo_json_encode_scope(halo_buf *out, const halo_scope *s)
{
    halo_buf_puts(out, "{\"name\":");
    put_cstr(out, s ? s->name : "");
    if (s && s->version && *s->version) {
        halo_buf_puts(out, ",\"version\":");
        put_cstr(out, s->version);
    }
    if (s && s->attrs.n) {
        halo_buf_puts(out, ",\"attributes\":");
        halo_json_encode_attrs(out, &s->attrs);
    }
    if (s && s->dropped_attrs) {
        halo_buf_puts(out, ",\"dropped_attributes_count\":");
        halo_buf_json_int(out, s->dropped_attrs);
    }
    if (s && s->schema_url && *s->schema_url) {
        halo_buf_puts(out, ",\"schema_url\":");
        put_cstr(out, s->schema_url);
    }
    halo_buf_putc(out, '}');
}

/* ---- decoding ------------------------------------------------------------ */

/* Parse text as JSON; *root is NULL for NULL/empty text. */
static halo_status parse(const char *text, size_t len, json_t **root,
                         const char *what, halo_err *err)
{
    *root = NULL;
    if (!text || len == 0)
        return HALO_OK;
    json_error_t jerr;
    *root = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!*root)
        return halo_fail(err, HALO_EINVAL, "invalid %s json at offset %d: %s",
                         what, jerr.position, jerr.text);
    return HALO_OK;
}

static halo_status decode_value(json_t *j, halo_arena *arena, halo_value *out,
                                const char *what, halo_err *err);

static halo_status decode_object(json_t *obj, halo_arena *arena,
                                 halo_kv **items, size_t *n, const char *what,
                                 halo_err *err)
{
    *items = NULL;
    *n = 0;
    size_t count = json_object_size(obj);
    if (count == 0)
        return HALO_OK;
    halo_kv *kv = halo_arena_calloc(arena, count, sizeof *kv);
    if (!kv)
        return halo_fail(err, HALO_ENOMEM, "out of memory decoding %s", what);
    size_t i = 0;
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        if (i == count)
            break;
        kv[i].key = halo_arena_strdup(arena, key);
        if (!kv[i].key)
            return halo_fail(err, HALO_ENOMEM, "out of memory decoding %s",
                             what);
        halo_status st = decode_value(val, arena, &kv[i].value, what, err);
        if (st != HALO_OK)
            return st;
        i++;
    }
    *items = kv;
    *n = i;
    return HALO_OK;
}

static halo_status decode_array(json_t *arr, halo_arena *arena, halo_value *out,
                                const char *what, halo_err *err)
{
    size_t count = json_array_size(arr);
    out->u.arr.items = NULL;
    out->u.arr.n = 0;
    if (count == 0)
        return HALO_OK;
    halo_value *items = halo_arena_calloc(arena, count, sizeof *items);
    if (!items)
        return halo_fail(err, HALO_ENOMEM, "out of memory decoding %s", what);
    for (size_t i = 0; i < count; i++) {
        halo_status st =
            decode_value(json_array_get(arr, i), arena, &items[i], what, err);
        if (st != HALO_OK)
            return st;
    }
    out->u.arr.items = items;
    out->u.arr.n = count;
    return HALO_OK;
}

static halo_status decode_value(json_t *j, halo_arena *arena, halo_value *out,
                                const char *what, halo_err *err)
{
    memset(out, 0, sizeof *out);
    switch (json_typeof(j)) {
    case JSON_STRING: {
        size_t len = json_string_length(j);
        char *s = halo_arena_strndup(arena, json_string_value(j), len);
        if (!s)
            return halo_fail(err, HALO_ENOMEM, "out of memory decoding %s",
                             what);
        out->type = HALO_VAL_STRING;
        out->u.s.ptr = s;
        out->u.s.len = len;
        return HALO_OK;
    }
    case JSON_INTEGER:
        out->type = HALO_VAL_INT;
        out->u.i = (int64_t)json_integer_value(j);
        return HALO_OK;
    case JSON_REAL:
        out->type = HALO_VAL_DOUBLE;
        out->u.d = json_real_value(j);
        return HALO_OK;
    case JSON_TRUE:
    case JSON_FALSE:
        out->type = HALO_VAL_BOOL;
        out->u.b = json_is_true(j);
        return HALO_OK;
    case JSON_ARRAY:
        out->type = HALO_VAL_ARRAY;
        return decode_array(j, arena, out, what, err);
    case JSON_OBJECT:
        out->type = HALO_VAL_KVLIST;
        return decode_object(j, arena, &out->u.kv.items, &out->u.kv.n, what,
                             err);
    case JSON_NULL:
    default:
        out->type = HALO_VAL_EMPTY;
        return HALO_OK;
    }
}

/* An attributes object (or null / absent) into out. */
static halo_status attrs_from(json_t *j, halo_arena *arena, halo_attrs *out,
                              const char *what, halo_err *err)
{
    out->items = NULL;
    out->n = 0;
    if (!j || json_is_null(j))
        return HALO_OK;
    if (!json_is_object(j))
        return halo_fail(err, HALO_EINVAL, "invalid %s: expected an object",
                         what);
    return decode_object(j, arena, &out->items, &out->n, what, err);
}

halo_status halo_json_decode_attrs(const char *text, size_t len,
                                   halo_arena *arena, halo_attrs *out,
                                   const char *what, halo_err *err)
{
    json_t *root;
    out->items = NULL;
    out->n = 0;
    halo_status st = parse(text, len, &root, what, err);
    if (st == HALO_OK)
        st = attrs_from(root, arena, out, what, err);
    json_decref(root);
    return st;
}

/* Optional string member; "" when absent or null. */
static halo_status get_str(json_t *obj, const char *key, halo_arena *arena,
                           const char **out, const char *what, halo_err *err)
{
    json_t *j = json_object_get(obj, key);
    if (!j || json_is_null(j)) {
        *out = "";
        return HALO_OK;
    }
    if (!json_is_string(j))
        return halo_fail(err, HALO_EINVAL, "invalid %s.%s: expected a string",
                         what, key);
    *out =
        halo_arena_strndup(arena, json_string_value(j), json_string_length(j));
    if (!*out)
        return halo_fail(err, HALO_ENOMEM, "out of memory decoding %s", what);
    return HALO_OK;
}

/* Optional integer member; 0 when absent. */
static halo_status get_int(json_t *obj, const char *key, int64_t *out,
                           const char *what, halo_err *err)
{
    json_t *j = json_object_get(obj, key);
    *out = 0;
    if (!j || json_is_null(j))
        return HALO_OK;
    if (!json_is_integer(j))
        return halo_fail(err, HALO_EINVAL, "invalid %s.%s: expected an integer",
                         what, key);
    *out = (int64_t)json_integer_value(j);
    return HALO_OK;
}

/* Optional count member (uint32 range). */
static halo_status get_u32(json_t *obj, const char *key, uint32_t *out,
                           const char *what, halo_err *err)
{
    int64_t v;
    halo_status st = get_int(obj, key, &v, what, err);
    if (st != HALO_OK)
        return st;
    if (v < 0 || v > UINT32_MAX)
        return halo_fail(err, HALO_EINVAL,
                         "invalid %s.%s: %" PRId64 " is out of range", what,
                         key, v);
    *out = (uint32_t)v;
    return HALO_OK;
}

/* Parse text that must be a JSON array (or empty / null). */
static halo_status parse_array(const char *text, size_t len, json_t **root,
                               const char *what, halo_err *err)
{
    halo_status st = parse(text, len, root, what, err);
    if (st != HALO_OK)
        return st;
    if (*root && json_is_null(*root)) {
        json_decref(*root);
        *root = NULL;
    }
    if (*root && !json_is_array(*root)) {
        json_decref(*root);
        *root = NULL;
        return halo_fail(err, HALO_EINVAL, "invalid %s: expected an array",
                         what);
    }
    return HALO_OK;
}

static halo_status decode_event(json_t *j, halo_arena *arena, halo_event *ev,
                                const char *what, halo_err *err)
{
    if (!json_is_object(j))
        return halo_fail(err, HALO_EINVAL, "invalid %s: expected an object",
                         what);
    int64_t t = 0;
    halo_status st = get_str(j, "name", arena, &ev->name, what, err);
    if (st == HALO_OK)
        st = get_int(j, "time_unix_nano", &t, what, err);
    if (st == HALO_OK)
        st = get_u32(j, "dropped_attributes_count", &ev->dropped_attrs, what,
                     err);
    if (st == HALO_OK)
        st = attrs_from(json_object_get(j, "attributes"), arena, &ev->attrs,
                        what, err);
    ev->time_ns = (uint64_t)t;
    return st;
}

halo_status halo_json_decode_events(const char *text, size_t len,
                                    halo_arena *arena, halo_event **out,
                                    size_t *n, halo_err *err)
{
    json_t *root;
    *out = NULL;
    *n = 0;
    halo_status st = parse_array(text, len, &root, "events", err);
    size_t count = root ? json_array_size(root) : 0;
    if (st != HALO_OK || count == 0)
        goto cleanup;
    halo_event *ev = halo_arena_calloc(arena, count, sizeof *ev);
    if (!ev) {
        st = halo_fail(err, HALO_ENOMEM, "out of memory decoding events");
        goto cleanup;
    }
    for (size_t i = 0; i < count && st == HALO_OK; i++) {
        char what[48];
        snprintf(what, sizeof what, "events[%zu]", i);
        st = decode_event(json_array_get(root, i), arena, &ev[i], what, err);
    }
    if (st == HALO_OK) {
        *out = ev;
        *n = count;
    }
cleanup:
    json_decref(root);
    return st;
}

/* A hex id member of exactly nbytes bytes. */
static halo_status get_id(json_t *obj, const char *key, uint8_t *out,
                          size_t nbytes, const char *what, halo_err *err)
{
    json_t *j = json_object_get(obj, key);
    const char *s = json_string_value(j);
    if (!s || !halo_hex_decode(s, json_string_length(j), out, nbytes))
        return halo_fail(err, HALO_EINVAL,
                         "invalid %s.%s: expected %zu hex digits", what, key,
                         2 * nbytes);
    return HALO_OK;
}

static halo_status decode_link(json_t *j, halo_arena *arena, halo_link *l,
                               const char *what, halo_err *err)
{
    if (!json_is_object(j))
        return halo_fail(err, HALO_EINVAL, "invalid %s: expected an object",
                         what);
    halo_status st = get_id(j, "trace_id", l->trace_id, 16, what, err);
    if (st == HALO_OK)
        st = get_id(j, "span_id", l->span_id, 8, what, err);
    if (st == HALO_OK)
        st = get_str(j, "trace_state", arena, &l->trace_state, what, err);
    if (st == HALO_OK)
        st = get_u32(j, "flags", &l->flags, what, err);
    if (st == HALO_OK)
        st = get_u32(j, "dropped_attributes_count", &l->dropped_attrs, what,
                     err);
    if (st == HALO_OK)
        st = attrs_from(json_object_get(j, "attributes"), arena, &l->attrs,
                        what, err);
    return st;
}

halo_status halo_json_decode_links(const char *text, size_t len,
                                   halo_arena *arena, halo_link **out,
                                   size_t *n, halo_err *err)
{
    json_t *root;
    *out = NULL;
    *n = 0;
    halo_status st = parse_array(text, len, &root, "links", err);
    size_t count = root ? json_array_size(root) : 0;
    if (st != HALO_OK || count == 0)
        goto cleanup;
    halo_link *l = halo_arena_calloc(arena, count, sizeof *l);
    if (!l) {
        st = halo_fail(err, HALO_ENOMEM, "out of memory decoding links");
        goto cleanup;
    }
    for (size_t i = 0; i < count && st == HALO_OK; i++) {
        char what[48];
        snprintf(what, sizeof what, "links[%zu]", i);
        st = decode_link(json_array_get(root, i), arena, &l[i], what, err);
    }
    if (st == HALO_OK) {
        *out = l;
        *n = count;
    }
cleanup:
    json_decref(root);
    return st;
}

halo_status halo_json_decode_scope(const char *text, size_t len,
                                   halo_arena *arena, halo_scope *out,
                                   halo_err *err)
{
    json_t *root;
    memset(out, 0, sizeof *out);
    out->name = out->version = out->schema_url = "";
    halo_status st = parse(text, len, &root, "scope", err);
    if (st != HALO_OK || !root || json_is_null(root))
        goto cleanup;
    if (!json_is_object(root)) {
        st = halo_fail(err, HALO_EINVAL, "invalid scope: expected an object");
        goto cleanup;
    }
    st = get_str(root, "name", arena, &out->name, "scope", err);
    if (st == HALO_OK)
        st = get_str(root, "version", arena, &out->version, "scope", err);
    if (st == HALO_OK)
        st = get_str(root, "schema_url", arena, &out->schema_url, "scope", err);
    if (st == HALO_OK)
        st = get_u32(root, "dropped_attributes_count", &out->dropped_attrs,
                     "scope", err);
    if (st == HALO_OK)
        st = attrs_from(json_object_get(root, "attributes"), arena, &out->attrs,
                        "scope.attributes", err);
cleanup:
    json_decref(root);
    return st;
}
