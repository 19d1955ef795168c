/*
 * trace_tree.c -- one trace as a tree (trace_tree.h): built once with the
 * spans sorted by id for parent lookups, walked with an explicit stack (a
 * deep trace must not overflow the C stack), drawn with box-drawing
 * characters.
 */
#include "trace_tree.h"

#include "storage/store.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void halo_fmt_duration(double ms, char *out, size_t n)
{
    /* Each unit takes over where the one before would round up to it, and
     * minutes and hours are rounded, not cut: 2 h less 10 ns is "2h00m". */
    if (!isfinite(ms) || ms < 0)
        snprintf(out, n, "-");
    else if (ms < 0.99995)
        snprintf(out, n, "%.1fus", ms * 1000);
    else if (ms < 9.995)
        snprintf(out, n, "%.2fms", ms);
    else if (ms < 999.95)
        snprintf(out, n, "%.1fms", ms);
    else if (ms < 59995)
        snprintf(out, n, "%.2fs", ms / 1000);
    else if (ms < 3599500) {
        long long s = llround(ms / 1000);
        snprintf(out, n, "%lldm%02llds", s / 60, s % 60);
    } else {
        long long m = llround(ms / 60000);
        snprintf(out, n, "%lldh%02lldm", m / 60, m % 60);
    }
}

/* "2026-11-16T09:00:00.123456789Z" -> "2026-11-16T09:00:00Z". */
void halo_fmt_start(const char *iso, char *out, size_t n)
{
    if (!iso || strlen(iso) < 19)
        snprintf(out, n, "-");
    else
        snprintf(out, n, "%.19sZ", iso);
}

/* The next piece of s for a terminal: a printable UTF-8 character as it
 * is, else an escape (\n, \t, \r, \xHH: C0 and C1 controls, DEL, bytes
 * that are not UTF-8), which cannot move the cursor or change the
 * terminal's state. Returns the bytes of s it takes; *cols the columns
 * of the piece (one per character), esc its text when escaped. */
static size_t term_piece(const char *s, size_t *cols, char esc[5])
{
    unsigned char c = (unsigned char)s[0];
    esc[0] = '\0';
    *cols = 1;
    if (c >= 0x20 && c < 0x7f)
        return 1;
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    bool c1 = c == 0xC2 && (unsigned char)s[1] < 0xA0; /* U+0080..U+009F */
    if (len && !c1 && strnlen(s, len) == len && halo_utf8_valid(s, len))
        return len;
    if (c == '\n' || c == '\t' || c == '\r')
        snprintf(esc, 5, "\\%c", c == '\n' ? 'n' : c == '\t' ? 't' : 'r');
    else
        snprintf(esc, 5, "\\x%02x", c);
    *cols = strlen(esc);
    return 1;
}

size_t halo_fmt_cols(const char *s)
{
    size_t cols = 0;
    char esc[5];
    while (s && *s) {
        size_t k;
        s += term_piece(s, &k, esc);
        cols += k;
    }
    return cols;
}

void halo_fmt_cut(const char *s, size_t max, char *out, size_t n)
{
    if (!n)
        return;
    if (!s || !*s) {
        snprintf(out, n, "-");
        return;
    }
    size_t total = halo_fmt_cols(s);
    size_t room = total <= max ? total : max > 3 ? max - 3 : 0;
    size_t cols = 0, len = 0;
    char esc[5];
    while (*s) {
        size_t k, take = term_piece(s, &k, esc);
        size_t bytes = esc[0] ? strlen(esc) : take;
        if (cols + k > room || len + bytes + 4 > n)
            break;
        memcpy(out + len, esc[0] ? esc : s, bytes);
        len += bytes;
        cols += k;
        s += take;
    }
    if (*s && len + 4 <= n) {
        memcpy(out + len, "...", 3);
        len += 3;
    }
    out[len] = '\0';
}

int halo_fmt_pad(int cols, const char *s)
{
    return cols + (int)(strlen(s) - halo_fmt_cols(s));
}

int halo_agent_col(int width, const char *id, const char *none)
{
    size_t len = halo_fmt_cols(id && *id ? id : none);
    int w = len > HALO_AGENT_COL_MAX ? HALO_AGENT_COL_MAX : (int)len;
    return w > width ? w : width;
}

