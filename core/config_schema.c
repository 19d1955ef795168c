/*
 * config_schema.c -- fill a component's config struct from its YAML section.
 *
 * A schema is a {NULL}-terminated halo_field table (Fluent Bit's config_map,
 * Redis's config table): key, type, offsetof() into the struct, default in
 * config syntax, bounds, description. halo_config_apply works in two passes:
 *
 *   1. defaults: every field gets its `def`, converted by the very code that
 *      converts config text (so a default is written like a user value,
 *      "200ms", "64MiB"); SECTIONs recurse, their present flag stays false.
 *   2. the section's keys, in file order: exact field match, else a
 *      PASSTHROUGH prefix ("rdkafka."), else "unknown key" with a
 *      did-you-mean suggestion (edit distance <= 2).
 *
 * A NULL value (`key:`, `key: ~`, an unquoted `${env:X:-}` that expanded to
 * nothing) keeps the default; for a SECTION it still marks it present
 * (`grpc:` turns gRPC on with default settings). Every error is collected
 * with its location and the field's dotted path; a field that fails keeps
 * its default, so the struct is always consistent and halo_config_release
 * can free it after a failed apply.
 *
 * A SECTION's sub-fields live at (section offset + their own offset); its
 * present flag lives at present_offset in the struct that holds the
 * SECTION. present_offset 0 means "no present flag" (so a field table that
 * leaves it out never has byte 0 of its struct overwritten).
 *
 * Secrets. A HALO_F_SECRET value, and the value of a PASSTHROUGH option
 * whose name is a secret's (halo_secret_name: rdkafka.sasl.password, not
 * rdkafka.ssl.key.location), is registered with halo_secret_register as
 * it is read, so the error list (and every scrubbed library message) shows
 * "***" wherever it would appear. No error quotes a secret field's
 * own text either, and a SECTION that holds secrets does not quote the
 * scalar written in its place (`llm: sk-...`).
 */
#include "buf.h"
#include "config_internal.h"
#include "secret.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 256

typedef struct apply_ctx {
    halo_errlist *errs;
    size_t n_errors;
} apply_ctx;

static void aerr(apply_ctx *c, const halo_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void aerr(apply_ctx *c, const halo_node *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (at)
        halo_errlist_vaddloc(c->errs, at->file ? at->file : "<config>",
                             at->line, at->col, fmt, ap);
    else
        halo_errlist_vaddloc(c->errs, NULL, 0, 0, fmt, ap);
    va_end(ap);
    c->n_errors++;
}

static void *field_ptr(void *base, const halo_field *f)
{
    return (char *)base + f->offset;
}

static void join_path(char *out, const char *where, const char *key)
{
    if (where && *where)
        snprintf(out, PATH_MAX_LEN, "%s.%s", where, key);
    else
        snprintf(out, PATH_MAX_LEN, "%s", key);
}

static const char *node_kind(const halo_node *n)
{
    switch (n->type) {
    case HALO_NODE_MAP:
        return "a mapping";
    case HALO_NODE_SEQ:
        return "a list";
    case HALO_NODE_NULL:
        return "nothing";
    case HALO_NODE_SCALAR:
        break;
    }
    return "a scalar";
}

static const char *type_name(halo_field_type t)
{
    static const char *const names[] = {
        [HALO_F_BOOL] = "bool",
        [HALO_F_INT] = "int",
        [HALO_F_DOUBLE] = "double",
        [HALO_F_STRING] = "string",
        [HALO_F_DURATION] = "duration",
        [HALO_F_SIZE] = "size",
        [HALO_F_ENUM] = "enum",
        [HALO_F_ENDPOINT] = "endpoint",
        [HALO_F_STRLIST] = "list",
        [HALO_F_SECTION] = "section",
        [HALO_F_PASSTHROUGH] = "passthrough",
        [HALO_F_SECRET] = "secret",
    };
    if ((unsigned)t < sizeof names / sizeof *names && names[t])
        return names[t];
    return "?";
}

/* "a duration" etc., for "expected X, got a mapping". */
static const char *type_phrase(halo_field_type t)
{
    switch (t) {
    case HALO_F_BOOL:
        return "a boolean";
    case HALO_F_INT:
        return "an integer";
    case HALO_F_DOUBLE:
        return "a number";
    case HALO_F_DURATION:
        return "a duration";
    case HALO_F_SIZE:
        return "a size";
    case HALO_F_ENDPOINT:
        return "an endpoint (host:port)";
    case HALO_F_STRLIST:
        return "a list of strings";
    case HALO_F_SECTION:
        return "a mapping";
    default:
        return "a string";
    }
}

/* ---- scalar conversions ----------------------------------------------- */

static bool parse_int(const char *s, int64_t *out)
{
    if (!((*s >= '0' && *s <= '9') || *s == '-' || *s == '+'))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    if (!((*s >= '0' && *s <= '9') || *s == '-' || *s == '+' || *s == '.'))
        return false;
    if (strpbrk(s, "xXnN")) /* no hex floats, nan or inf */
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool host_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* "host:port", "[v6]:port" or ":port", port 0-65535. NULL when valid,
 * else why not. */
static const char *endpoint_problem(const char *s)
{
    const char *colon;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close == s + 1)
            return "unterminated or empty IPv6 address";
        for (const char *p = s + 1; p < close; p++)
            if (!host_char(*p) && *p != ':' && *p != '%')
                return "invalid character in the IPv6 address";
        if (close[1] != ':')
            return "missing port";
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return "missing port";
        for (const char *p = s; p < colon; p++) {
            if (*p == ':')
                return "an IPv6 address must be in brackets";
            if (!host_char(*p))
                return "invalid character in the host";
        }
    }
    const char *port = colon + 1;
    size_t n = strlen(port);
    if (n == 0 || n > 5 || strspn(port, "0123456789") != n ||
        atoi(port) > 65535)
        return "the port must be a number from 0 to 65535";
    return NULL;
}

