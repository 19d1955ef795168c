/*
 * config_yaml.c -- halo.yaml text -> halo_node tree.
 *
 * libyaml's event API drives a small builder: MAPPING_START / SEQUENCE_START
 * push a frame holding the collection being filled, scalars and aliases
 * become leaves of the frame on top, *_END pops the frame and attaches the
 * finished collection to its parent. There is no recursion while reading,
 * so nesting is bounded only by HALO_CONFIG_MAX_DEPTH (64).
 *
 * Locations. Every node has file:line:col (1-based). A map VALUE carries the
 * location of its KEY: errors about an entry ("unknown key", "invalid
 * duration") then point at the line a user reads for that entry, and the
 * message names the field. Sequence elements and the root carry their own
 * position. Substitution errors point at the scalar itself.
 *
 * Scalars. ${env:VAR}, ${VAR} and ${env:VAR:-default} are replaced while the
 * value is read (never in keys, never re-scanned); $$ is a literal $, any
 * other $ is literal. An unset variable without a default is an error; the
 * default (used when the variable is unset or empty, as in the shell) is the
 * literal text up to the first '}'. An unquoted scalar that is empty, "~" or
 * "null" after substitution is a NULL node: schema fields treat it as "keep
 * the default", so `key: ${env:X:-}` means "unset unless X is set".
 *
 * Anchors and aliases are supported by deep copy (YAML merge keys "<<" too);
 * the total number of nodes, copies included, is capped at
 * HALO_CONFIG_MAX_NODES so an alias bomb ends with an error, and a mapping
 * holds at most HALO_CONFIG_MAX_KEYS keys (duplicate checks are linear). An
 * anchor is usable once its node is complete, which also rules out cycles.
 * Nodes that are not part of the tree (merge sources, the values of duplicate
 * keys) are kept in a graveyard until the end, so an anchor never dangles.
 *
 * Errors are collected (every substitution error and duplicate key of a
 * file); a syntax error, a second document or a limit stops reading. The
 * root node is allocated with the file name inline: every node's `file`
 * points there and halo_node_free needs no special case.
 */
#include "buf.h"
#include "config_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct frame {
    halo_node *node; /* the MAP or SEQ being filled (owned) */
    char *anchor;    /* registered when the node is complete */
    char *key;       /* MAP: pending key; NULL while a key is expected */
    bool key_plain;
    int key_line, key_col;
    const halo_node **merges; /* "<<" values (owned by the graveyard) */
    size_t n_merges;
} frame;

typedef struct anchor {
    char *name;
    const halo_node *node;
} anchor;

typedef struct builder {
    const char *name; /* for messages */
    const char *file; /* the root's copy of name, once the root exists */
    halo_errlist *errs;
    size_t n_errors;
    bool fatal; /* stop reading events */
    halo_node *root;
    frame stack[HALO_CONFIG_MAX_DEPTH];
    size_t depth;
    anchor *anchors;
    size_t n_anchors;
    halo_node **grave;
    size_t n_grave;
    size_t n_nodes;
    int docs;
} builder;

static void berr(builder *b, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void berr(builder *b, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    halo_errlist_vaddloc(b->errs, b->name, line, col, fmt, ap);
    va_end(ap);
    b->n_errors++;
}

static void oom(builder *b)
{
    berr(b, 1, 1, "out of memory while reading the configuration");
    b->fatal = true;
}

/* ---- nodes ------------------------------------------------------------ */

static void free_node(halo_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys)
            free(n->keys[i]);
        free_node(n->items[i]);
    }
    free(n->keys);
    free(n->items);
    free(n->value);
    free(n);
}

void halo_node_free(halo_node *root)
{
    free_node(root);
}

const halo_node *halo_node_get(const halo_node *map, const char *key)
{
    if (!map || map->type != HALO_NODE_MAP || !key)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0)
            return map->items[i];
    return NULL;
}

/* Array capacity for n elements: 4, 8, 16, ... (never stored). */
static size_t cap_for(size_t n)
{
    size_t c = 4;
    while (c < n)
        c *= 2;
    return c;
}

