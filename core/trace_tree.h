/*
 * trace_tree.h -- one trace's spans as a tree: building it (children under
 * their parent by parent_span_id, in start order; spans whose parent is
 * not stored, or that sit in a parent cycle, become top-level and are
 * marked), walking it depth-first without recursion, and drawing it as the
 * indented text `halo traces show` prints and the analyzer's view_trace
 * tool sends to a model (optionally with each span's input and output,
 * cut short).
 *
 * Hand-edited or hostile data must not hang or crash it: every span is
 * visited exactly once, whatever its parent links.
 */
#ifndef HALO_TRACE_TREE_H
#define HALO_TRACE_TREE_H

#include "buf.h"
#include "span.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct halo_tree {
    const halo_span *spans;
    size_t n;
    size_t *order;      /* span indexes sorted by span id */
    size_t *first;      /* first child, or SIZE_MAX */
    size_t *last;       /* last child */
    size_t *next;       /* next sibling */
    unsigned char *why; /* 0 root/child, 1 parent missing, 2 parent cycle */
    bool *seen;
} halo_tree;

/* spans in start order (as get_trace returns them). False on OOM (free
 * it anyway). */
bool halo_tree_build(halo_tree *t, const halo_span *spans, size_t n);
void halo_tree_free(halo_tree *t);

/* Called once per span in tree order; last_at[d] tells whether the
 * ancestor at depth d was its parent's last child. */
typedef void (*halo_tree_visit)(void *ud, const halo_tree *t, size_t span,
                                size_t depth, const bool *last_at);
/* Every span once: top-level spans in start order, then whatever a parent
 * cycle hid. False on OOM. */
bool halo_tree_walk_all(halo_tree *t, halo_tree_visit fn, void *ud);

typedef struct halo_trace_text_opts {
    bool color;    /* ANSI red for errors (a terminal) */
    size_t io_max; /* > 0: also each span's input and output, on one line
                      each, cut to this many bytes */
} halo_trace_text_opts;

/* A header line (id, agent, start, duration, counts) and one line per span
 * (name, type, duration, status, tool, model, tokens, cost) drawn as a
 * tree, appended to out. False on OOM. */
bool halo_trace_text(const char *trace_id, const halo_span *spans, size_t n,
                     const halo_trace_text_opts *o, halo_buf *out);

/* Span duration in ms (negative when the clock went backwards). */
double halo_span_ms(const halo_span *s);
/* "0.52ms", "12.3ms", "1.25s", "2m05s", "1h02m"; "-" when negative. */
void halo_fmt_duration(double ms, char *out, size_t n);
/* "2026-11-16T09:00:00.123456789Z" -> "2026-11-16T09:00:00Z". */
void halo_fmt_start(const char *iso, char *out, size_t n);
/* Text from spans for a terminal: s with every control character (C0,
 * DEL, C1) and every byte that is not UTF-8 escaped (\n, \t, \r, \xHH),
 * so a span name cannot break a table's row or send the terminal an
 * escape sequence; cut to max columns (a character is one) with "..."
 * when longer, and to fit out[n] (HALO_FMT_BUF(max) always fits); "-"
 * when NULL or empty. */
void halo_fmt_cut(const char *s, size_t max, char *out, size_t n);
#define HALO_FMT_BUF(max) (4 * (max) + 8)
/* The columns s takes once escaped as halo_fmt_cut does. */
size_t halo_fmt_cols(const char *s);
/* The printf field width ("%-*s") that pads s (halo_fmt_cut's output) to
 * cols columns: printf pads by bytes, a character may take several. */
int halo_fmt_pad(int cols, const char *s);

/* Agent ids in the tables of `traces list`, `agents` and `reports list`:
 * cut to HALO_AGENT_COL_MAX columns, the column as wide as the widest. */
#define HALO_AGENT_COL_MAX 40
/* width grown to fit id (shown as none when NULL), at most the max. */
int halo_agent_col(int width, const char *id, const char *none);

#endif