static int cmp_span_id(const void *a, const void *b, void *spans)
{
    const halo_span *x = (const halo_span *)spans + *(const size_t *)a;
    const halo_span *y = (const halo_span *)spans + *(const size_t *)b;
    return memcmp(x->span_id, y->span_id, 8);
}

/* Index of the span with this id; SIZE_MAX when absent. */
static size_t find_span(const halo_tree *t, const uint8_t id[8])
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(t->spans[t->order[mid]].span_id, id, 8);
        if (c == 0)
            return t->order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

bool halo_tree_build(halo_tree *t, const halo_span *spans, size_t n)
{
    memset(t, 0, sizeof *t);
    t->spans = spans;
    t->n = n;
    t->order = malloc(n * sizeof *t->order);
    t->first = malloc(n * sizeof *t->first);
    t->last = malloc(n * sizeof *t->last);
    t->next = malloc(n * sizeof *t->next);
    t->why = calloc(n, 1);
    t->seen = calloc(n, sizeof *t->seen);
    if (!t->order || !t->first || !t->last || !t->next || !t->why || !t->seen)
        return false;
    for (size_t i = 0; i < n; i++) {
        t->order[i] = i;
        t->first[i] = t->last[i] = t->next[i] = SIZE_MAX;
    }
    qsort_r(t->order, n, sizeof *t->order, cmp_span_id, (void *)spans);
    /* spans come in start order, so children lists are in start order */
    for (size_t i = 0; i < n; i++) {
        if (halo_span_is_root(&spans[i]))
            continue;
        size_t p = find_span(t, spans[i].parent_span_id);
        if (p == SIZE_MAX || p == i) {
            t->why[i] = 1;
            continue;
        }
        if (t->last[p] == SIZE_MAX)
            t->first[p] = i;
        else
            t->next[t->last[p]] = i;
        t->last[p] = i;
    }
    return true;
}

void halo_tree_free(halo_tree *t)
{
    free(t->order);
    free(t->first);
    free(t->last);
    free(t->next);
    free(t->why);
    free(t->seen);
}

typedef struct frame {
    size_t span;
    size_t depth;
    bool last;
} frame;

/* Depth-first from top, children in start order, with an explicit stack
 * (a deep trace must not overflow the C stack). last_at[d] tells whether
 * the ancestor at depth d was its parent's last child. */
static bool tree_walk(halo_tree *t, size_t top, frame *stack, bool *last_at,
                      halo_tree_visit fn, void *ud)
{
    size_t sp = 0;
    stack[sp++] = (frame){top, 0, true};
    while (sp) {
        frame f = stack[--sp];
        if (t->seen[f.span])
            continue;
        t->seen[f.span] = true;
        last_at[f.depth] = f.last;
        fn(ud, t, f.span, f.depth, last_at);
        /* push children in reverse so the first is visited first */
        size_t count = 0;
        for (size_t c = t->first[f.span]; c != SIZE_MAX; c = t->next[c])
            count++;
        size_t base = sp + count;
        size_t k = 0;
        for (size_t c = t->first[f.span]; c != SIZE_MAX; c = t->next[c], k++)
            stack[base - 1 - k] = (frame){c, f.depth + 1, k == count - 1};
        sp = base;
    }
    return true;
}

/* Every span once: top-level spans (roots, parent missing) in start order,
 * then whatever a parent cycle hid. */
bool halo_tree_walk_all(halo_tree *t, halo_tree_visit fn, void *ud)
{
    /* each span is pushed at most once per parent edge: n entries suffice
     * plus the top */
    frame *stack = malloc((t->n + 1) * sizeof *stack);
    bool *last_at = calloc(t->n + 1, sizeof *last_at);
    if (!stack || !last_at) {
        free(stack);
        free(last_at);
        return false;
    }
    /* a walk may be repeated: forget the last one's marks */
    for (size_t i = 0; i < t->n; i++) {
        t->seen[i] = false;
        if (t->why[i] == 2)
            t->why[i] = 0;
    }
    for (size_t i = 0; i < t->n; i++)
        if (halo_span_is_root(&t->spans[i]) || t->why[i] == 1)
            tree_walk(t, i, stack, last_at, fn, ud);
    for (size_t i = 0; i < t->n; i++) {
        if (!t->seen[i]) {
            t->why[i] = 2;
            tree_walk(t, i, stack, last_at, fn, ud);
        }
    }
    free(stack);
    free(last_at);
    return true;
}