static halo_node *new_node(builder *b, halo_node_type t, int line, int col)
{
    if (b->n_nodes >= HALO_CONFIG_MAX_NODES) {
        berr(b, line, col,
             "too many nodes (more than %d, counting the copies aliases "
             "make)",
             HALO_CONFIG_MAX_NODES);
        b->fatal = true;
        return NULL;
    }
    halo_node *n;
    if (!b->file) { /* the first node is the root: it holds the name */
        size_t len = strlen(b->name);
        n = calloc(1, sizeof *n + len + 1);
        if (n) {
            memcpy((char *)(n + 1), b->name, len + 1);
            b->file = (const char *)(n + 1);
        }
    } else {
        n = calloc(1, sizeof *n);
    }
    if (!n) {
        oom(b);
        return NULL;
    }
    b->n_nodes++;
    n->type = t;
    n->file = b->file;
    n->line = line;
    n->col = col;
    return n;
}

/* Append (key, item) to a MAP (key non-NULL, taken) or SEQ. On failure
 * both are freed. */
static bool append(builder *b, halo_node *p, char *key, halo_node *item)
{
    if (key && p->n >= HALO_CONFIG_MAX_KEYS) {
        berr(b, p->line, p->col, "mapping has more than %d keys",
             HALO_CONFIG_MAX_KEYS);
        b->fatal = true;
        free(key);
        free_node(item);
        return false;
    }
    if (p->n == 0 || (p->n >= 4 && (p->n & (p->n - 1)) == 0)) {
        size_t cap = p->n ? p->n * 2 : 4;
        halo_node **items = realloc(p->items, cap * sizeof *items);
        if (items)
            p->items = items;
        char **keys = p->keys;
        if (items && key) {
            keys = realloc(p->keys, cap * sizeof *keys);
            if (keys)
                p->keys = keys;
        }
        if (!items || (key && !keys)) {
            free(key);
            free_node(item);
            oom(b);
            return false;
        }
    }
    if (key)
        p->keys[p->n] = key;
    p->items[p->n++] = item;
    return true;
}

/* A complete copy of src at tree depth `depth`; NULL (error added) on a
 * limit or allocation failure. */
static halo_node *copy_node(builder *b, const halo_node *src, size_t depth)
{
    if (src->type == HALO_NODE_MAP || src->type == HALO_NODE_SEQ) {
        if (depth >= HALO_CONFIG_MAX_DEPTH) {
            berr(b, src->line, src->col,
                 "nesting too deep (more than %d levels, counting aliases)",
                 HALO_CONFIG_MAX_DEPTH);
            b->fatal = true;
            return NULL;
        }
    }
    halo_node *n = new_node(b, src->type, src->line, src->col);
    if (!n)
        return NULL;
    n->quoted = src->quoted;
    if (src->value && !(n->value = strdup(src->value)))
        goto fail;
    if (src->n) {
        size_t cap = cap_for(src->n);
        n->items = calloc(cap, sizeof *n->items);
        if (!n->items)
            goto fail;
        if (src->keys && !(n->keys = calloc(cap, sizeof *n->keys)))
            goto fail;
    }
    for (size_t i = 0; i < src->n; i++) {
        if (src->keys && !(n->keys[i] = strdup(src->keys[i])))
            goto fail;
        n->items[i] = copy_node(b, src->items[i], depth + 1);
        n->n = i + 1; /* free_node sees the key even if the item failed */
        if (!n->items[i]) {
            free_node(n);
            return NULL;
        }
    }
    return n;
fail:
    free_node(n);
    oom(b);
    return NULL;
}

/* Keep n alive (anchors may point into it) but out of the tree. */
static void bury(builder *b, halo_node *n)
{
    halo_node **g = realloc(b->grave, (b->n_grave + 1) * sizeof *g);
    if (!g) {
        /* Cannot keep it: drop every anchor so none can dangle. */
        for (size_t i = 0; i < b->n_anchors; i++)
            free(b->anchors[i].name);
        b->n_anchors = 0;
        free_node(n);
        oom(b);
        return;
    }
    b->grave = g;
    b->grave[b->n_grave++] = n;
}

/* ---- anchors ---------------------------------------------------------- */