static void strlist_clear(halo_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void kvlist_clear(halo_kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->keys[i]);
        free(l->values[i]);
    }
    free(l->keys);
    free(l->values);
    l->keys = l->values = NULL;
    l->n = 0;
}

static bool strlist_push(halo_strlist *l, const char *s)
{
    char **items = realloc(l->items, (l->n + 1) * sizeof *items);
    if (!items)
        return false;
    l->items = items;
    if (!(l->items[l->n] = strdup(s)))
        return false;
    l->n++;
    return true;
}

static bool kvlist_push(halo_kvlist *l, const char *k, const char *v)
{
    char **keys = realloc(l->keys, (l->n + 1) * sizeof *keys);
    if (keys)
        l->keys = keys;
    char **values = realloc(l->values, (l->n + 1) * sizeof *values);
    if (values)
        l->values = values;
    if (!keys || !values)
        return false;
    char *kc = strdup(k), *vc = strdup(v);
    if (!kc || !vc) {
        free(kc);
        free(vc);
        return false;
    }
    l->keys[l->n] = kc;
    l->values[l->n] = vc;
    l->n++;
    return true;
}

static bool replace_string(char **slot, const char *text)
{
    char *copy = strdup(text);
    if (!copy)
        return false;
    free(*slot);
    *slot = copy;
    return true;
}

/* Bounds apply when min < max. */
static bool has_bounds(const halo_field *f)
{
    return f->min < f->max;
}

static void range_error(apply_ctx *c, const halo_field *f, const halo_node *at,
                        const char *path, double v)
{
    char lo[64], hi[64], val[64];
    if (f->type == HALO_F_DURATION) {
        halo_format_duration((int64_t)f->min, lo, sizeof lo);
        halo_format_duration((int64_t)f->max, hi, sizeof hi);
        halo_format_duration((int64_t)v, val, sizeof val);
    } else if (f->type == HALO_F_SIZE) {
        halo_format_size((int64_t)f->min, lo, sizeof lo);
        halo_format_size((int64_t)f->max, hi, sizeof hi);
        halo_format_size((int64_t)v, val, sizeof val);
    } else {
        snprintf(lo, sizeof lo, "%.15g", f->min);
        snprintf(hi, sizeof hi, "%.15g", f->max);
        snprintf(val, sizeof val, "%.15g", v);
    }
    aerr(c, at, "%s: %s is out of range (must be between %s and %s)", path, val,
         lo, hi);
}

