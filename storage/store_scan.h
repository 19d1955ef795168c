/*
 * store_scan.h -- the backend-neutral half of scan_window (store.h): result
 * rows gathered into one trace at a time and handed to the caller's
 * callback.
 *
 * A backend runs its queries and feeds the rows through rb_cols accessors
 * (store_rebuild.h): ss_begin_trace() with a row whose columns col0.. are
 * RB_TRACE_COLUMNS, then ss_add_span() with rows whose columns col0.. are
 * the SS_SPAN_* columns below (a join may give both in one row:
 * ss_join_row() starts a new trace when the trace id changes), then
 * ss_flush() delivers the trace. Spans are sorted here by start time, then
 * span id, so no backend needs an ORDER BY on spans.
 *
 * Memory: the current trace only. Strings are copied into one growable
 * buffer (kept as offsets until the callback, so the buffer may move while
 * it grows); the buffer and the span array are reused from trace to
 * trace. input/output are cut to max_text bytes at a UTF-8 character
 * boundary (a backend may cut them shorter in SQL first, by characters, so
 * less is transferred; the byte cut here is the one that counts).
 */
#ifndef HALO_STORE_SCAN_H
#define HALO_STORE_SCAN_H

#include "store.h"
#include "store_rebuild.h"

#include <stdbool.h>
#include <stddef.h>

/* The span columns of a scan row, from its col0 (SQL of each backend, in
 * this order). */
enum {
    SS_SPAN_ID,
    SS_PARENT,
    SS_NAME,
    SS_SPAN_TYPE,
    SS_TOOL,
    SS_MODEL,
    SS_STATUS_MSG,
    SS_INPUT,
    SS_OUTPUT,
    SS_START_NS,
    SS_END_NS,
    SS_DURATION,
    SS_STATUS_CODE,
    SS_IN_TOK,
    SS_OUT_TOK,
    SS_COST,
    SS_N_COLS
};

/* The SS_* columns of `spans` aliased s, input and output given as SQL
 * expressions (a backend cuts them in SQL). */
#define SS_SPAN_COLUMNS(input, output)                                         \
    "s.span_id, s.parent_span_id, s.name, s.span_type, s.tool_name, "          \
    "s.model, s.status_message, " input ", " output ", s.start_unix_nano, "    \
    "s.end_unix_nano, s.duration_ms, s.status_code, s.input_tokens, "          \
    "s.output_tokens, s.cost"

/* The default of halo_scan_filter.max_text. */
#define SS_DEFAULT_MAX_TEXT 4096

typedef struct ss_str_offs ss_str_offs;

typedef struct ss_scan {
    halo_scan_fn fn;
    void *ctx;
    size_t max_text;
    bool open;    /* a trace has begun and not been flushed */
    bool stopped; /* the callback asked to stop */
    halo_trace_row trace;
    size_t trace_offs[7]; /* its strings' offsets + 1 (0: NULL) */
    halo_scan_span *spans;
    ss_str_offs *offs; /* per span: its strings' offsets + 1 */
    size_t n, cap;
    char *text; /* every string of the current trace */
    size_t text_len, text_cap;
    int64_t traces, spans_seen; /* delivered so far */
} ss_scan;

/* max_text 0: SS_DEFAULT_MAX_TEXT. */
void ss_init(ss_scan *s, halo_scan_fn fn, void *ctx, size_t max_text);
void ss_free(ss_scan *s);

/* The cut that ss_add_span applies: input/output bytes kept. */
size_t ss_max_text(const halo_scan_filter *f);

/* Start a trace from RB_TRACE_COLUMNS at col0 of row (the previous one
 * must have been flushed). */
halo_status ss_begin_trace(ss_scan *s, const rb_cols *row, int col0,
                           halo_err *err);
/* Add a span from the SS_* columns at col0 of row. */
halo_status ss_add_span(ss_scan *s, const rb_cols *row, int col0,
                        halo_err *err);
/* Deliver the current trace (when one is open) to the callback; sets
 * s->stopped when it returned non-zero. */
void ss_flush(ss_scan *s);
/* A row holding both: RB_TRACE_COLUMNS at 0, SS_* columns at
 * RB_N_TRACE_COLUMNS. Flushes the current trace when the row's trace id
 * differs (rows of one trace must be adjacent). */
halo_status ss_join_row(ss_scan *s, const rb_cols *row, halo_err *err);

#define RB_N_TRACE_COLUMNS 16

#endif