static void add_anchor(builder *b, const char *name, const halo_node *n)
{
    if (!name)
        return;
    if (b->n_anchors >= HALO_CONFIG_MAX_ANCHORS) {
        berr(b, n->line, n->col, "too many anchors (more than %d)",
             HALO_CONFIG_MAX_ANCHORS);
        b->fatal = true;
        return;
    }
    anchor *a = realloc(b->anchors, (b->n_anchors + 1) * sizeof *a);
    char *copy = strdup(name);
    if (a)
        b->anchors = a;
    if (!a || !copy) {
        free(copy);
        oom(b);
        return;
    }
    b->anchors[b->n_anchors].name = copy;
    b->anchors[b->n_anchors].node = n;
    b->n_anchors++;
}

static const halo_node *find_anchor(const builder *b, const char *name)
{
    for (size_t i = b->n_anchors; i-- > 0;)
        if (strcmp(b->anchors[i].name, name) == 0)
            return b->anchors[i].node;
    return NULL;
}

/* ---- substitution ----------------------------------------------------- */

static bool is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '_';
}

/* Expand the text between "${" and "}" into out. */
static void expand_ref(builder *b, const char *ref, size_t len, halo_buf *out,
                       int line, int col)
{
    const char *p = ref, *end = ref + len;
    if (len >= 4 && memcmp(p, "env:", 4) == 0)
        p += 4;
    const char *name = p;
    while (p < end && is_name_char(*p))
        p++;
    size_t name_len = (size_t)(p - name);
    bool has_def = false;
    if (p < end) {
        has_def = end - p >= 2 && p[0] == ':' && p[1] == '-';
        if (!has_def)
            name_len = 0; /* something else follows the name: invalid */
    }
    if (name_len == 0 || (*name >= '0' && *name <= '9')) {
        /* a misspelt default (${X-value}, ${X:=value}) is quoted only up
         * to its operator: the value may be a secret */
        size_t ok = len;
        if (memchr(p, '-', (size_t)(end - p)) ||
            memchr(p, '=', (size_t)(end - p)) ||
            memchr(p, '?', (size_t)(end - p)))
            ok = (size_t)(p - ref) + (p < end);
        int shown = ok > 60 ? 60 : (int)ok;
        berr(b, line, col,
             "invalid substitution \"${%.*s%s}\" (expected ${env:NAME}, "
             "${NAME} or ${env:NAME:-default})",
             shown, ref, (size_t)shown < len ? "..." : "");
        return;
    }
    char *var = strndup(name, name_len);
    if (!var) {
        oom(b);
        return;
    }
    const char *val = getenv(var);
    if (val && (*val || !has_def))
        halo_buf_puts(out, val);
    else if (has_def)
        halo_buf_append(out, p + 2, (size_t)(end - p - 2));
    else
        berr(b, line, col,
             "environment variable %s is not set (use ${env:%s:-default} "
             "for a default)",
             var, var);
    free(var);
}

/* The scalar text with ${...} and $$ replaced; malloc'd, NULL on OOM. */
static char *substitute(builder *b, const char *s, size_t n, int line, int col)
{
    halo_buf out = HALO_BUF_INIT;
    size_t i = 0;
    while (i < n) {
        if (s[i] != '$' || i + 1 == n || (s[i + 1] != '$' && s[i + 1] != '{')) {
            halo_buf_putc(&out, s[i++]);
            continue;
        }
        if (s[i + 1] == '$') {
            halo_buf_putc(&out, '$');
            i += 2;
            continue;
        }
        const char *ref = s + i + 2;
        const char *close = memchr(ref, '}', n - i - 2);
        if (!close) {
            berr(b, line, col, "unterminated \"${\" (missing \"}\")");
            break;
        }
        expand_ref(b, ref, (size_t)(close - ref), &out, line, col);
        i = (size_t)(close - s) + 1;
    }
    if (out.oom) {
        halo_buf_free(&out);
        return NULL;
    }
    if (out.len == 0) {
        halo_buf_free(&out);
        return strdup("");
    }
    return halo_buf_steal(&out);
}

/* ---- the builder ------------------------------------------------------ */

static frame *top(builder *b)
{
    return b->depth ? &b->stack[b->depth - 1] : NULL;
}

static bool key_expected(builder *b)
{
    frame *f = top(b);
    return f && f->node->type == HALO_NODE_MAP && !f->key;
}

/* Where a new value starts: its key's location inside a map, else m. */
static void value_loc(builder *b, const yaml_mark_t *m, int *line, int *col)
{
    frame *f = top(b);
    if (f && f->node->type == HALO_NODE_MAP) {
        *line = f->key_line;
        *col = f->key_col;
    } else {
        *line = (int)m->line + 1;
        *col = (int)m->column + 1;
    }
}