static void enum_error(apply_ctx *c, const halo_field *f, const halo_node *at,
                       const char *path, const char *text)
{
    halo_buf list = HALO_BUF_INIT;
    for (size_t i = 0; f->enum_values && f->enum_values[i]; i++)
        halo_buf_printf(&list, "%s%s", i ? ", " : "", f->enum_values[i]);
    aerr(c, at, "%s: invalid value \"%s\" (must be one of: %s)", path, text,
         list.data && !list.oom ? list.data : "");
    halo_buf_free(&list);
}

/* Store v into the int64 field at p, or report it out of f's range. */
static void set_i64(apply_ctx *c, const halo_field *f, void *p, int64_t v,
                    const halo_node *at, const char *path)
{
    if (has_bounds(f) && ((double)v < f->min || (double)v > f->max))
        range_error(c, f, at, path, (double)v);
    else
        *(int64_t *)p = v;
}

/* Convert scalar text into the field (every type but SECTION and
 * PASSTHROUGH). On error the field keeps its value. */
static void set_scalar(apply_ctx *c, const halo_field *f, void *base,
                       const char *text, const halo_node *at, const char *path)
{
    void *p = field_ptr(base, f);
    int64_t i64;
    double d;
    bool b;
    switch (f->type) {
    case HALO_F_BOOL:
        if (!halo_parse_bool(text, &b))
            aerr(c, at, "%s: invalid boolean \"%s\" (use true or false)", path,
                 text);
        else
            *(bool *)p = b;
        return;
    case HALO_F_INT:
        if (!parse_int(text, &i64))
            aerr(c, at, "%s: invalid integer \"%s\"", path, text);
        else
            set_i64(c, f, p, i64, at, path);
        return;
    case HALO_F_DOUBLE:
        if (!parse_double(text, &d))
            aerr(c, at, "%s: invalid number \"%s\"", path, text);
        else if (has_bounds(f) && (d < f->min || d > f->max))
            range_error(c, f, at, path, d);
        else
            *(double *)p = d;
        return;
    case HALO_F_DURATION:
        if (!halo_parse_duration(text, &i64))
            aerr(c, at,
                 "%s: invalid duration \"%s\" (examples: 200ms, 5s, 1h, "
                 "720h)",
                 path, text);
        else
            set_i64(c, f, p, i64, at, path);
        return;
    case HALO_F_SIZE:
        if (!halo_parse_size(text, &i64))
            aerr(c, at,
                 "%s: invalid size \"%s\" (examples: 512KiB, 64MiB, 1GiB, "
                 "10MB)",
                 path, text);
        else
            set_i64(c, f, p, i64, at, path);
        return;
    case HALO_F_ENUM:
        for (int i = 0; f->enum_values && f->enum_values[i]; i++) {
            if (strcmp(f->enum_values[i], text) == 0) {
                *(int *)p = i;
                return;
            }
        }
        enum_error(c, f, at, path, text);
        return;
    case HALO_F_ENDPOINT: {
        const char *why = endpoint_problem(text);
        if (why) {
            aerr(c, at,
                 "%s: invalid endpoint \"%s\": %s (expected host:port, "
                 "[ipv6]:port or :port)",
                 path, text, why);
            return;
        }
        if (!replace_string(p, text))
            aerr(c, at, "%s: out of memory", path);
        return;
    }
    case HALO_F_STRING:
        halo_secret_register_embedded(text); /* a DSN's password */
        if (!replace_string(p, text))
            aerr(c, at, "%s: out of memory", path);
        return;
    case HALO_F_SECRET:
        halo_secret_register(text);
        if (!replace_string(p, text))
            aerr(c, at, "%s: out of memory", path);
        return;
    case HALO_F_STRLIST: {
        halo_strlist l = {0};
        if (!strlist_push(&l, text)) {
            strlist_clear(&l);
            aerr(c, at, "%s: out of memory", path);
            return;
        }
        strlist_clear(p);
        *(halo_strlist *)p = l;
        return;
    }
    case HALO_F_SECTION:
    case HALO_F_PASSTHROUGH:
        break;
    }
}

