/*
 * json_types.c -- the value_types sidecar: where a span's JSON columns hold
 * a value whose OTLP type plain JSON cannot tell (json_attrs.h).
 *
 * The JSON columns are written for people and their SQL, so a BYTES value
 * is its base64 text and a NaN or infinite DOUBLE the string "NaN",
 * "Infinity" or "-Infinity": read back alone they would be STRINGs. The
 * sidecar lists exactly those values, so a rebuilt span is the span that
 * came in (`halo export` gives back what was sent). It is one JSON array
 * of marks; a span without such values (nearly every span) has none and
 * the column stays NULL:
 *
 *   [["b", "a", "payload"], ["d", "e", 0, "score", 2]]
 *
 * A mark is its kind ("b": BYTES, "d": DOUBLE) and the path to the value:
 * where the list starts ("a" span attributes, "r" resource attributes,
 * "s" scope attributes, "e" N the attributes of event N, "l" N those of
 * link N), then one step per level: a key inside an attribute list or a
 * KVLIST, an index inside an ARRAY. The walk follows the encoder's depth
 * limit (HALO_JSON_MAX_DEPTH): a value written as null is not marked.
 *
 * Applying the marks never trusts the text (the column may have been
 * edited by hand): a path that leads nowhere, or to a value that is not
 * the string the mark expects, is HALO_EINVAL naming the mark.
 */
#include "json_attrs.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

/* ---- encoding ------------------------------------------------------------ */

typedef struct step {
    const char *key; /* NULL: an index */
    size_t index;
} step;

typedef struct walker {
    halo_buf *out;
    size_t n_marks;
    size_t depth;
    step path[HALO_JSON_MAX_DEPTH + 4];
} walker;

static void emit_mark(walker *w, const char *kind)
{
    halo_buf_putc(w->out, w->n_marks++ ? ',' : '[');
    halo_buf_putc(w->out, '[');
    halo_buf_json_str(w->out, kind, strlen(kind));
    for (size_t i = 0; i < w->depth; i++) {
        halo_buf_putc(w->out, ',');
        if (w->path[i].key)
            halo_buf_json_str(w->out, w->path[i].key, strlen(w->path[i].key));
        else
            halo_buf_printf(w->out, "%zu", w->path[i].index);
    }
    halo_buf_putc(w->out, ']');
}

static void push(walker *w, const char *key, size_t index)
{
    w->path[w->depth].key = key;
    w->path[w->depth].index = index;
    w->depth++;
}

static void walk_value(walker *w, const halo_value *v, int depth);

static void walk_kvs(walker *w, const halo_kv *items, size_t n, int depth)
{
    for (size_t i = 0; i < n; i++) {
        push(w, items[i].key ? items[i].key : "", 0);
        walk_value(w, &items[i].value, depth + 1);
        w->depth--;
    }
}

/* depth as in json_attrs.c's encode_value: deeper values are null. */
static void walk_value(walker *w, const halo_value *v, int depth)
{
    if (depth > HALO_JSON_MAX_DEPTH)
        return;
    switch (v->type) {
    case HALO_VAL_BYTES:
        emit_mark(w, "b");
        break;
    case HALO_VAL_DOUBLE:
        if (!isfinite(v->u.d))
            emit_mark(w, "d");
        break;
    case HALO_VAL_ARRAY:
        for (size_t i = 0; i < v->u.arr.n; i++) {
            push(w, NULL, i);
            walk_value(w, &v->u.arr.items[i], depth + 1);
            w->depth--;
        }
        break;
    case HALO_VAL_KVLIST:
        walk_kvs(w, v->u.kv.items, v->u.kv.n, depth);
        break;
    default:
        break;
    }
}

/* Whether a list holds anything that could need a mark: a flat look
 * first, since nearly every list holds only strings, numbers and bools. */
static bool may_mark(const halo_attrs *a)
{
    for (size_t i = 0; i < a->n; i++) {
        const halo_value *v = &a->items[i].value;
        switch (v->type) {
        case HALO_VAL_BYTES:
        case HALO_VAL_ARRAY:
        case HALO_VAL_KVLIST:
            return true;
        case HALO_VAL_DOUBLE:
            if (!isfinite(v->u.d))
                return true;
            break;
        default:
            break;
        }
    }
    return false;
}

/* One attribute list under its root step(s). */
static void walk_list(walker *w, const char *root, const size_t *index,
                      const halo_attrs *a)
{
    if (!may_mark(a))
        return;
    push(w, root, 0);
    if (index)
        push(w, NULL, *index);
    walk_kvs(w, a->items, a->n, 0);
    w->depth -= index ? 2 : 1;
}

bool halo_json_encode_value_types(halo_buf *out, const halo_span *sp)
{
    walker w = {.out = out};
    walk_list(&w, "a", NULL, &sp->attrs);
    if (sp->resource)
        walk_list(&w, "r", NULL, &sp->resource->attrs);
    if (sp->scope)
        walk_list(&w, "s", NULL, &sp->scope->attrs);
    for (size_t i = 0; i < sp->n_events; i++)
        walk_list(&w, "e", &i, &sp->events[i].attrs);
    for (size_t i = 0; i < sp->n_links; i++)
        walk_list(&w, "l", &i, &sp->links[i].attrs);
    if (w.n_marks)
        halo_buf_putc(out, ']');
    return w.n_marks > 0;
}

/* ---- applying ------------------------------------------------------------ */

typedef struct target {
    halo_attrs *span, *resource, *scope;
    halo_event *events;
    size_t n_events;
    halo_link *links;
    size_t n_links;
} target;