static bool add_merge(builder *b, frame *f, const halo_node *n)
{
    const halo_node **m =
        realloc(f->merges, (f->n_merges + 1) * sizeof *f->merges);
    if (!m) {
        oom(b);
        return false;
    }
    f->merges = m;
    f->merges[f->n_merges++] = n;
    return true;
}

/* Put a finished node into its place: the root, the sequence on top, or
 * the pending key of the map on top. Takes n. */
static void attach(builder *b, halo_node *n)
{
    frame *f = top(b);
    if (!f) {
        if (!b->root)
            b->root = n;
        else
            bury(b, n);
        return;
    }
    halo_node *p = f->node;
    if (p->type == HALO_NODE_SEQ) {
        append(b, p, NULL, n);
        return;
    }
    char *key = f->key;
    f->key = NULL;
    if (f->key_plain && strcmp(key, "<<") == 0) {
        free(key);
        bury(b, n);
        if (!b->fatal)
            add_merge(b, f, n);
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->keys[i], key) == 0) {
            berr(b, f->key_line, f->key_col,
                 "duplicate key \"%s\" (first at line %d)", key,
                 p->items[i]->line);
            free(key);
            bury(b, n);
            return;
        }
    }
    append(b, p, key, n);
}

/* Add src's entries whose keys map lacks (explicit keys win, earlier merge
 * sources win over later ones). map is at tree depth `depth`. */
static void merge_map(builder *b, halo_node *map, const halo_node *src,
                      size_t depth)
{
    for (size_t i = 0; i < src->n && !b->fatal; i++) {
        if (halo_node_get(map, src->keys[i]))
            continue;
        char *key = strdup(src->keys[i]);
        if (!key) {
            oom(b);
            return;
        }
        halo_node *v = copy_node(b, src->items[i], depth + 1);
        if (!v) {
            free(key);
            return;
        }
        append(b, map, key, v);
    }
}

/* The entries "<<" value m would bring; SIZE_MAX when it is malformed. */
static size_t merge_entries(const halo_node *m)
{
    if (m->type == HALO_NODE_MAP)
        return m->n;
    if (m->type != HALO_NODE_SEQ)
        return SIZE_MAX;
    size_t n = 0;
    for (size_t j = 0; j < m->n; j++) {
        if (m->items[j]->type != HALO_NODE_MAP)
            return SIZE_MAX;
        n += m->items[j]->n;
    }
    return n;
}

static void apply_merges(builder *b, frame *f)
{
    size_t total = 0; /* bounds the work: each entry is a linear lookup */
    for (size_t i = 0; i < f->n_merges && !b->fatal; i++) {
        const halo_node *m = f->merges[i];
        size_t n = merge_entries(m);
        if (n == SIZE_MAX) {
            berr(b, m->line, m->col,
                 "merge key \"<<\" expects a mapping or a list of mappings");
            continue;
        }
        total += n;
        if (total > HALO_CONFIG_MAX_KEYS) {
            berr(b, m->line, m->col,
                 "merge keys bring more than %d entries into one mapping",
                 HALO_CONFIG_MAX_KEYS);
            b->fatal = true;
            return;
        }
        if (m->type == HALO_NODE_MAP)
            merge_map(b, f->node, m, b->depth);
        for (size_t j = 0; m->type == HALO_NODE_SEQ && j < m->n; j++)
            merge_map(b, f->node, m->items[j], b->depth);
    }
}

static void on_collection_start(builder *b, const yaml_event_t *ev, bool map)
{
    const yaml_mark_t *m = &ev->start_mark;
    if (key_expected(b)) {
        berr(b, (int)m->line + 1, (int)m->column + 1,
             "mapping keys must be scalars");
        b->fatal = true;
        return;
    }
    if (b->depth >= HALO_CONFIG_MAX_DEPTH) {
        berr(b, (int)m->line + 1, (int)m->column + 1,
             "nesting too deep (more than %d levels)", HALO_CONFIG_MAX_DEPTH);
        b->fatal = true;
        return;
    }
    int line, col;
    value_loc(b, m, &line, &col);
    halo_node *n = new_node(b, map ? HALO_NODE_MAP : HALO_NODE_SEQ, line, col);
    if (!n)
        return;
    const char *a = map ? (const char *)ev->data.mapping_start.anchor
                        : (const char *)ev->data.sequence_start.anchor;
    frame *f = &b->stack[b->depth++];
    memset(f, 0, sizeof *f);
    f->node = n;
    if (a && !(f->anchor = strdup(a)))
        oom(b);
}