typedef struct show_ctx {
    halo_buf *out;
    bool color;
    size_t io_max;
    /* the columns: the widest tree prefix + name, type and duration (a
     * first walk measures them) */
    bool measure;
    size_t w_name, w_type, w_dur;
} show_ctx;

double halo_span_ms(const halo_span *s)
{
    return (double)(int64_t)(s->end_ns - s->start_ns) / 1e6;
}

/* "   input: {...}" under a span, at its depth, on one line (line breaks
 * and tabs as spaces, other controls escaped), cut to max columns. */
static void io_line(halo_buf *b, size_t depth, const bool *last_at,
                    const char *what, const char *text, size_t max)
{
    if (!text)
        return;
    for (size_t d = 1; d <= depth; d++)
        halo_buf_puts(b, last_at[d] ? "   " : "\xe2\x94\x82  ");
    halo_buf_printf(b, "    %s: ", what);
    size_t cols = 0;
    const char *p = text;
    char esc[5];
    while (*p && cols < max) {
        size_t k, take = term_piece(p, &k, esc);
        bool space = *p == '\n' || *p == '\r' || *p == '\t';
        if (space)
            halo_buf_putc(b, ' ');
        else if (esc[0])
            halo_buf_puts(b, esc);
        else
            halo_buf_append(b, p, take);
        cols += space ? 1 : k;
        p += take;
    }
    if (*p)
        halo_buf_puts(b, "...");
    halo_buf_putc(b, '\n');
}

/* s for the terminal (halo_fmt_cut), cut to max columns. */
static void put_term(halo_buf *b, const char *s, size_t max)
{
    char tmp[HALO_FMT_BUF(1000)];
    halo_fmt_cut(s, max < 1000 ? max : 1000, tmp, sizeof tmp);
    halo_buf_puts(b, tmp);
}

#define NAME_MAX_COLS 120
#define TYPE_MAX_COLS 40

/* s (halo_fmt_cut to max) padded with spaces to width columns. */
static void put_padded(halo_buf *b, const char *s, size_t max, size_t width)
{
    char tmp[HALO_FMT_BUF(NAME_MAX_COLS)];
    halo_fmt_cut(s, max, tmp, sizeof tmp);
    halo_buf_puts(b, tmp);
    for (size_t k = halo_fmt_cols(tmp); k < width; k++)
        halo_buf_putc(b, ' ');
}

/* The first walk: how wide the name (with its tree prefix, 3 columns a
 * level), type and duration columns are. */
static void measure_line(show_ctx *c, const halo_span *s, size_t depth)
{
    char tmp[HALO_FMT_BUF(NAME_MAX_COLS)], dur[32];
    halo_fmt_cut(s->name, NAME_MAX_COLS, tmp, sizeof tmp);
    size_t w = 3 * depth + halo_fmt_cols(tmp);
    c->w_name = w > c->w_name ? w : c->w_name;
    halo_fmt_cut(s->d.span_type, TYPE_MAX_COLS, tmp, sizeof tmp);
    w = halo_fmt_cols(tmp);
    c->w_type = w > c->w_type ? w : c->w_type;
    halo_fmt_duration(halo_span_ms(s), dur, sizeof dur);
    w = strlen(dur);
    c->w_dur = w > c->w_dur ? w : c->w_dur;
}