static halo_status bad_mark(size_t i, const char *why, halo_err *err)
{
    return halo_fail(err, HALO_EINVAL, "invalid value_types mark %zu: %s", i,
                     why);
}

/* The attribute list a mark starts at; *next is the first step after it. */
static halo_attrs *mark_list(const target *t, json_t *mark, size_t *next)
{
    const char *root = json_string_value(json_array_get(mark, 1));
    *next = 2;
    if (!root || strlen(root) != 1)
        return NULL;
    if (root[0] == 'a')
        return t->span;
    if (root[0] == 'r')
        return t->resource;
    if (root[0] == 's')
        return t->scope;
    json_t *ix = json_array_get(mark, 2);
    *next = 3;
    if (!json_is_integer(ix) || json_integer_value(ix) < 0)
        return NULL;
    size_t i = (size_t)json_integer_value(ix);
    if (root[0] == 'e' && i < t->n_events)
        return &t->events[i].attrs;
    if (root[0] == 'l' && i < t->n_links)
        return &t->links[i].attrs;
    return NULL;
}

/* The value under key in items[0..n) (the last one, as in JSON). */
static halo_value *kv_find(halo_kv *items, size_t n, const char *key)
{
    for (size_t i = n; i-- > 0;)
        if (items[i].key && strcmp(items[i].key, key) == 0)
            return &items[i].value;
    return NULL;
}

/* Follow the mark's steps from an attribute list to one value. */
static halo_value *mark_value(halo_attrs *list, json_t *mark, size_t from)
{
    size_t n = json_array_size(mark);
    if (!list || from >= n)
        return NULL;
    const char *key = json_string_value(json_array_get(mark, from));
    halo_value *v = key ? kv_find(list->items, list->n, key) : NULL;
    for (size_t i = from + 1; v && i < n; i++) {
        json_t *s = json_array_get(mark, i);
        if (v->type == HALO_VAL_KVLIST && json_is_string(s))
            v = kv_find(v->u.kv.items, v->u.kv.n, json_string_value(s));
        else if (v->type == HALO_VAL_ARRAY && json_is_integer(s) &&
                 json_integer_value(s) >= 0 &&
                 (size_t)json_integer_value(s) < v->u.arr.n)
            v = &v->u.arr.items[json_integer_value(s)];
        else
            v = NULL;
    }
    return v;
}

/* v, a STRING, becomes what kind says it was. */
static halo_status retype(halo_value *v, char kind, halo_arena *arena, size_t i,
                          halo_err *err)
{
    if (v->type != HALO_VAL_STRING)
        return bad_mark(i, "the value is not a string", err);
    const char *s = v->u.s.ptr ? v->u.s.ptr : "";
    if (kind == 'd') {
        double d;
        if (strcmp(s, "NaN") == 0)
            d = NAN;
        else if (strcmp(s, "Infinity") == 0)
            d = INFINITY;
        else if (strcmp(s, "-Infinity") == 0)
            d = -INFINITY;
        else
            return bad_mark(i,
                            "a double mark on a string other than NaN, "
                            "Infinity, -Infinity",
                            err);
        v->type = HALO_VAL_DOUBLE;
        v->u.d = d;
        return HALO_OK;
    }
    size_t cap = v->u.s.len / 4 * 3 + 3, len = 0;
    uint8_t *bytes = halo_arena_alloc(arena, cap ? cap : 1);
    if (!bytes)
        return halo_fail(err, HALO_ENOMEM, "out of memory decoding bytes");
    if (!halo_base64_decode(s, v->u.s.len, bytes, &len))
        return bad_mark(i, "a bytes mark on a string that is not base64", err);
    v->type = HALO_VAL_BYTES;
    v->u.s.ptr = (const char *)bytes;
    v->u.s.len = len;
    return HALO_OK;
}

halo_status halo_json_apply_value_types(const char *text, size_t len,
                                        halo_arena *arena, halo_span *sp,
                                        halo_attrs *resource_attrs,
                                        halo_attrs *scope_attrs, halo_err *err)
{
    if (!text || len == 0)
        return HALO_OK;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root)
        return halo_fail(err, HALO_EINVAL,
                         "invalid value_types json at offset %d: %s",
                         jerr.position, jerr.text);
    target t = {&sp->attrs,   resource_attrs, scope_attrs, sp->events,
                sp->n_events, sp->links,      sp->n_links};
    halo_status st = HALO_OK;
    if (!json_is_array(root))
        st = halo_fail(err, HALO_EINVAL,
                       "invalid value_types: expected an array of marks");
    for (size_t i = 0; st == HALO_OK && i < json_array_size(root); i++) {
        json_t *mark = json_array_get(root, i);
        const char *kind = json_string_value(json_array_get(mark, 0));
        if (!kind || (strcmp(kind, "b") != 0 && strcmp(kind, "d") != 0)) {
            st = bad_mark(i, "expected kind \"b\" or \"d\"", err);
            break;
        }
        size_t next = 0;
        halo_attrs *list = mark_list(&t, mark, &next);
        halo_value *v = mark_value(list, mark, next);
        if (!v)
            st = bad_mark(i, "its path names no value of the span", err);
        else if (!(kind[0] == 'b' && v->type == HALO_VAL_BYTES) &&
                 !(kind[0] == 'd' && v->type == HALO_VAL_DOUBLE))
            st = retype(v, kind[0], arena, i, err); /* else: shared, done */
    }
    json_decref(root);
    return st;
}