/* A STRLIST from a sequence of scalars; on any bad element the field keeps
 * its value. */
static void set_strlist(apply_ctx *c, const halo_field *f, void *base,
                        const halo_node *seq, const char *path)
{
    halo_strlist l = {0};
    bool ok = true;
    for (size_t i = 0; i < seq->n; i++) {
        const halo_node *it = seq->items[i];
        if (it->type != HALO_NODE_SCALAR) {
            aerr(c, it, "%s[%zu]: expected a string, got %s", path, i,
                 node_kind(it));
            ok = false;
        } else if (ok && !strlist_push(&l, it->value)) {
            aerr(c, it, "%s: out of memory", path);
            ok = false;
        }
    }
    if (!ok) {
        strlist_clear(&l);
        return;
    }
    strlist_clear(field_ptr(base, f));
    *(halo_strlist *)field_ptr(base, f) = l;
}

/* ---- defaults --------------------------------------------------------- */

/* A STRLIST default "[a, b]" is read as YAML; anything else is one item. */
static void default_strlist(apply_ctx *c, const halo_field *f, void *base,
                            const char *path)
{
    if (f->def[0] != '[') {
        if (f->def[0])
            set_scalar(c, f, base, f->def, NULL, path);
        return;
    }
    halo_buf doc = HALO_BUF_INIT;
    halo_buf_printf(&doc, "v: %s\n", f->def);
    halo_errlist errs = {0};
    halo_node *root =
        doc.oom ? NULL
                : halo_config_parse(doc.data, doc.len, "<default>", &errs);
    const halo_node *v = halo_node_get(root, "v");
    if (v && v->type == HALO_NODE_SEQ)
        set_strlist(c, f, base, v, path);
    else
        aerr(c, NULL, "%s: invalid default list \"%s\" in the schema", path,
             f->def);
    halo_node_free(root);
    halo_errlist_free(&errs);
    halo_buf_free(&doc);
}

static void apply_defaults(apply_ctx *c, const halo_field *schema, void *base,
                           const char *where)
{
    for (const halo_field *f = schema; f && f->key; f++) {
        char path[PATH_MAX_LEN];
        join_path(path, where, f->key);
        if (f->type == HALO_F_SECTION)
            apply_defaults(c, f->sub, field_ptr(base, f), path);
        else if (!f->def || f->type == HALO_F_PASSTHROUGH)
            continue;
        else if (f->type == HALO_F_STRLIST)
            default_strlist(c, f, base, path);
        else
            set_scalar(c, f, base, f->def, NULL, path);
    }
}

/* ---- keys ------------------------------------------------------------- */

/* Optimal string alignment distance, capped: returns 3 for "far". */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64 || (la > lb ? la - lb : lb - la) > 2)
        return 3;
    int d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
                a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

/* Is candidate a closer guess at what key meant than *best_d says? */
static bool closer(const char *key, const char *candidate, int *best_d)
{
    int d = edit_distance(key, candidate);
    if (d < *best_d && (size_t)d < strlen(candidate)) {
        *best_d = d;
        return true;
    }
    return false;
}

const char *halo_config_closest(const char *key, const char *const *names)
{
    const char *best = NULL;
    int best_d = 3;
    for (size_t i = 0; names && names[i]; i++)
        if (closer(key, names[i], &best_d))
            best = names[i];
    return best;
}

static void unknown_key(apply_ctx *c, const halo_field *schema, const char *key,
                        const halo_node *at, const char *where)
{
    const char *best = NULL;
    int best_d = 3;
    for (const halo_field *f = schema; f && f->key; f++)
        if (f->type != HALO_F_PASSTHROUGH && closer(key, f->key, &best_d))
            best = f->key;
    const char *w = where && *where ? where : "";
    const char *sep = *w ? ": " : "";
    if (best)
        aerr(c, at, "%s%sunknown key \"%s\" (did you mean \"%s\"?)", w, sep,
             key, best);
    else
        aerr(c, at, "%s%sunknown key \"%s\"", w, sep, key);
}

