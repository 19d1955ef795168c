/*
 * store_rebuild.h -- the backend-neutral half of the stores' read side:
 * result rows turned into store.h's read results (halo_span,
 * halo_trace_row, halo_agent_stats, halo_report_row), the same for SQLite
 * and PostgreSQL.
 *
 * A backend runs its query in one row loop and hands each result row to
 * an rb_row_fn (rb_acc_add(), rb_found_add()) through four column
 * accessors (rb_cols): the text of a column (NULL for
 * SQL NULL), as an integer, as a double, is-NULL. Everything the results
 * hold is copied into the caller's arena; nothing points into a backend's
 * row, which may die at the next row.
 *
 * The accumulators know the column order of the queries, which both
 * backends select with the lists below (and SQ_SPAN_COLUMNS of sqlite_int.h
 * for spans, read as column C_x - 1). Times in results are rebuilt from
 * the *_unix_nano columns with halo_iso_from_ns (9 fractional digits;
 * PostgreSQL's timestamptz only keeps microseconds).
 *
 * Rebuilt spans whose resource (scope) JSON is identical share one
 * halo_resource (halo_scope), as they did in the OTLP request, so
 * halo_otlp_encode_json groups them the same way again. Malformed JSON in a
 * column is HALO_EINVAL naming the column.
 *
 * Agent statistics: one row per trace of the window, in any order (so
 * neither database sorts the whole window): per agent, found by hashing
 * its id, runs, error runs, spans and tokens are added up as the rows come;
 * at the end each agent's durations are sorted in C for p50/p95 (nearest
 * rank, halo_percentile) and its costs summed in that same total order,
 * so both backends give the same bits; agents are returned by id, NULL
 * first, then byte order.
 */
#ifndef HALO_STORE_REBUILD_H
#define HALO_STORE_REBUILD_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The columns of list_traces results (RB_TRACES rows). */
#define RB_TRACE_COLUMNS                                                       \
    "trace_id, agent_id, agent_name, session_id, user_id, root_name, "         \
    "start_unix_nano, end_unix_nano, duration_ms, span_count, error_count, "   \
    "llm_calls, tool_calls, input_tokens, output_tokens, cost, priced_spans"

/* The columns of agent_stats rows (RB_STATS), in any order. */
#define RB_STATS_COLUMNS                                                       \
    "agent_id, duration_ms, error_count, span_count, input_tokens, "           \
    "output_tokens, cost, priced_spans"

/* One result row of a backend. Columns are numbered from 0. */
typedef struct rb_cols {
    void *ctx;
    /* The column's text, NUL-terminated, and its length in bytes; NULL
     * (and *len 0) for SQL NULL. */
    const char *(*text)(void *ctx, int col, size_t *len);
    int64_t (*i64)(void *ctx, int col); /* 0 for NULL */
    double (*f64)(void *ctx, int col);  /* 0 for NULL */
    bool (*is_null)(void *ctx, int col);
} rb_cols;

/* What a backend does with each row of a query (ctx: the caller's). */
typedef halo_status (*rb_row_fn)(void *ctx, const rb_cols *row, halo_err *err);

typedef enum rb_kind {
    RB_SPANS,   /* SQ_SPAN_COLUMNS rows -> halo_span */
    RB_TRACES,  /* RB_TRACE_COLUMNS rows -> halo_trace_row */
    RB_STATS,   /* RB_STATS_COLUMNS rows -> halo_agent_stats */
    RB_REPORTS, /* `reports` rows, RB_REPORT_LIST_COLUMNS -> halo_report_row */
} rb_kind;

typedef struct rb_res rb_res;     /* a rebuilt resource and its JSON */
typedef struct rb_scope rb_scope; /* a rebuilt scope and its JSON */

/* The results so far (malloc'd working arrays; the results' contents are
 * already in the arena). */
typedef struct rb_acc {
    rb_kind kind;
    halo_arena *arena;
    void *items; /* halo_span / halo_trace_row / halo_agent_stats /
                  * halo_report_row */
    size_t n, cap;
    rb_res *res; /* RB_SPANS */
    size_t n_res, cap_res;
    rb_scope *scopes;
    size_t n_scopes, cap_scopes;
    struct rb_run *runs; /* RB_STATS: every trace's duration and cost */
    size_t n_runs, cap_runs;
    uint32_t *slots; /* RB_STATS: agent id -> item index + 1 */
    size_t n_slots;
    long null_agent; /* RB_STATS: the item of the agent-less, or -1 */
    char tid[33];    /* rb_acc_init_trace: the trace id, hex */
} rb_acc;

void rb_acc_init(rb_acc *a, rb_kind kind, halo_arena *arena);
/* RB_SPANS of one trace: its id in hex in a->tid (for the query), and
 * rb_acc_finish() fails with HALO_ENOTFOUND "trace ID not found" when no
 * row came. */
void rb_acc_init_trace(rb_acc *a, halo_arena *arena,
                       const uint8_t trace_id[16]);

/* Fold one row into the results; acc is an rb_acc (an rb_row_fn, so a
 * backend's row loop can take it). */
halo_status rb_acc_add(void *acc, const rb_cols *row, halo_err *err);

/* When st is HALO_OK, the results as one arena array in *out (NULL when
 * there are none) and their count in *n; else *out = NULL, *n = 0. Frees
 * the working arrays in every case and returns st (or the failure of the
 * copy). */
halo_status rb_acc_finish(rb_acc *a, halo_status st, void **out, size_t *n,
                          halo_err *err);

/* A report's values in the column order of `reports` (id, agent_id,
 * schedule, window_start, window_end, generated_at, mode, model, json,
 * markdown) for put_report; HALO_EINVAL when it has no id. list_reports
 * reads the first RB_REPORT_LIST_COLUMNS (not json and markdown). */
#define RB_REPORT_COLUMNS 10
#define RB_REPORT_LIST_COLUMNS 8
halo_status rb_report_values(const halo_report_row *r,
                             const char *vals[RB_REPORT_COLUMNS],
                             halo_err *err);

/* A `reports` row: its first n_cols columns in that order (8: every column
 * but json and markdown, which stay NULL) into out, strings copied into
 * arena. */
halo_status rb_report_row(const rb_cols *row, int n_cols, halo_arena *arena,
                          halo_report_row *out, halo_err *err);

/* get_report's matches (every column of `reports`): the first row into
 * out, every row counted in found (for rb_report_found). rb_found_add is
 * an rb_row_fn over an rb_found. */
typedef struct rb_found {
    halo_arena *arena;
    halo_report_row *out;
    int found;
} rb_found;
halo_status rb_found_add(void *found, const rb_cols *row, halo_err *err);

/* get_report's outcome from the rows that matched id (found: 0, 1, or 2
 * for several): st when it is a failure, HALO_ENOTFOUND "report "ID" not
 * found", HALO_EINVAL "report id prefix "ID" is ambiguous", else HALO_OK.
 * out is zeroed on failure. */
halo_status rb_report_found(const char *id, int found, halo_status st,
                            halo_report_row *out, halo_err *err);

#endif