static void on_collection_end(builder *b)
{
    frame f = b->stack[--b->depth];
    if (f.node->type == HALO_NODE_MAP)
        apply_merges(b, &f);
    free(f.merges);
    free(f.key);
    add_anchor(b, f.anchor, f.node);
    free(f.anchor);
    attach(b, f.node);
}

/* A scalar in key position: the raw text (no substitution). */
static void on_key(builder *b, const yaml_event_t *ev)
{
    frame *f = top(b);
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    f->key_line = (int)ev->start_mark.line + 1;
    f->key_col = (int)ev->start_mark.column + 1;
    if (memchr(v, '\0', len)) {
        berr(b, f->key_line, f->key_col, "NUL character in a key");
        b->fatal = true;
        return;
    }
    f->key = strndup(v, len);
    f->key_plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (!f->key) {
        oom(b);
        return;
    }
    if (ev->data.scalar.anchor) { /* rare, but *alias may name a key */
        halo_node *n = new_node(b, HALO_NODE_SCALAR, f->key_line, f->key_col);
        if (n && !(n->value = strdup(f->key))) {
            free_node(n);
            oom(b);
            return;
        }
        if (n) {
            n->quoted = !f->key_plain;
            bury(b, n);
            add_anchor(b, (const char *)ev->data.scalar.anchor, n);
        }
    }
}

static bool is_null_text(const char *s)
{
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static void on_scalar(builder *b, const yaml_event_t *ev)
{
    if (key_expected(b)) {
        on_key(b, ev);
        return;
    }
    const yaml_mark_t *m = &ev->start_mark;
    int sline = (int)m->line + 1, scol = (int)m->column + 1;
    const char *raw = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(raw, '\0', len)) {
        berr(b, sline, scol, "NUL character in a value");
        b->fatal = true;
        return;
    }
    char *text = substitute(b, raw, len, sline, scol);
    if (!text) {
        oom(b);
        return;
    }
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    bool null = plain && is_null_text(text);
    int line, col;
    value_loc(b, m, &line, &col);
    halo_node *n =
        new_node(b, null ? HALO_NODE_NULL : HALO_NODE_SCALAR, line, col);
    if (!n) {
        free(text);
        return;
    }
    if (null)
        free(text);
    else
        n->value = text;
    n->quoted = !plain;
    add_anchor(b, (const char *)ev->data.scalar.anchor, n);
    attach(b, n);
}

static void on_alias(builder *b, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    const char *name = (const char *)ev->data.alias.anchor;
    const halo_node *target = find_anchor(b, name);
    if (!target) {
        berr(b, (int)m->line + 1, (int)m->column + 1,
             "unknown alias \"*%s\" (an anchor must be complete before it "
             "is used)",
             name);
        b->fatal = true;
        return;
    }
    if (key_expected(b)) {
        frame *f = top(b);
        f->key_line = (int)m->line + 1;
        f->key_col = (int)m->column + 1;
        if (target->type != HALO_NODE_SCALAR) {
            berr(b, f->key_line, f->key_col, "mapping keys must be scalars");
            b->fatal = true;
            return;
        }
        f->key_plain = !target->quoted;
        if (!(f->key = strdup(target->value)))
            oom(b);
        return;
    }
    halo_node *n = copy_node(b, target, b->depth);
    if (!n)
        return;
    value_loc(b, m, &n->line, &n->col);
    attach(b, n);
}