static const halo_field *find_field(const halo_field *schema, const char *key)
{
    for (const halo_field *f = schema; f && f->key; f++)
        if (f->type != HALO_F_PASSTHROUGH && strcmp(f->key, key) == 0)
            return f;
    for (const halo_field *f = schema; f && f->key; f++)
        if (f->type == HALO_F_PASSTHROUGH &&
            strncmp(f->key, key, strlen(f->key)) == 0)
            return f;
    return NULL;
}

static void apply_map(apply_ctx *c, const halo_field *schema,
                      const halo_node *map, void *base, const char *where);

static void apply_passthrough(apply_ctx *c, const halo_field *f, void *base,
                              const char *key, const halo_node *v,
                              const char *path)
{
    const char *name = key + strlen(f->key);
    if (!*name) {
        aerr(c, v, "%s: the option name after \"%s\" is missing", path, f->key);
        return;
    }
    if (v->type == HALO_NODE_NULL)
        return; /* `rdkafka.x: ${env:X:-}` with X unset: not passed */
    if (v->type != HALO_NODE_SCALAR) {
        aerr(c, v, "%s: expected a scalar value, got %s", path, node_kind(v));
        return;
    }
    if (halo_secret_name(name))
        halo_secret_register(v->value);
    if (!kvlist_push(field_ptr(base, f), name, v->value))
        aerr(c, v, "%s: out of memory", path);
}

/* Does schema (or a section in it) hold a secret? */
static bool holds_secret(const halo_field *schema)
{
    for (const halo_field *f = schema; f && f->key; f++)
        if (f->type == HALO_F_SECRET ||
            (f->type == HALO_F_SECTION && holds_secret(f->sub)))
            return true;
    return false;
}

static void apply_section(apply_ctx *c, const halo_field *f, void *base,
                          const halo_node *v, const char *path)
{
    if (v->type != HALO_NODE_MAP && v->type != HALO_NODE_NULL) {
        if (v->type == HALO_NODE_SCALAR && holds_secret(f->sub))
            aerr(c, v, "%s: expected a mapping, got a scalar", path);
        else if (v->type == HALO_NODE_SCALAR)
            aerr(c, v, "%s: expected a mapping, got \"%s\"", path, v->value);
        else
            aerr(c, v, "%s: expected a mapping, got %s", path, node_kind(v));
        return;
    }
    if (f->present_offset)
        *(bool *)((char *)base + f->present_offset) = true;
    if (v->type == HALO_NODE_MAP)
        apply_map(c, f->sub, v, field_ptr(base, f), path);
}

static void apply_value(apply_ctx *c, const halo_field *f, void *base,
                        const char *key, const halo_node *v, const char *where)
{
    char path[PATH_MAX_LEN];
    join_path(path, where, key);
    switch (f->type) {
    case HALO_F_SECTION:
        apply_section(c, f, base, v, path);
        return;
    case HALO_F_PASSTHROUGH:
        apply_passthrough(c, f, base, key, v, path);
        return;
    case HALO_F_STRLIST:
        if (v->type == HALO_NODE_SEQ) {
            set_strlist(c, f, base, v, path);
            return;
        }
        break;
    default:
        break;
    }
    if (v->type == HALO_NODE_NULL)
        return; /* keep the default */
    if (v->type != HALO_NODE_SCALAR) {
        aerr(c, v, "%s: expected %s, got %s", path, type_phrase(f->type),
             node_kind(v));
        return;
    }
    set_scalar(c, f, base, v->value, v, path);
}

static void apply_map(apply_ctx *c, const halo_field *schema,
                      const halo_node *map, void *base, const char *where)
{
    for (size_t i = 0; i < map->n; i++) {
        const halo_field *f = find_field(schema, map->keys[i]);
        if (!f)
            unknown_key(c, schema, map->keys[i], map->items[i], where);
        else
            apply_value(c, f, base, map->keys[i], map->items[i], where);
    }
}