static void show_line(void *ud, const halo_tree *t, size_t i, size_t depth,
                      const bool *last_at)
{
    show_ctx *c = ud;
    halo_buf *b = c->out;
    const halo_span *s = &t->spans[i];
    if (c->measure) {
        measure_line(c, s, depth);
        return;
    }
    for (size_t d = 1; d < depth; d++)
        halo_buf_puts(b, last_at[d] ? "   " : "\xe2\x94\x82  ");
    if (depth > 0)
        halo_buf_puts(b, last_at[depth] ? "\xe2\x94\x94\xe2\x94\x80 "
                                        : "\xe2\x94\x9c\xe2\x94\x80 ");
    char dur[32];
    halo_fmt_duration(halo_span_ms(s), dur, sizeof dur);
    put_padded(b, s->name, NAME_MAX_COLS,
               c->w_name > 3 * depth ? c->w_name - 3 * depth : 0);
    halo_buf_puts(b, "  ");
    put_padded(b, s->d.span_type, TYPE_MAX_COLS, c->w_type);
    halo_buf_printf(b, "  %*s  ", (int)c->w_dur, dur);
    if (s->status_code == HALO_STATUS_ERROR) {
        halo_buf_printf(b, "%sERROR%s", c->color ? "\x1b[1;31m" : "",
                        *s->status_message ? ": " : "");
        if (*s->status_message)
            put_term(b, s->status_message, 1000);
        halo_buf_puts(b, c->color ? "\x1b[0m" : "");
    } else {
        halo_buf_puts(b, halo_status_code_name(s->status_code));
    }
    if (s->d.tool_name) {
        halo_buf_puts(b, "  tool=");
        put_term(b, s->d.tool_name, 200);
    }
    if (s->d.model) {
        halo_buf_puts(b, "  model=");
        put_term(b, s->d.model, 200);
    }
    if (s->d.has_input_tokens)
        halo_buf_printf(b, "  in=%" PRId64, s->d.input_tokens);
    if (s->d.has_output_tokens)
        halo_buf_printf(b, "  out=%" PRId64, s->d.output_tokens);
    if (s->d.has_cost)
        halo_buf_printf(b, "  cost=%.4f", s->d.cost);
    if (t->why[i] == 1) {
        char pid[17];
        halo_hex_encode(s->parent_span_id, 8, pid);
        halo_buf_printf(b, "  (orphan: parent %s not stored)", pid);
    } else if (t->why[i] == 2) {
        halo_buf_puts(b, "  (in a parent cycle)");
    }
    halo_buf_putc(b, '\n');
    if (c->io_max) {
        io_line(b, depth, last_at, "input", s->d.input, c->io_max);
        io_line(b, depth, last_at, "output", s->d.output, c->io_max);
    }
}

/* Header line: id, agent, start, duration, counts. */
static void show_header(halo_buf *b, const char *tid, const halo_span *sp,
                        size_t n)
{
    uint64_t start = UINT64_MAX, end = 0;
    size_t errors = 0;
    const char *agent = NULL;
    for (size_t i = 0; i < n; i++) {
        start = sp[i].start_ns < start ? sp[i].start_ns : start;
        end = sp[i].end_ns > end ? sp[i].end_ns : end;
        errors += sp[i].status_code == HALO_STATUS_ERROR;
        if (!agent || halo_span_is_root(&sp[i]))
            agent = sp[i].d.agent_id ? sp[i].d.agent_id : agent;
    }
    char iso[HALO_ISO_NS_LEN], st[32], dur[32];
    halo_iso_from_ns(start, iso);
    halo_fmt_start(iso, st, sizeof st);
    halo_fmt_duration((double)(int64_t)(end - start) / 1e6, dur, sizeof dur);
    char ag[HALO_FMT_BUF(200)];
    halo_fmt_cut(agent, 200, ag, sizeof ag);
    halo_buf_printf(b,
                    "trace %s  agent=%s  start=%s  duration=%s  spans=%zu"
                    "  errors=%zu\n\n",
                    tid, ag, st, dur, n, errors);
}

bool halo_trace_text(const char *trace_id, const halo_span *spans, size_t n,
                     const halo_trace_text_opts *o, halo_buf *out)
{
    halo_tree t;
    show_ctx c = {out, o && o->color, o ? o->io_max : 0, true, 0, 0, 0};
    bool ok = halo_tree_build(&t, spans, n);
    if (ok)
        ok = halo_tree_walk_all(&t, show_line, &c); /* the widths */
    if (ok) {
        c.measure = false;
        show_header(out, trace_id, spans, n);
        ok = halo_tree_walk_all(&t, show_line, &c);
    }
    halo_tree_free(&t);
    return ok && !out->oom;
}