/* libyaml's reader errors carry a byte offset, not a mark. */
static void offset_to_loc(const char *text, size_t len, size_t off, int *line,
                          int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void syntax_error(builder *b, const yaml_parser_t *p, const char *text,
                         size_t len)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";
    /* libyaml's word for a tab where indentation goes names no tab; its
     * marks count characters, so find the byte from the line and column */
    size_t at = 0;
    for (size_t line = 0; at < len && line < p->problem_mark.line; at++)
        line += text[at] == '\n';
    for (size_t col = 0; at < len && col < p->problem_mark.column; col++)
        do
            at++;
        while (at < len && ((unsigned char)text[at] & 0xC0) == 0x80);
    const char *hint =
        p->error != YAML_READER_ERROR && at < len && text[at] == '\t'
            ? ": a tab; YAML indents with spaces only"
            : "";
    if (p->error == YAML_MEMORY_ERROR) {
        oom(b);
    } else if (p->error == YAML_READER_ERROR) {
        int line, col;
        offset_to_loc(text, len, p->problem_offset, &line, &col);
        berr(b, line, col, "%s (at byte %zu)", problem, p->problem_offset);
    } else if (p->context) {
        berr(b, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
             "%s%s (%s at line %d)", problem, hint, p->context,
             (int)p->context_mark.line + 1);
    } else {
        berr(b, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
             "%s%s", problem, hint);
    }
    b->fatal = true;
}

/* One event; false at the end of the stream. */
static bool on_event(builder *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->docs > 1) {
            berr(b, (int)ev->start_mark.line + 1,
                 (int)ev->start_mark.column + 1,
                 "multiple documents are not supported (a second \"---\")");
            b->fatal = true;
        }
        break;
    case YAML_MAPPING_START_EVENT:
        on_collection_start(b, ev, true);
        break;
    case YAML_SEQUENCE_START_EVENT:
        on_collection_start(b, ev, false);
        break;
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        if (b->depth)
            on_collection_end(b);
        break;
    case YAML_SCALAR_EVENT:
        on_scalar(b, ev);
        break;
    case YAML_ALIAS_EVENT:
        on_alias(b, ev);
        break;
    case YAML_STREAM_END_EVENT:
        return false;
    default:
        break;
    }
    return true;
}

static void builder_cleanup(builder *b)
{
    while (b->depth) {
        frame *f = &b->stack[--b->depth];
        free_node(f->node);
        free(f->key);
        free(f->anchor);
        free(f->merges);
    }
    for (size_t i = 0; i < b->n_anchors; i++)
        free(b->anchors[i].name);
    free(b->anchors);
    for (size_t i = 0; i < b->n_grave; i++)
        free_node(b->grave[i]);
    free(b->grave);
}

halo_node *halo_config_parse(const char *text, size_t len, const char *name,
                             halo_errlist *errs)
{
    builder b = {.name = name ? name : "<config>", .errs = errs};
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        oom(&b);
        return NULL;
    }
    if (!text)
        text = "", len = 0;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (!b.fatal) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            syntax_error(&b, &parser, text, len);
            break;
        }
        bool more = on_event(&b, &ev);
        yaml_event_delete(&ev);
        if (!more)
            break;
    }
    yaml_parser_delete(&parser);
    if (b.n_errors == 0 && !b.root)
        berr(&b, 1, 1,
             "expected a mapping at the top level (the document is empty)");
    else if (b.n_errors == 0 && b.root->type != HALO_NODE_MAP)
        berr(&b, b.root->line, b.root->col,
             "expected a mapping at the top level");
    halo_node *root = b.root;
    if (b.n_errors) {
        /* The root goes last: every node's file points into it. */
        b.root = NULL;
        builder_cleanup(&b);
        free_node(root);
        return NULL;
    }
    builder_cleanup(&b);
    return root;
}

halo_node *halo_config_parse_file(const char *path, halo_errlist *errs)
{
    halo_node *root = NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        goto fail;
    text = malloc(HALO_CONFIG_MAX_FILE + 1);
    if (!text) {
        errno = ENOMEM;
        goto fail;
    }
    len = fread(text, 1, HALO_CONFIG_MAX_FILE + 1, f);
    if (ferror(f))
        goto fail;
    if (len > HALO_CONFIG_MAX_FILE) {
        halo_errlist_addloc(errs, NULL, 0, 0,
                            "could not read config file \"%s\": larger than "
                            "%d bytes",
                            path, HALO_CONFIG_MAX_FILE);
        goto cleanup;
    }
    root = halo_config_parse(text, len, path, errs);
    goto cleanup;
fail:
    halo_errlist_addloc(errs, NULL, 0, 0,
                        "could not read config file \"%s\": %s", path,
                        strerror(errno ? errno : EIO));
cleanup:
    free(text);
    if (f)
        fclose(f);
    return root;
}