bool halo_config_apply(const halo_field *schema, const halo_node *section,
                       void *cfg, const char *where, halo_errlist *errs)
{
    apply_ctx c = {.errs = errs};
    apply_defaults(&c, schema, cfg, where);
    if (section && section->type == HALO_NODE_MAP) {
        apply_map(&c, schema, section, cfg, where);
    } else if (section && section->type != HALO_NODE_NULL) {
        if (where && *where)
            aerr(&c, section, "%s: expected a mapping", where);
        else
            aerr(&c, section, "expected a mapping");
    }
    return c.n_errors == 0;
}

/* ---- release ---------------------------------------------------------- */

void halo_config_release(const halo_field *schema, void *cfg)
{
    for (const halo_field *f = schema; cfg && f && f->key; f++) {
        void *p = field_ptr(cfg, f);
        switch (f->type) {
        case HALO_F_SECRET:
            if (*(char **)p) /* do not leave it in freed memory */
                memset(*(char **)p, 0, strlen(*(char **)p));
            free(*(char **)p);
            *(char **)p = NULL;
            break;
        case HALO_F_STRING:
        case HALO_F_ENDPOINT:
            free(*(char **)p);
            *(char **)p = NULL;
            break;
        case HALO_F_STRLIST:
            strlist_clear(p);
            break;
        case HALO_F_PASSTHROUGH:
            kvlist_clear(p);
            break;
        case HALO_F_SECTION:
            halo_config_release(f->sub, p);
            break;
        default:
            break;
        }
    }
}

/* ---- describe --------------------------------------------------------- */

static void describe_bounds(const halo_field *f, char *out, size_t cap)
{
    char lo[64], hi[64];
    out[0] = '\0';
    if (!has_bounds(f))
        return;
    if (f->type == HALO_F_DURATION) {
        halo_format_duration((int64_t)f->min, lo, sizeof lo);
        halo_format_duration((int64_t)f->max, hi, sizeof hi);
    } else if (f->type == HALO_F_SIZE) {
        halo_format_size((int64_t)f->min, lo, sizeof lo);
        halo_format_size((int64_t)f->max, hi, sizeof hi);
    } else if (f->type == HALO_F_INT || f->type == HALO_F_DOUBLE) {
        snprintf(lo, sizeof lo, "%.15g", f->min);
        snprintf(hi, sizeof hi, "%.15g", f->max);
    } else {
        return;
    }
    snprintf(out, cap, " [%s..%s]", lo, hi);
}

void halo_config_describe(const halo_field *schema, const char *indent,
                          void *file)
{
    FILE *out = file;
    if (!out || !schema)
        return;
    if (!indent)
        indent = "";
    int width = 0;
    for (const halo_field *f = schema; f->key; f++) {
        int w = (int)strlen(f->key) + (f->type == HALO_F_PASSTHROUGH);
        if (w > width)
            width = w;
    }
    for (const halo_field *f = schema; f->key; f++) {
        char name[PATH_MAX_LEN], bounds[160];
        snprintf(name, sizeof name, "%s%s", f->key,
                 f->type == HALO_F_PASSTHROUGH ? "*" : "");
        describe_bounds(f, bounds, sizeof bounds);
        const char *def = f->def ? f->def : "-";
        if (f->def && f->type == HALO_F_SECRET)
            def = HALO_SECRET_SHOWN;
        fprintf(out, "%s%-*s  %-11s  %-16s  %s%s", indent, width, name,
                type_name(f->type), def, f->description ? f->description : "",
                bounds);
        if (f->type == HALO_F_ENUM && f->enum_values) {
            fputs(" (one of:", out);
            for (size_t i = 0; f->enum_values[i]; i++)
                fprintf(out, "%s %s", i ? "," : "", f->enum_values[i]);
            fputc(')', out);
        }
        fputc('\n', out);
        if (f->type == HALO_F_SECTION) {
            char sub[PATH_MAX_LEN];
            snprintf(sub, sizeof sub, "%s  ", indent);
            halo_config_describe(f->sub, sub, out);
        }
    }
}
